//! The model behind a `carve_model` handle: the compiled model, its input/output descriptions in C form
//! (kept alive as long as the handle), and running it on tensors described by C structs. The functions
//! here take Rust slices; the `extern "C"` layer in `lib.rs` only checks and converts pointers.

use std::ffi::{CStr, CString, c_char, c_void};

use carve::ir::{Dim, Graph, Type};
use carve::{CompileError, CompiledModel, DType, Data, Tensor, Value};

use crate::error::{Error, Status, chain};
use crate::options::Options;

/// Largest rank a `carve_tensor` holds (`CARVE_MAX_RANK` in carve.h).
pub const MAX_RANK: usize = 16;

/// `carve_tensor_info`: one input or output as the model declares it. Pointers stay valid as long as
/// the model.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TensorInfo {
    /// The name (NUL-terminated UTF-8).
    pub name: *const c_char,
    /// The element type as its ONNX code (`carve_dtype`); 0 for a sequence or optional value.
    pub dtype: i32,
    /// The rank, or -1 when unknown (or not a tensor).
    pub rank: i64,
    /// `rank` dims: the size, or -1 for a symbolic or unknown dim.
    pub dims: *const i64,
    /// `rank` entries: the symbol's name for a symbolic dim, NULL otherwise.
    pub dim_names: *const *const c_char,
}

/// `carve_tensor`: a tensor passed to or returned from a run.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CTensor {
    /// Input: which input. Output: which output (NULL: the output at the same position); for
    /// carve-allocated outputs, the name (owned by the array).
    pub name: *const c_char,
    /// Element type (ONNX code).
    pub dtype: i32,
    /// Rank (≤ [`MAX_RANK`]).
    pub rank: usize,
    /// Dims (the first `rank`).
    pub shape: [i64; MAX_RANK],
    /// Little-endian elements, row-major.
    pub data: *mut c_void,
    /// Input: the bytes at `data`. Output: the capacity at `data` on entry, the bytes written (or
    /// needed) on return.
    pub byte_size: usize,
}

/// The C strings and arrays a [`TensorInfo`] points into.
struct InfoStore {
    name: CString,
    dtype: i32,
    rank: i64,
    dims: Vec<i64>,
    _dim_names: Vec<Option<CString>>,
    dim_name_ptrs: Vec<*const c_char>,
}

impl InfoStore {
    fn new(g: &Graph, v: carve::ir::ValueId) -> InfoStore {
        let value = g.value(v);
        let name = CString::new(value.name.replace('\0', "\u{FFFD}")).unwrap_or_default();
        let (dtype, dims): (i32, Option<&[Dim]>) = match g.ty(v) {
            Type::Tensor(t) => (t.dtype.onnx_code(), t.dims()),
            _ => (0, None),
        };
        let rank = dims.map_or(-1, |d| d.len() as i64);
        let dims = dims.unwrap_or(&[]);
        let names: Vec<Option<CString>> = dims
            .iter()
            .map(|d| match d {
                Dim::Sym(s) => CString::new(s.replace('\0', "\u{FFFD}")).ok(),
                _ => None,
            })
            .collect();
        let ptrs = names
            .iter()
            .map(|n| n.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
            .collect();
        InfoStore {
            name,
            dtype,
            rank,
            dims: dims
                .iter()
                .map(|d| match d {
                    Dim::Known(k) => i64::try_from(*k).unwrap_or(-1),
                    _ => -1,
                })
                .collect(),
            _dim_names: names,
            dim_name_ptrs: ptrs,
        }
    }

    fn info(&self) -> TensorInfo {
        TensorInfo {
            name: self.name.as_ptr(),
            dtype: self.dtype,
            rank: self.rank,
            dims: self.dims.as_ptr(),
            dim_names: self.dim_name_ptrs.as_ptr(),
        }
    }
}

/// A loaded and compiled model.
pub struct Model {
    compiled: CompiledModel,
    inputs: Vec<InfoStore>,
    outputs: Vec<InfoStore>,
    output_names: Vec<String>,
}

impl Model {
    /// Imports `model` and compiles it with `opts`.
    pub fn compile(model: &carve::Model, opts: &Options) -> Result<Model, Error> {
        let compiled = opts
            .compiler()?
            .compile(model)
            .map_err(|e| Error::new(Status::Compile, format!("compiling: {}", chain(&e))))?;
        let g = compiled.graph();
        let inputs = g.inputs.iter().map(|&v| InfoStore::new(g, v)).collect();
        let outputs = g.outputs.iter().map(|&v| InfoStore::new(g, v)).collect();
        let output_names = g.outputs.iter().map(|&v| g.value(v).name.clone()).collect();
        Ok(Model {
            compiled,
            inputs,
            outputs,
            output_names,
        })
    }

    /// Loads the ONNX file at `path` and compiles it.
    pub fn load(path: &str, opts: &Options) -> Result<Model, Error> {
        let m = carve::load(path).map_err(|e| Error::new(Status::Load, chain(&e)))?;
        Model::compile(&m, opts)
    }

    /// Loads an ONNX model from bytes (no external data) and compiles it.
    pub fn load_bytes(bytes: &[u8], opts: &Options) -> Result<Model, Error> {
        let m =
            carve::frontend::load_bytes(bytes).map_err(|e| Error::new(Status::Load, chain(&e)))?;
        carve::ir::verify::verify(&m.graph)
            .map_err(|e| Error::new(Status::Load, format!("<memory>: {e}")))?;
        Model::compile(&m, opts)
    }

    /// Number of inputs.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// Number of outputs.
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// Input `i`'s description.
    pub fn input_info(&self, i: usize) -> Result<TensorInfo, Error> {
        self.inputs.get(i).map(InfoStore::info).ok_or_else(|| {
            Error::invalid(format!(
                "input index {i} is out of range (the model has {} inputs)",
                self.inputs.len()
            ))
        })
    }

    /// Output `i`'s description.
    pub fn output_info(&self, i: usize) -> Result<TensorInfo, Error> {
        self.outputs.get(i).map(InfoStore::info).ok_or_else(|| {
            Error::invalid(format!(
                "output index {i} is out of range (the model has {} outputs)",
                self.outputs.len()
            ))
        })
    }

    /// Runs on named tensors; returns the outputs (name, tensor) in graph order.
    pub fn run(&self, inputs: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, Error> {
        let named = inputs
            .into_iter()
            .map(|(n, t)| (n, Value::Tensor(t)))
            .collect();
        let outs = self.compiled.run(named).map_err(|e| match e {
            CompileError::Input(e) => Error::new(Status::Input, e.to_string()),
            e => Error::new(Status::Run, chain(&e)),
        })?;
        outs.into_iter()
            .map(|(name, v)| match v {
                Value::Tensor(t) => Ok((name, t)),
                other => Err(Error::new(
                    Status::Run,
                    format!(
                        "output '{name}' is a {}: the C API returns tensors only",
                        other.kind()
                    ),
                )),
            })
            .collect()
    }

    /// The position of output `name`.
    pub fn output_index(&self, name: &str) -> Result<usize, Error> {
        self.output_names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "the model has no output named '{name}'; its outputs are: {}",
                    self.output_names.join(", ")
                ))
            })
    }
}

/// A NUL-terminated C string as UTF-8; `what` names it in errors.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string.
pub unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: not null, and the caller promises a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// The element type of ONNX code `code`; `what` names the tensor in errors.
pub fn dtype_of(code: i32, what: &str) -> Result<DType, Error> {
    DType::from_onnx_code(code).ok_or_else(|| {
        Error::new(
            Status::Input,
            format!("{what}: {code} is not an element type code (carve_dtype)"),
        )
    })
}

/// Reads a C input tensor (checked: dtype, rank, dims, byte size) into a named [`Tensor`].
///
/// # Safety
/// `t.name` is null or a NUL-terminated string; `t.data` is null or points to `t.byte_size`
/// readable bytes.
pub unsafe fn read_input(t: &CTensor, index: usize) -> Result<(String, Tensor), Error> {
    // SAFETY: forwarded from the caller.
    let name = unsafe { str_arg(t.name, &format!("inputs[{index}].name")) }?.to_string();
    let what = format!("input '{name}'");
    let dtype = dtype_of(t.dtype, &what)?;
    if t.rank > MAX_RANK {
        return Err(Error::new(
            Status::Input,
            format!(
                "{what}: rank {} is above CARVE_MAX_RANK ({MAX_RANK})",
                t.rank
            ),
        ));
    }
    let shape: Vec<usize> = t.shape[..t.rank]
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            Error::new(
                Status::Input,
                format!("{what}: shape {:?} has a negative dim", &t.shape[..t.rank]),
            )
        })?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::new(Status::Input, format!("{what}: shape {shape:?} overflows")))?;
    let need = dtype.storage_bytes(n as u64).ok_or_else(|| {
        Error::new(
            Status::Input,
            format!("{what}: {dtype} tensors cannot be passed as bytes"),
        )
    })?;
    if need != t.byte_size as u64 {
        return Err(Error::new(
            Status::Input,
            format!(
                "{what}: shape {shape:?} of {dtype} needs {need} bytes, byte_size is {}",
                t.byte_size
            ),
        ));
    }
    let bytes: &[u8] = if t.byte_size == 0 {
        &[]
    } else if t.data.is_null() {
        return Err(Error::invalid(format!("{what}: data is NULL")));
    } else {
        // SAFETY: not null, and the caller promises `byte_size` readable bytes.
        unsafe { std::slice::from_raw_parts(t.data as *const u8, t.byte_size) }
    };
    let data = Data::from_le_bytes(dtype, bytes, n)
        .map_err(|e| Error::new(Status::Input, format!("{what}: {}", e.0)))?;
    let tensor = Tensor::new(shape, data)
        .map_err(|e| Error::new(Status::Input, format!("{what}: {}", e.0)))?;
    Ok((name, tensor))
}

/// Writes `t`'s dtype and shape into `out`; the rank must fit.
pub fn describe(out: &mut CTensor, name: &str, t: &Tensor) -> Result<(), Error> {
    if t.rank() > MAX_RANK {
        return Err(Error::new(
            Status::Run,
            format!(
                "output '{name}' has rank {}, above CARVE_MAX_RANK ({MAX_RANK})",
                t.rank()
            ),
        ));
    }
    out.dtype = t.dtype().onnx_code();
    out.rank = t.rank();
    out.shape = [0; MAX_RANK];
    for (s, &d) in out.shape.iter_mut().zip(&t.shape) {
        *s = d as i64;
    }
    Ok(())
}

/// The little-endian byte size of `t`.
pub fn byte_size(name: &str, t: &Tensor) -> Result<usize, Error> {
    t.dtype()
        .storage_bytes(t.len() as u64)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| {
            Error::new(
                Status::Run,
                format!(
                    "output '{name}' is a {} tensor, which has no byte form",
                    t.dtype()
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &CStr, dtype: DType, shape: &[i64], data: &mut [u8]) -> CTensor {
        let mut s = [0i64; MAX_RANK];
        s[..shape.len()].copy_from_slice(shape);
        CTensor {
            name: name.as_ptr(),
            dtype: dtype.onnx_code(),
            rank: shape.len(),
            shape: s,
            data: data.as_mut_ptr() as *mut c_void,
            byte_size: data.len(),
        }
    }

    #[test]
    fn inputs_are_read_and_checked() {
        let mut bytes: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = input(c"x", DType::F32, &[2, 3], &mut bytes);
        // SAFETY: the name and the data live through the call.
        let (name, x) = unsafe { read_input(&t, 0) }.unwrap();
        assert_eq!(name, "x");
        assert_eq!(x.shape, vec![2, 3]);
        assert_eq!(x.data, Data::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));

        let mut short = t;
        short.byte_size = 20;
        // SAFETY: as above (fewer bytes than there are).
        let e = unsafe { read_input(&short, 0) }.unwrap_err();
        assert_eq!(e.status, Status::Input);
        assert!(
            e.msg.contains("input 'x'") && e.msg.contains("needs 24 bytes"),
            "{}",
            e.msg
        );

        let mut neg = t;
        neg.shape[1] = -3;
        // SAFETY: as above.
        let e = unsafe { read_input(&neg, 0) }.unwrap_err();
        assert!(e.msg.contains("negative dim"), "{}", e.msg);

        let mut bad = t;
        bad.dtype = 999;
        // SAFETY: as above.
        let e = unsafe { read_input(&bad, 0) }.unwrap_err();
        assert!(
            e.msg.contains("999 is not an element type code"),
            "{}",
            e.msg
        );

        let mut unnamed = t;
        unnamed.name = std::ptr::null();
        // SAFETY: as above (a null name is allowed and rejected).
        let e = unsafe { read_input(&unnamed, 3) }.unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        assert_eq!(e.msg, "inputs[3].name is NULL");
    }

    #[test]
    fn outputs_are_described() {
        let t = Tensor::new(vec![2, 1], Data::I64(vec![7, 8])).unwrap();
        let mut out = CTensor {
            name: std::ptr::null(),
            dtype: 0,
            rank: 0,
            shape: [9; MAX_RANK],
            data: std::ptr::null_mut(),
            byte_size: 0,
        };
        describe(&mut out, "y", &t).unwrap();
        assert_eq!((out.dtype, out.rank), (DType::I64.onnx_code(), 2));
        assert_eq!(&out.shape[..3], &[2, 1, 0]);
        assert_eq!(byte_size("y", &t).unwrap(), 16);
    }
}
