/* Runs a model folder (model.onnx + test_data_set_0/input_N.pb, output_N.pb) through carve's C API and
 * compares the outputs with the references (floats: rtol 1e-3, atol 1e-4; integers exact).
 * Usage: run_model MODEL_DIR [--alloc]   (--alloc: carve-allocated outputs instead of caller buffers)
 * CARVE_CPU selects CPU features (e.g. without AVX-512 under valgrind). Exit 0 when every output matches. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carve.h"

/* A TensorProto read from a .pb file: dims, data_type and raw_data (what the shared test data uses). */
typedef struct {
    int32_t dtype;
    size_t rank;
    int64_t shape[CARVE_MAX_RANK];
    unsigned char *data;
    size_t size;
} pb_tensor;

static int varint(const unsigned char *b, size_t n, size_t *i, uint64_t *v) {
    int shift = 0;
    *v = 0;
    while (*i < n && shift < 64) {
        unsigned char c = b[(*i)++];
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (c < 0x80) return 0;
        shift += 7;
    }
    return -1;
}

static int read_pb(const char *path, pb_tensor *t) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(b); return -1; }
    fclose(f);
    memset(t, 0, sizeof *t);
    size_t i = 0;
    int rc = 0;
    while (i < (size_t)n && rc == 0) {
        uint64_t key, v;
        if (varint(b, n, &i, &key)) { rc = -1; break; }
        int field = (int)(key >> 3), wire = (int)(key & 7);
        if (wire == 0) {
            if (varint(b, n, &i, &v)) { rc = -1; break; }
            if (field == 1 && t->rank < CARVE_MAX_RANK) t->shape[t->rank++] = (int64_t)v;
            if (field == 2) t->dtype = (int32_t)v;
        } else if (wire == 2) {
            uint64_t len;
            if (varint(b, n, &i, &len) || i + len > (size_t)n) { rc = -1; break; }
            if (field == 1) { /* packed dims */
                size_t j = i;
                while (j < i + len && t->rank < CARVE_MAX_RANK) {
                    if (varint(b, i + len, &j, &v)) { rc = -1; break; }
                    t->shape[t->rank++] = (int64_t)v;
                }
            } else if (field == 9) {
                free(t->data);
                t->data = malloc(len ? len : 1);
                if (!t->data) { rc = -1; break; }
                memcpy(t->data, b + i, len);
                t->size = len;
            }
            i += len;
        } else if (wire == 1) i += 8;
        else if (wire == 5) i += 4;
        else rc = -1;
    }
    free(b);
    if (rc == 0 && !t->data) rc = -1; /* only raw_data tensors */
    return rc;
}

static int compare(const char *name, const carve_tensor *got, const pb_tensor *want) {
    if (got->dtype != want->dtype || got->rank != want->rank ||
        memcmp(got->shape, want->shape, got->rank * sizeof(int64_t)) != 0 || got->byte_size != want->size) {
        printf("output '%s': dtype/shape differ from the reference\n", name);
        return 1;
    }
    if (got->dtype == CARVE_F32) {
        const float *a = got->data, *b = (const float *)want->data;
        size_t n = got->byte_size / 4, bad = 0;
        double worst = 0;
        for (size_t k = 0; k < n; k++) {
            double d = fabs((double)a[k] - (double)b[k]);
            if (d > worst) worst = d;
            if (!(d <= 1e-4 + 1e-3 * fabs((double)b[k]))) bad++;
        }
        printf("output '%s': %zu floats, max |diff| %.3g, %zu outside tolerance\n", name, n, worst, bad);
        return bad != 0;
    }
    int same = memcmp(got->data, want->data, got->byte_size) == 0;
    printf("output '%s': %zu bytes, %s\n", name, got->byte_size, same ? "identical" : "DIFFERENT");
    return !same;
}

#define CHECK(call)                                                                 \
    do {                                                                            \
        carve_status s_ = (call);                                                   \
        if (s_ != CARVE_OK) {                                                       \
            fprintf(stderr, "%s failed (%d): %s\n", #call, s_, carve_last_error()); \
            goto done;                                                              \
        }                                                                           \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [--alloc]\n", argv[0]);
        return 2;
    }
    int alloc = argc > 2 && strcmp(argv[2], "--alloc") == 0;
    int failed = 1;
    char path[4096];
    carve_options *opts = NULL;
    carve_model *model = NULL;
    carve_tensor *ins = NULL, *outs = NULL;
    pb_tensor *in_pb = NULL, *out_pb = NULL;
    size_t n_in = 0, n_out = 0, n_alloc = 0;

    CHECK(carve_options_new(&opts));
    CHECK(carve_options_set(opts, "threads", "2"));
    snprintf(path, sizeof path, "%s/model.onnx", argv[1]);
    CHECK(carve_model_load(path, opts, &model));
    n_in = carve_model_input_count(model);
    n_out = carve_model_output_count(model);
    printf("carve %s: %s: %zu inputs, %zu outputs\n", carve_version(), path, n_in, n_out);

    ins = calloc(n_in ? n_in : 1, sizeof *ins);
    in_pb = calloc(n_in ? n_in : 1, sizeof *in_pb);
    outs = calloc(n_out ? n_out : 1, sizeof *outs);
    out_pb = calloc(n_out ? n_out : 1, sizeof *out_pb);
    if (!ins || !in_pb || !outs || !out_pb) goto done;
    for (size_t k = 0; k < n_in; k++) {
        carve_tensor_info info;
        CHECK(carve_model_input_info(model, k, &info));
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%zu.pb", argv[1], k);
        if (read_pb(path, &in_pb[k])) { fprintf(stderr, "cannot read %s\n", path); goto done; }
        ins[k].name = info.name;
        ins[k].dtype = in_pb[k].dtype;
        ins[k].rank = in_pb[k].rank;
        memcpy(ins[k].shape, in_pb[k].shape, sizeof ins[k].shape);
        ins[k].data = in_pb[k].data;
        ins[k].byte_size = in_pb[k].size;
        printf("input '%s': dtype %d, rank %zu\n", info.name, info.dtype, ins[k].rank);
    }
    for (size_t k = 0; k < n_out; k++) {
        snprintf(path, sizeof path, "%s/test_data_set_0/output_%zu.pb", argv[1], k);
        if (read_pb(path, &out_pb[k])) { fprintf(stderr, "cannot read %s\n", path); goto done; }
    }

    failed = 0;
    if (alloc) {
        carve_tensor *got = NULL;
        CHECK(carve_model_run_alloc(model, ins, n_in, &got, &n_alloc));
        for (size_t k = 0; k < n_alloc && k < n_out; k++) failed |= compare(got[k].name, &got[k], &out_pb[k]);
        carve_tensors_free(got, n_alloc);
    } else {
        /* Caller buffers: the size of the reference (a first call with NULL data would report it too). */
        for (size_t k = 0; k < n_out; k++) {
            outs[k].data = malloc(out_pb[k].size ? out_pb[k].size : 1);
            outs[k].byte_size = out_pb[k].size;
        }
        CHECK(carve_model_run(model, ins, n_in, outs, n_out));
        for (size_t k = 0; k < n_out; k++) {
            carve_tensor_info info;
            CHECK(carve_model_output_info(model, k, &info));
            failed |= compare(info.name, &outs[k], &out_pb[k]);
        }
    }

    /* A wrong input name is an error that names it. */
    if (n_in > 0) {
        const char *saved = ins[0].name;
        ins[0].name = "no_such_input";
        carve_status s = carve_model_run(model, ins, n_in, outs, n_out);
        ins[0].name = saved;
        printf("wrong input name: status %d: %s\n", s, carve_last_error());
        if (s != CARVE_ERR_INPUT || !strstr(carve_last_error(), "no_such_input")) failed = 1;
    }
    printf(failed ? "FAILED\n" : "OK\n");
    goto cleanup;
done:
    failed = 1;
cleanup:
    for (size_t k = 0; in_pb && k < n_in; k++) free(in_pb[k].data);
    for (size_t k = 0; out_pb && k < n_out; k++) free(out_pb[k].data);
    for (size_t k = 0; outs && k < n_out; k++) free(outs[k].data);
    free(ins);
    free(in_pb);
    free(outs);
    free(out_pb);
    carve_model_free(model);
    carve_options_free(opts);
    return failed;
}
