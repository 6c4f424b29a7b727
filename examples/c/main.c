/* A C host for any model compiled with `carve compile`: loads the inputs from .npy or raw binary
 * files, runs the model, prints every output (name, dtype, shape, first values, checksum) and can
 * write the outputs as raw little-endian files.
 *
 * Build (the header of the model is chosen at compile time):
 *   carve compile model.onnx -o model.o --header model.h --name model
 *   cc -O2 -std=c11 -Wall -Wextra -I. -DMODEL_HEADER='"model.h"' examples/c/main.c model.o -lpthread -o demo
 * Run:
 *   ./demo [-t THREADS] [-w WEIGHTS.bin] [-o OUTDIR] [-n REPEAT] INPUT0.npy INPUT1.bin ...
 *
 * Needs nothing from the model but its header: the generic names come from CARVE_MODEL_ALIASES.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CARVE_MODEL_ALIASES
#ifndef MODEL_HEADER
#error "compile with -DMODEL_HEADER='\"model.h\"'"
#endif
#include MODEL_HEADER

/* ---- parallel_for: a minimal thread fork/join per call (static split, deterministic results) ---- */

typedef struct {
    carve_kernel kernel;
    const carve_ctx *ctx;
    uint64_t begin, end;
} job;

static void *run_job(void *arg) {
    job *j = (job *)arg;
    if (j->begin < j->end) j->kernel(j->ctx, j->begin, j->end);
    return NULL;
}

static void parallel_for(void *user, carve_kernel kernel, const carve_ctx *ctx, uint64_t n_tiles) {
    int threads = *(const int *)user;
    if (threads > 64) threads = 64;
    if (threads <= 1 || n_tiles <= 1) {
        kernel(ctx, 0, n_tiles);
        return;
    }
    pthread_t tid[64];
    job jobs[64];
    int started[64] = {0};
    for (int t = 0; t < threads; t++) {
        jobs[t].kernel = kernel;
        jobs[t].ctx = ctx;
        jobs[t].begin = n_tiles * (uint64_t)t / (uint64_t)threads;
        jobs[t].end = n_tiles * (uint64_t)(t + 1) / (uint64_t)threads;
    }
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&tid[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        else run_job(&jobs[t]); /* could not start a thread: do its share here */
    }
}

/* ---- files ---- */

static void *aligned_buffer(uint64_t bytes) {
    if (bytes == 0) return NULL;
    uint64_t rounded = (bytes + CARVE_MODEL_ALIGN - 1) / CARVE_MODEL_ALIGN * CARVE_MODEL_ALIGN;
    void *p = aligned_alloc(CARVE_MODEL_ALIGN, (size_t)rounded);
    if (p) memset(p, 0, (size_t)rounded);
    return p;
}

static unsigned char *read_file(const char *path, uint64_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    uint64_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            unsigned char *nb = realloc(buf, (size_t)cap);
            if (!nb) { free(buf); fclose(f); return NULL; }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, (size_t)(cap - n), f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    *len = n;
    return buf;
}

static int contains(const unsigned char *hay, uint64_t n, const char *needle) {
    uint64_t m = strlen(needle);
    for (uint64_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, (size_t)m) == 0) return 1;
    return 0;
}

/* Loads a tensor into `dst` (`info->bytes` bytes) from a raw file of exactly that size or a .npy
 * file whose data has that size (the dtype must match: the header's descr is not converted). */
static int load_tensor(const char *path, const carve_tensor_info *info, void *dst) {
    uint64_t len = 0;
    unsigned char *buf = read_file(path, &len);
    if (!buf) { fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno)); return 1; }
    const unsigned char *data = buf;
    uint64_t data_len = len;
    if (len >= 10 && memcmp(buf, "\x93NUMPY", 6) == 0) {
        uint64_t hlen, off;
        if (buf[6] == 1) { hlen = (uint64_t)buf[8] | ((uint64_t)buf[9] << 8); off = 10; }
        else if (len >= 12) { hlen = (uint64_t)buf[8] | ((uint64_t)buf[9] << 8) | ((uint64_t)buf[10] << 16) | ((uint64_t)buf[11] << 24); off = 12; }
        else { fprintf(stderr, "%s: truncated .npy header\n", path); free(buf); return 1; }
        if (off + hlen > len) { fprintf(stderr, "%s: truncated .npy header\n", path); free(buf); return 1; }
        if (contains(buf + off, hlen, "'fortran_order': True")) {
            fprintf(stderr, "%s: Fortran-order arrays are not supported\n", path); free(buf); return 1;
        }
        data = buf + off + hlen;
        data_len = len - off - hlen;
    }
    if (data_len != info->bytes) {
        fprintf(stderr, "%s: %llu data bytes, but input '%s' (%s) needs %llu\n", path,
                (unsigned long long)data_len, info->name, info->dtype, (unsigned long long)info->bytes);
        free(buf);
        return 1;
    }
    memcpy(dst, data, (size_t)data_len);
    free(buf);
    return 0;
}

static void print_tensor(const carve_tensor_info *info, const void *p) {
    printf("%s: %s[", info->name, info->dtype);
    for (uint32_t d = 0; d < info->rank; d++) printf("%s%lld", d ? "," : "", (long long)info->shape[d]);
    printf("]");
    uint64_t n = info->count, show = n < 8 ? n : 8;
    if (strcmp(info->dtype, "f32") == 0) {
        const float *x = (const float *)p;
        double sum = 0;
        for (uint64_t i = 0; i < n; i++) sum += x[i];
        printf(" sum=%.6g [", sum);
        for (uint64_t i = 0; i < show; i++) printf("%s%.6g", i ? ", " : "", x[i]);
    } else if (strcmp(info->dtype, "i64") == 0) {
        const int64_t *x = (const int64_t *)p;
        printf(" [");
        for (uint64_t i = 0; i < show; i++) printf("%s%lld", i ? ", " : "", (long long)x[i]);
    } else if (strcmp(info->dtype, "i32") == 0) {
        const int32_t *x = (const int32_t *)p;
        printf(" [");
        for (uint64_t i = 0; i < show; i++) printf("%s%d", i ? ", " : "", x[i]);
    } else {
        const unsigned char *x = (const unsigned char *)p;
        show = info->bytes < 8 ? info->bytes : 8;
        printf(" bytes [");
        for (uint64_t i = 0; i < show; i++) printf("%s%u", i ? ", " : "", x[i]);
    }
    printf("%s]\n", show < n ? ", ..." : "");
}

int main(int argc, char **argv) {
    int threads = 1, repeat = 1;
    const char *weights_path = NULL, *out_dir = NULL;
    const char *inputs[CARVE_MODEL_NUM_INPUTS + 1] = {0};
    int n_in = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc) weights_path = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) out_dir = argv[++i];
        else if (n_in < CARVE_MODEL_NUM_INPUTS) inputs[n_in++] = argv[i];
        else { fprintf(stderr, "too many inputs: model %s takes %d\n", CARVE_MODEL_NAME, CARVE_MODEL_NUM_INPUTS); return 2; }
    }
    if (n_in != CARVE_MODEL_NUM_INPUTS) {
        fprintf(stderr, "usage: %s [-t THREADS] [-w WEIGHTS.bin] [-o OUTDIR] [-n REPEAT] INPUT... (%d inputs)\n",
                argv[0], CARVE_MODEL_NUM_INPUTS);
#if CARVE_MODEL_NUM_INPUTS > 0
        for (int i = 0; i < CARVE_MODEL_NUM_INPUTS; i++)
            fprintf(stderr, "  input %d '%s': %s, %llu bytes\n", i, carve_model_inputs[i].name,
                    carve_model_inputs[i].dtype, (unsigned long long)carve_model_inputs[i].bytes);
#endif
        return 2;
    }

    /* Weights: embedded (pass NULL) or loaded from the file written by --weights-file. */
    void *weights = NULL;
#if !CARVE_MODEL_WEIGHTS_EMBEDDED
    if (CARVE_MODEL_WEIGHTS_SIZE > 0) {
        uint64_t len = 0;
        unsigned char *w = weights_path ? read_file(weights_path, &len) : NULL;
        if (!w || len != CARVE_MODEL_WEIGHTS_SIZE) {
            fprintf(stderr, "model %s needs its weights file (-w FILE, %llu bytes)\n", CARVE_MODEL_NAME,
                    (unsigned long long)CARVE_MODEL_WEIGHTS_SIZE);
            return 2;
        }
        weights = aligned_buffer(len);
        if (!weights) return 3;
        memcpy(weights, w, (size_t)len);
        free(w);
    }
#else
    (void)weights_path;
#endif

    /* Every buffer is owned here: scratch, one per input and output. */
    void *scratch = aligned_buffer(CARVE_MODEL_SCRATCH_SIZE);
    if (CARVE_MODEL_SCRATCH_SIZE > 0 && !scratch) return 3;
    void *io_ptrs[CARVE_MODEL_NUM_INPUTS + CARVE_MODEL_NUM_OUTPUTS];
#if CARVE_MODEL_NUM_INPUTS > 0
    for (int i = 0; i < CARVE_MODEL_NUM_INPUTS; i++) {
        io_ptrs[i] = aligned_buffer(carve_model_inputs[i].bytes);
        if (carve_model_inputs[i].bytes > 0 && !io_ptrs[i]) return 3;
        if (load_tensor(inputs[i], &carve_model_inputs[i], io_ptrs[i])) return 1;
    }
#endif
    for (int k = 0; k < CARVE_MODEL_NUM_OUTPUTS; k++) {
        void *p = aligned_buffer(carve_model_outputs[k].bytes);
        if (carve_model_outputs[k].bytes > 0 && !p) return 3;
        io_ptrs[CARVE_MODEL_NUM_INPUTS + k] = p;
    }
    /* The io struct is one pointer per input then per output: fill it from the table. */
    carve_model_io io;
    memcpy(&io, io_ptrs, sizeof io);

    carve_host host = {parallel_for, NULL, &threads};
    for (int r = 0; r < repeat; r++) {
        int32_t rc = carve_model_run(weights, scratch, &io, threads > 1 ? &host : NULL);
        if (rc != CARVE_MODEL_OK) {
            fprintf(stderr, "%s_run failed with code %d\n", CARVE_MODEL_NAME, rc);
            return 1;
        }
    }
    for (int k = 0; k < CARVE_MODEL_NUM_OUTPUTS; k++) {
        const void *p = io_ptrs[CARVE_MODEL_NUM_INPUTS + k];
        print_tensor(&carve_model_outputs[k], p);
        if (out_dir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/output_%d.bin", out_dir, k);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(p, 1, (size_t)carve_model_outputs[k].bytes, f) != carve_model_outputs[k].bytes) {
                fprintf(stderr, "cannot write %s\n", path);
                if (f) fclose(f);
                return 1;
            }
            fclose(f);
        }
    }
    for (int i = 0; i < CARVE_MODEL_NUM_INPUTS + CARVE_MODEL_NUM_OUTPUTS; i++) free(io_ptrs[i]);
    free(scratch);
    free(weights);
    return 0;
}
