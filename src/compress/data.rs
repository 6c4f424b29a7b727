//! Calibration and evaluation data for `carve compress`: a `.npz` archive whose arrays are named like the
//! model's inputs (first axis = samples), optionally renamed (`FILE:INPUT=ARRAY,…`), or a folder of
//! `test_data_set_*` folders (ONNX test layout, `input_N.pb` / `.npy`). Integer arrays are converted to
//! the input's element type when every value fits (e.g. token ids stored as int32 for an int64 input);
//! anything else that does not fit the model is an error naming the input and the array.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use carve_ir::{DType, Graph, Type};
use carve_runtime::interp::elementwise::cast::cast;
use carve_runtime::{Data, Tensor};

pub use super::dataset::Dataset;

/// Where a dataset comes from: a file or folder and renamings `INPUT=ARRAY`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSpec {
    /// The `.npz` file or the folder of `test_data_set_*` folders.
    pub path: PathBuf,
    /// Model input ← array name, for archives whose arrays are named otherwise.
    pub rename: Vec<(String, String)>,
}

impl FromStr for DataSpec {
    type Err = String;

    /// `PATH` or `PATH:INPUT=ARRAY[,INPUT=ARRAY…]`.
    fn from_str(s: &str) -> Result<DataSpec, String> {
        let (path, map) = match s.rsplit_once(':') {
            Some((p, m)) if m.contains('=') => (p, Some(m)),
            _ => (s, None),
        };
        let mut rename = Vec::new();
        for pair in map.into_iter().flat_map(|m| m.split(',')) {
            let Some((input, array)) = pair.split_once('=') else {
                return Err(format!("'{pair}' is not INPUT=ARRAY"));
            };
            if input.is_empty() || array.is_empty() {
                return Err(format!("'{pair}' is not INPUT=ARRAY"));
            }
            rename.push((input.to_string(), array.to_string()));
        }
        if path.is_empty() {
            return Err("the data path is empty".into());
        }
        Ok(DataSpec {
            path: PathBuf::from(path),
            rename,
        })
    }
}

/// Why data could not be used with the model.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {msg}")]
pub struct DataError {
    /// The file or folder (and array).
    pub source_name: String,
    /// What is wrong.
    pub msg: String,
}

fn err(source: impl std::fmt::Display, msg: impl Into<String>) -> DataError {
    DataError {
        source_name: source.to_string(),
        msg: msg.into(),
    }
}

/// The graph's real inputs (not initializers with defaults) with their tensor types.
fn model_inputs(g: &Graph) -> Vec<(String, carve_ir::TensorType)> {
    g.inputs
        .iter()
        .filter_map(|&v| match g.ty(v) {
            Type::Tensor(t) => Some((g.value(v).name.clone(), t.clone())),
            _ => None,
        })
        .collect()
}

/// Loads `spec` for `g`. `labels` names an array of per-sample integer labels in the archive;
/// `indices` names an array of sample indices to keep (e.g. a calibration subset, `calib_idx`).
pub fn load(
    spec: &DataSpec,
    g: &Graph,
    labels: Option<&str>,
    indices: Option<&str>,
) -> Result<Dataset, DataError> {
    if spec.path.is_dir() {
        if labels.is_some() || indices.is_some() {
            return Err(err(
                spec.path.display(),
                "labels and sample indices are read from a .npz archive; a folder of test_data_set_* has none",
            ));
        }
        return load_folder(&spec.path, g);
    }
    load_npz(spec, g, labels, indices)
}

fn load_npz(
    spec: &DataSpec,
    g: &Graph,
    labels: Option<&str>,
    indices: Option<&str>,
) -> Result<Dataset, DataError> {
    let src = spec.path.display().to_string();
    let inputs = model_inputs(g);
    let array_of = |input: &str| -> String {
        spec.rename
            .iter()
            .find(|(i, _)| i == input)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| input.to_string())
    };
    for (input, _) in &spec.rename {
        if !inputs.iter().any(|(n, _)| n == input) {
            let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
            return Err(err(
                &src,
                format!(
                    "'{input}' is not an input of the model (its inputs: {})",
                    names.join(", ")
                ),
            ));
        }
    }
    let mut wanted: Vec<String> = inputs.iter().map(|(n, _)| array_of(n)).collect();
    wanted.extend(labels.map(str::to_string));
    wanted.extend(indices.map(str::to_string));
    let (arrays, names) = crate::npy::read_npz_where(&spec.path, |n| wanted.iter().any(|w| w == n))
        .map_err(|e| err(&src, e.to_string()))?;
    let get = |name: &str| -> Result<&Tensor, DataError> {
        arrays
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| {
                err(
                    &src,
                    format!(
                        "has no array '{name}' (it has: {}); rename with {}:INPUT=ARRAY",
                        names.join(", "),
                        src
                    ),
                )
            })
    };
    let mut per_input = Vec::new();
    let mut count: Option<usize> = None;
    for (input, ty) in &inputs {
        let array = array_of(input);
        let a = get(&array)?;
        let what = format!("{src}:{array} (input '{input}')");
        let Some(&n) = a.shape.first() else {
            return Err(err(&what, "is a scalar; the first axis must index samples"));
        };
        if let Some(c) = count.filter(|&c| c != n) {
            return Err(err(
                &what,
                format!("has {n} samples, other inputs have {c}"),
            ));
        }
        count = Some(n);
        let a = convert(a, ty.dtype).map_err(|m| err(&what, m))?;
        per_input.push((input.clone(), ty.clone(), a));
    }
    let n = count.unwrap_or(0);
    // Each array's bytes once (not once per sample).
    let bytes: Vec<Vec<u8>> = per_input
        .iter()
        .map(|(input, _, a)| {
            a.data.to_le_bytes().ok_or_else(|| {
                err(
                    format!("{src} (input '{input}')"),
                    "string arrays are not model inputs",
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = Vec::with_capacity(per_input.len());
        for ((input, ty, a), b) in per_input.iter().zip(&bytes) {
            let t = sample(a, b, i, ty).map_err(|m| err(format!("{src} (input '{input}')"), m))?;
            s.push((input.clone(), t));
        }
        samples.push(s);
    }
    let labels = match labels {
        Some(l) => Some(int_values(get(l)?).map_err(|m| err(format!("{src}:{l}"), m))?),
        None => None,
    };
    if let Some(l) = &labels
        && l.len() != n
    {
        return Err(err(&src, format!("{} labels for {n} samples", l.len())));
    }
    let ds = Dataset {
        source: src.clone(),
        samples,
        labels,
    };
    match indices {
        Some(name) => {
            let idx = int_values(get(name)?).map_err(|m| err(format!("{src}:{name}"), m))?;
            let idx: Vec<usize> = idx
                .iter()
                .map(|&i| usize::try_from(i).ok().filter(|&i| i < n))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    err(
                        format!("{src}:{name}"),
                        format!("an index is outside 0..{n}"),
                    )
                })?;
            Ok(ds.select(&idx))
        }
        None => Ok(ds),
    }
}

/// Integer values of a label or index array.
fn int_values(t: &Tensor) -> Result<Vec<i64>, String> {
    if t.dtype().is_float() || t.dtype() == DType::Bool {
        return Err(format!("must hold integers, not {}", t.dtype()));
    }
    let c = cast(
        t,
        DType::I64,
        false,
        carve_ir::ops::elementwise::RoundMode::Nearest,
    )?;
    match c.data {
        Data::I64(v) => Ok(v),
        _ => Err("could not be read as integers".into()),
    }
}

/// `a` converted to `to` when no value changes (integers that fit; integers to floats exactly
/// representable); floats are never rounded to integers.
fn convert(a: &Tensor, to: DType) -> Result<Tensor, String> {
    let from = a.dtype();
    if from == to {
        return Ok(a.clone());
    }
    if from.is_float() && !to.is_float() {
        return Err(format!(
            "holds {from} values but the input is {to}: convert the data (carve does not round floats to integers)"
        ));
    }
    let c = cast(a, to, false, carve_ir::ops::elementwise::RoundMode::Nearest)?;
    let back = cast(
        &c,
        from,
        false,
        carve_ir::ops::elementwise::RoundMode::Nearest,
    )?;
    if back.data.to_le_bytes() != a.data.to_le_bytes() {
        return Err(format!(
            "holds {from} values that do not fit the input's type {to}"
        ));
    }
    Ok(c)
}

/// Sample `i` of `a` (`[N, …]`, little-endian `bytes`) shaped for an input of type `ty`: `[1, …]` when the input's rank equals
/// the array's, `[…]` when it is one less.
fn sample(a: &Tensor, bytes: &[u8], i: usize, ty: &carve_ir::TensorType) -> Result<Tensor, String> {
    let rest = &a.shape[1..];
    let per: usize = rest.iter().product();
    let shape = match ty.rank() {
        Some(r) if r == a.shape.len() => [&[1][..], rest].concat(),
        Some(r) if r + 1 == a.shape.len() => rest.to_vec(),
        Some(r) => {
            return Err(format!(
                "array shape {:?} does not fit an input of rank {r} (samples on the first axis)",
                a.shape
            ));
        }
        None => [&[1][..], rest].concat(),
    };
    let w = (a.dtype().bits() / 8) as usize;
    if w == 0 || !a.dtype().bits().is_multiple_of(8) {
        return Err("sub-byte arrays are not supported".into());
    }
    let chunk = &bytes[i * per * w..(i + 1) * per * w];
    let data = Data::from_le_bytes(a.dtype(), chunk, per).map_err(|e| e.0)?;
    Tensor::new(shape, data).map_err(|e| e.0)
}

/// A folder of `test_data_set_*` folders, each with `input_N.pb` (or `.npy`) in the graph's input order.
fn load_folder(dir: &Path, g: &Graph) -> Result<Dataset, DataError> {
    let src = dir.display().to_string();
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| err(&src, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("test_data_set_"))
        })
        .collect();
    sets.sort();
    if sets.is_empty() {
        return Err(err(&src, "holds no test_data_set_* folder"));
    }
    let inputs = model_inputs(g);
    let mut samples = Vec::new();
    for set in &sets {
        let mut s = Vec::new();
        for (k, (name, ty)) in inputs.iter().enumerate() {
            let pb = set.join(format!("input_{k}.pb"));
            let npy = set.join(format!("input_{k}.npy"));
            let t = if pb.exists() {
                match crate::data::read_pb(&pb, &Type::Tensor(ty.clone())) {
                    Ok(carve_runtime::interp::Value::Tensor(t)) => t,
                    Ok(_) => return Err(err(pb.display(), "is not a tensor")),
                    Err(e) => return Err(err(pb.display(), e.msg)),
                }
            } else if npy.exists() {
                crate::npy::read_npy(&npy).map_err(|e| err(npy.display(), e.msg))?
            } else {
                return Err(err(
                    set.display(),
                    format!("has no input_{k}.pb or input_{k}.npy for input '{name}'"),
                ));
            };
            s.push((name.clone(), t));
        }
        samples.push(s);
    }
    Ok(Dataset {
        source: src,
        samples,
        labels: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_renames() {
        let s: DataSpec = "d/digits.npz:X=Xtr".parse().unwrap();
        assert_eq!(s.path, PathBuf::from("d/digits.npz"));
        assert_eq!(s.rename, vec![("X".to_string(), "Xtr".to_string())]);
        let s: DataSpec = "c:/x.npz".parse().unwrap();
        assert!(s.rename.is_empty());
        assert!("x.npz:=a".parse::<DataSpec>().is_err());
    }

    #[test]
    fn integer_arrays_convert_only_when_values_fit() {
        let a = Tensor::new(vec![2], Data::I32(vec![1, 300])).unwrap();
        assert_eq!(
            convert(&a, DType::I64).unwrap().data,
            Data::I64(vec![1, 300])
        );
        assert!(convert(&a, DType::U8).is_err());
        let f = Tensor::new(vec![1], Data::F32(vec![1.0])).unwrap();
        assert!(convert(&f, DType::I64).is_err());
    }
}
