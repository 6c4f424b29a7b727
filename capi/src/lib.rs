//! carve's C API: load an ONNX model (from a path or bytes), compile it for this machine with options
//! (threads, e-graph on/off, CPU features), query its inputs and outputs, and run it on caller-provided
//! buffers or on outputs carve allocates. The declarations are in `include/carve.h`.
//!
//! Every entry point returns a `carve_status` (or a value with a documented null/0 fallback), catches
//! panics (none crosses the boundary), and on failure leaves a message for `carve_last_error` (one per
//! thread). Handles are opaque pointers freed by their `_free` function; freeing NULL is a no-op.

pub mod error;
pub mod model;
pub mod options;

use std::ffi::{CString, c_char, c_int, c_void};
use std::ptr;

use error::{Error, Status, guard};
use model::{CTensor, MAX_RANK, Model, TensorInfo, byte_size, describe, read_input, str_arg};
use options::Options;

/// `carve_version`: carve's version (a static string).
#[unsafe(no_mangle)]
pub extern "C" fn carve_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// `carve_last_error`: the message of this thread's last failing call ("" if none); valid until the
/// next failing call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn carve_last_error() -> *const c_char {
    error::last_error_ptr()
}

/// `carve_dtype_size`: bytes per element of ONNX element type `dtype`, 0 for sub-byte, string or
/// unknown types.
#[unsafe(no_mangle)]
pub extern "C" fn carve_dtype_size(dtype: i32) -> usize {
    carve::DType::from_onnx_code(dtype)
        .filter(|d| d.bits() > 0 && d.bits() % 8 == 0)
        .map_or(0, |d| (d.bits() / 8) as usize)
}

/// A mutable reference from a handle pointer, or an invalid-argument error naming it.
///
/// # Safety
/// `p` is null or a live handle of type `T` not used elsewhere during the call.
unsafe fn handle<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Error> {
    // SAFETY: the caller promises `p` is null or valid.
    unsafe { p.as_mut() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// A shared reference from a handle pointer, or an invalid-argument error naming it.
///
/// # Safety
/// `p` is null or a live handle of type `T`.
unsafe fn handle_ref<'a, T>(p: *const T, what: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller promises `p` is null or valid.
    unsafe { p.as_ref() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// Writes `value` through the out-pointer `out`.
///
/// # Safety
/// `out` is null or valid for writes.
unsafe fn put<T>(out: *mut T, value: T, what: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: not null, and the caller promises it is writable.
    unsafe { out.write(value) };
    Ok(())
}

/// `carve_options_new`: default options (all cores, e-graph on, this machine's CPU features or
/// `$CARVE_CPU`) into `*out`.
///
/// # Safety
/// `out` is null or valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_options_new(out: *mut *mut Options) -> Status {
    guard(|| {
        let o = Box::into_raw(Box::new(Options::default()));
        // SAFETY: forwarded from the caller.
        unsafe { put(out, o, "out") }.inspect_err(|_| {
            // SAFETY: `o` came from Box::into_raw just above and was not handed out.
            drop(unsafe { Box::from_raw(o) });
        })
    })
}

/// `carve_options_free`: frees options (NULL: nothing).
///
/// # Safety
/// `opts` is null or came from `carve_options_new` and is not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_options_free(opts: *mut Options) {
    if !opts.is_null() {
        let _ = guard(|| {
            // SAFETY: the caller hands back a pointer from carve_options_new.
            drop(unsafe { Box::from_raw(opts) });
            Ok(())
        });
    }
}

/// `carve_options_set`: sets an option from text (`threads`, `egraph`, `cpu`).
///
/// # Safety
/// `opts` is null or live; `key` and `value` are null or NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_options_set(
    opts: *mut Options,
    key: *const c_char,
    value: *const c_char,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let o = unsafe { handle(opts, "opts") }?;
        // SAFETY: forwarded from the caller.
        let (k, v) = unsafe { (str_arg(key, "key")?, str_arg(value, "value")?) };
        o.set(k, v)
    })
}

/// `carve_options_set_threads`: threads kernels are split over (0: one per core).
///
/// # Safety
/// `opts` is null or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_options_set_threads(opts: *mut Options, threads: usize) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let o = unsafe { handle(opts, "opts") }?;
        o.threads = (threads > 0).then_some(threads);
        Ok(())
    })
}

/// `carve_options_set_egraph`: run the e-graph optimizer (non-zero, the default) or not (0).
///
/// # Safety
/// `opts` is null or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_options_set_egraph(opts: *mut Options, on: c_int) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let o = unsafe { handle(opts, "opts") }?;
        o.no_egraph = on == 0;
        Ok(())
    })
}

/// `carve_options_set_cpu`: CPU features as `carve compile --cpu` takes them (NULL or "": this
/// machine's, or `$CARVE_CPU`).
///
/// # Safety
/// `opts` is null or live; `features` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_options_set_cpu(
    opts: *mut Options,
    features: *const c_char,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let o = unsafe { handle(opts, "opts") }?;
        let f = if features.is_null() {
            ""
        } else {
            // SAFETY: forwarded from the caller.
            unsafe { str_arg(features, "features") }?
        };
        o.set("cpu", f)
    })
}

/// The options behind a nullable pointer (NULL: the defaults).
///
/// # Safety
/// `opts` is null or live.
unsafe fn options_or_default(opts: *const Options) -> Options {
    // SAFETY: forwarded from the caller.
    unsafe { opts.as_ref() }.cloned().unwrap_or_default()
}

/// Boxes `model` into `*out`.
///
/// # Safety
/// `out` is null or valid for writes.
unsafe fn hand_out(model: Model, out: *mut *mut Model) -> Result<(), Error> {
    let m = Box::into_raw(Box::new(model));
    // SAFETY: forwarded from the caller.
    unsafe { put(out, m, "out") }.inspect_err(|_| {
        // SAFETY: `m` came from Box::into_raw just above and was not handed out.
        drop(unsafe { Box::from_raw(m) });
    })
}

/// `carve_model_load`: loads the ONNX file at `path` and compiles it (`opts` may be NULL).
///
/// # Safety
/// `path` is null or a NUL-terminated string; `opts` null or live; `out` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_model_load(
    path: *const c_char,
    opts: *const Options,
    out: *mut *mut Model,
) -> Status {
    guard(|| {
        if out.is_null() {
            return Err(Error::invalid("out is NULL"));
        }
        // SAFETY: forwarded from the caller.
        let p = unsafe { str_arg(path, "path") }?;
        // SAFETY: forwarded from the caller.
        let o = unsafe { options_or_default(opts) };
        let m = Model::load(p, &o)?;
        // SAFETY: forwarded from the caller.
        unsafe { hand_out(m, out) }
    })
}

/// `carve_model_load_bytes`: loads an ONNX model from `len` bytes at `data` and compiles it.
///
/// # Safety
/// `data` is null or points to `len` readable bytes; `opts` null or live; `out` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_model_load_bytes(
    data: *const c_void,
    len: usize,
    opts: *const Options,
    out: *mut *mut Model,
) -> Status {
    guard(|| {
        if out.is_null() {
            return Err(Error::invalid("out is NULL"));
        }
        if data.is_null() {
            return Err(Error::invalid("data is NULL"));
        }
        // SAFETY: not null, and the caller promises `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data as *const u8, len) };
        // SAFETY: forwarded from the caller.
        let o = unsafe { options_or_default(opts) };
        let m = Model::load_bytes(bytes, &o)?;
        // SAFETY: forwarded from the caller.
        unsafe { hand_out(m, out) }
    })
}

/// `carve_model_free`: frees a model (NULL: nothing).
///
/// # Safety
/// `model` is null or came from `carve_model_load*` and is not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_model_free(model: *mut Model) {
    if !model.is_null() {
        let _ = guard(|| {
            // SAFETY: the caller hands back a pointer from carve_model_load*.
            drop(unsafe { Box::from_raw(model) });
            Ok(())
        });
    }
}

/// `carve_model_input_count`: number of inputs (0 for NULL).
///
/// # Safety
/// `model` is null or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_model_input_count(model: *const Model) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { model.as_ref() }.map_or(0, Model::input_count)
}

/// `carve_model_output_count`: number of outputs (0 for NULL).
///
/// # Safety
/// `model` is null or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_model_output_count(model: *const Model) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { model.as_ref() }.map_or(0, Model::output_count)
}

/// `carve_model_input_info`: input `index`'s name, dtype and shape into `*out` (pointers valid while
/// the model lives).
///
/// # Safety
/// `model` is null or live; `out` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_model_input_info(
    model: *const Model,
    index: usize,
    out: *mut TensorInfo,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let m = unsafe { handle_ref(model, "model") }?;
        let info = m.input_info(index)?;
        // SAFETY: forwarded from the caller.
        unsafe { put(out, info, "out") }
    })
}

/// `carve_model_output_info`: output `index`'s name, dtype and shape into `*out`.
///
/// # Safety
/// `model` is null or live; `out` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_model_output_info(
    model: *const Model,
    index: usize,
    out: *mut TensorInfo,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let m = unsafe { handle_ref(model, "model") }?;
        let info = m.output_info(index)?;
        // SAFETY: forwarded from the caller.
        unsafe { put(out, info, "out") }
    })
}

/// Reads and runs the C inputs.
///
/// # Safety
/// `inputs` is null (with `n_inputs` 0) or points to `n_inputs` valid `carve_tensor`s.
unsafe fn run_inputs(
    m: &Model,
    inputs: *const CTensor,
    n_inputs: usize,
) -> Result<Vec<(String, carve::Tensor)>, Error> {
    let ins: &[CTensor] = if n_inputs == 0 {
        &[]
    } else if inputs.is_null() {
        return Err(Error::invalid("inputs is NULL"));
    } else {
        // SAFETY: not null, and the caller promises `n_inputs` tensors.
        unsafe { std::slice::from_raw_parts(inputs, n_inputs) }
    };
    let named = ins
        .iter()
        .enumerate()
        // SAFETY: each tensor's pointers are the caller's promise.
        .map(|(i, t)| unsafe { read_input(t, i) })
        .collect::<Result<Vec<_>, _>>()?;
    m.run(named)
}

/// `carve_model_run`: runs on `n_inputs` inputs and writes the outputs into caller buffers.
/// `outputs[i].name` selects the output (NULL: output `i`); each output's dtype, rank, shape and
/// `byte_size` are written; when a buffer is NULL or too small, `byte_size` says what is needed and
/// the call returns `CARVE_ERR_BUFFER_TOO_SMALL` (after writing every output that fits).
///
/// # Safety
/// `model` is null or live; `inputs` points to `n_inputs` tensors (names and data valid);
/// `outputs` points to `n_outputs` writable tensors whose `data` holds `byte_size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_model_run(
    model: *const Model,
    inputs: *const CTensor,
    n_inputs: usize,
    outputs: *mut CTensor,
    n_outputs: usize,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let m = unsafe { handle_ref(model, "model") }?;
        if n_outputs > 0 && outputs.is_null() {
            return Err(Error::invalid("outputs is NULL"));
        }
        // SAFETY: forwarded from the caller.
        let results = unsafe { run_inputs(m, inputs, n_inputs) }?;
        let outs: &mut [CTensor] = if n_outputs == 0 {
            &mut []
        } else {
            // SAFETY: not null, and the caller promises `n_outputs` writable tensors.
            unsafe { std::slice::from_raw_parts_mut(outputs, n_outputs) }
        };
        let mut too_small = Vec::new();
        for (i, o) in outs.iter_mut().enumerate() {
            let k = if o.name.is_null() {
                if i >= results.len() {
                    return Err(Error::invalid(format!(
                        "outputs[{i}] has no name and the model has {} outputs",
                        results.len()
                    )));
                }
                i
            } else {
                // SAFETY: not null; the caller promises a NUL-terminated string.
                let name = unsafe { str_arg(o.name, &format!("outputs[{i}].name")) }?;
                m.output_index(name)?
            };
            let (name, t) = &results[k];
            describe(o, name, t)?;
            let need = byte_size(name, t)?;
            if o.data.is_null() || o.byte_size < need {
                too_small.push(format!("'{name}' needs {need} bytes, has {}", o.byte_size));
                o.byte_size = need;
                continue;
            }
            // SAFETY: not null, and the caller promises `byte_size` (≥ need) writable bytes.
            let dst = unsafe { std::slice::from_raw_parts_mut(o.data as *mut u8, need) };
            if !t.data.write_le_bytes(dst) {
                return Err(Error::new(
                    Status::Run,
                    format!("output '{name}': its elements have no byte form"),
                ));
            }
            o.byte_size = need;
        }
        if too_small.is_empty() {
            Ok(())
        } else {
            Err(Error::new(
                Status::BufferTooSmall,
                format!("output buffer too small: {}", too_small.join("; ")),
            ))
        }
    })
}

/// `carve_model_run_alloc`: runs and returns every output in an array carve allocates (`*outputs`,
/// `*n_outputs`), freed with `carve_tensors_free`.
///
/// # Safety
/// As `carve_model_run` for `model` and `inputs`; `outputs` and `n_outputs` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_model_run_alloc(
    model: *const Model,
    inputs: *const CTensor,
    n_inputs: usize,
    outputs: *mut *mut CTensor,
    n_outputs: *mut usize,
) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        let m = unsafe { handle_ref(model, "model") }?;
        if outputs.is_null() || n_outputs.is_null() {
            return Err(Error::invalid("outputs or n_outputs is NULL"));
        }
        // SAFETY: forwarded from the caller.
        let results = unsafe { run_inputs(m, inputs, n_inputs) }?;
        let mut arr: Vec<CTensor> = Vec::with_capacity(results.len());
        let mut fail = None;
        for (name, t) in &results {
            let mut c = CTensor {
                name: ptr::null(),
                dtype: 0,
                rank: 0,
                shape: [0; MAX_RANK],
                data: ptr::null_mut(),
                byte_size: 0,
            };
            let filled = describe(&mut c, name, t).and_then(|_| byte_size(name, t));
            let need = match filled {
                Ok(n) => n,
                Err(e) => {
                    fail = Some(e);
                    break;
                }
            };
            let mut buf = vec![0u8; need].into_boxed_slice();
            if !t.data.write_le_bytes(&mut buf) {
                fail = Some(Error::new(
                    Status::Run,
                    format!("output '{name}': its elements have no byte form"),
                ));
                break;
            }
            c.byte_size = need;
            c.data = Box::into_raw(buf) as *mut u8 as *mut c_void;
            c.name = CString::new(name.replace('\0', "\u{FFFD}"))
                .unwrap_or_default()
                .into_raw();
            arr.push(c);
        }
        if let Some(e) = fail {
            // SAFETY: every element was built above by the same allocation scheme.
            unsafe { free_tensors(&arr) };
            return Err(e);
        }
        let n = arr.len();
        let p = Box::into_raw(arr.into_boxed_slice()) as *mut CTensor;
        // SAFETY: both were checked non-null; the caller promises they are writable.
        unsafe {
            outputs.write(p);
            n_outputs.write(n);
        }
        Ok(())
    })
}

/// Frees the names and buffers of tensors built by `carve_model_run_alloc` (not the array).
///
/// # Safety
/// Every element's `name` and `data` came from `CString::into_raw` and a boxed byte slice of
/// `byte_size` bytes (or are null).
unsafe fn free_tensors(arr: &[CTensor]) {
    for t in arr.iter() {
        if !t.name.is_null() {
            // SAFETY: allocated with CString::into_raw in carve_model_run_alloc.
            drop(unsafe { CString::from_raw(t.name as *mut c_char) });
        }
        if !t.data.is_null() {
            let s = ptr::slice_from_raw_parts_mut(t.data as *mut u8, t.byte_size);
            // SAFETY: allocated as a boxed slice of `byte_size` bytes in carve_model_run_alloc.
            drop(unsafe { Box::from_raw(s) });
        }
    }
}

/// `carve_tensors_free`: frees an output array from `carve_model_run_alloc` (NULL: nothing).
///
/// # Safety
/// `tensors` and `n` are exactly what `carve_model_run_alloc` returned, freed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn carve_tensors_free(tensors: *mut CTensor, n: usize) {
    if tensors.is_null() {
        return;
    }
    let _ = guard(|| {
        let s = ptr::slice_from_raw_parts_mut(tensors, n);
        // SAFETY: the array was a boxed slice of `n` tensors handed out by carve_model_run_alloc.
        let arr = unsafe { Box::from_raw(s) };
        // SAFETY: the elements were built by carve_model_run_alloc.
        unsafe { free_tensors(&arr) };
        Ok(())
    });
}
