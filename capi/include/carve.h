/* carve's C API: load an ONNX model, compile it for this machine (JIT), query its inputs and outputs,
 * run it. Link with -lcarve_capi (libcarve_capi.so or libcarve_capi.a, built by
 * `cargo build -p carve-capi`; the static library also needs -lpthread -ldl -lm).
 *
 * Every function returning carve_status returns CARVE_OK (0) on success; on failure
 * carve_last_error() returns the message (one per thread, valid until the next failing call on the
 * thread). No panic crosses the boundary (CARVE_ERR_PANIC). Freeing NULL is a no-op. */
#ifndef CARVE_H
#define CARVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum carve_status {
    CARVE_OK = 0,
    CARVE_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, bad UTF-8, index out of range, unknown option */
    CARVE_ERR_LOAD = 2,             /* the model could not be read or imported */
    CARVE_ERR_COMPILE = 3,          /* target, CPU features, code generator */
    CARVE_ERR_INPUT = 4,            /* inputs do not fit the model: name, dtype, rank, dims, bytes */
    CARVE_ERR_RUN = 5,              /* running failed */
    CARVE_ERR_BUFFER_TOO_SMALL = 6, /* an output buffer is too small: byte_size says what is needed */
    CARVE_ERR_PANIC = 7             /* internal error (a carve bug) */
} carve_status;

/* Element types: the ONNX TensorProto.DataType codes. */
typedef enum carve_dtype {
    CARVE_F32 = 1, CARVE_U8 = 2, CARVE_I8 = 3, CARVE_U16 = 4, CARVE_I16 = 5, CARVE_I32 = 6,
    CARVE_I64 = 7, CARVE_BOOL = 9, CARVE_F16 = 10, CARVE_F64 = 11, CARVE_U32 = 12, CARVE_U64 = 13,
    CARVE_BF16 = 16
} carve_dtype;

#define CARVE_MAX_RANK 16

typedef struct carve_options carve_options;
typedef struct carve_model carve_model;

/* An input or output as the model declares it; pointers are valid while the model lives. */
typedef struct carve_tensor_info {
    const char *name;
    int32_t dtype;                /* carve_dtype; 0 for a sequence or optional value */
    int64_t rank;                 /* -1 when unknown */
    const int64_t *dims;          /* rank entries; -1 for a symbolic or unknown dim */
    const char *const *dim_names; /* rank entries; the symbol's name, or NULL */
} carve_tensor_info;

/* A tensor passed to or returned from a run: little-endian elements, row-major. */
typedef struct carve_tensor {
    const char *name;              /* input: which input; output: which output (NULL: by position) */
    int32_t dtype;                 /* carve_dtype */
    size_t rank;
    int64_t shape[CARVE_MAX_RANK]; /* the first `rank` entries */
    void *data;
    size_t byte_size;              /* input: bytes at data; output: capacity in, bytes written out */
} carve_tensor;

const char *carve_version(void);
const char *carve_last_error(void);
/* Bytes per element of a dtype (0 for unknown or sub-byte types). */
size_t carve_dtype_size(int32_t dtype);

/* Options: threads (default one per core), e-graph on/off (default on), CPU features (default: this
 * machine's; or the CARVE_CPU environment variable, e.g. "native,-avx512f,-avx512vl,-avx512dq,-avx512vnni"
 * to run under valgrind, which cannot decode AVX-512). */
carve_status carve_options_new(carve_options **out);
void carve_options_free(carve_options *opts);
/* key: "threads" (positive integer or "auto"), "egraph" (1/0, on/off, true/false), "cpu". */
carve_status carve_options_set(carve_options *opts, const char *key, const char *value);
carve_status carve_options_set_threads(carve_options *opts, size_t threads); /* 0: one per core */
carve_status carve_options_set_egraph(carve_options *opts, int on);
carve_status carve_options_set_cpu(carve_options *opts, const char *features); /* NULL/"": default */

/* Load and compile (opts may be NULL for the defaults). */
carve_status carve_model_load(const char *path, const carve_options *opts, carve_model **out);
carve_status carve_model_load_bytes(const void *data, size_t len, const carve_options *opts,
                                    carve_model **out);
void carve_model_free(carve_model *model);

size_t carve_model_input_count(const carve_model *model);
size_t carve_model_output_count(const carve_model *model);
carve_status carve_model_input_info(const carve_model *model, size_t index, carve_tensor_info *out);
carve_status carve_model_output_info(const carve_model *model, size_t index, carve_tensor_info *out);

/* Runs on n_inputs named inputs; writes each output's dtype, rank, shape, byte_size and data into
 * the caller's outputs (data NULL or too small: CARVE_ERR_BUFFER_TOO_SMALL, byte_size = needed). */
carve_status carve_model_run(const carve_model *model, const carve_tensor *inputs, size_t n_inputs,
                             carve_tensor *outputs, size_t n_outputs);
/* Runs and returns every output in an array carve allocates; free it with carve_tensors_free. */
carve_status carve_model_run_alloc(const carve_model *model, const carve_tensor *inputs,
                                   size_t n_inputs, carve_tensor **outputs, size_t *n_outputs);
void carve_tensors_free(carve_tensor *tensors, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* CARVE_H */
