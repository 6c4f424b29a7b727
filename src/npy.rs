//! `.npy` / `.npz` reading and writing for runtime tensors (numeric and bool dtypes), via the `npyz` crate;
//! `.npz` archives are written through a temporary file renamed into place.

use std::io::{Read, Seek, Write};
use std::path::Path;

use carve_ir::DType;
use carve_runtime::{Data, Tensor};
use half::f16;
use npyz::WriterBuilder;

/// Why an array file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("'{path}': {msg}")]
pub struct NpyError {
    /// The file (and array name inside an archive).
    pub path: String,
    /// What is wrong.
    pub msg: String,
}

fn npy_err(path: &str, msg: impl ToString) -> NpyError {
    NpyError {
        path: path.to_string(),
        msg: msg.to_string(),
    }
}

fn from_npy<R: Read>(f: npyz::NpyFile<R>, what: &str) -> Result<Tensor, NpyError> {
    let shape: Vec<usize> = f.shape().iter().map(|&d| d as usize).collect();
    let npyz::DType::Plain(ts) = f.dtype() else {
        return Err(npy_err(what, "structured arrays are not supported"));
    };
    let code = ts.to_string();
    let e = |x: std::io::Error| npy_err(what, x);
    let data = match code.trim_start_matches(['<', '|', '=']) {
        "f4" => Data::F32(f.into_vec().map_err(e)?),
        "f8" => Data::F64(f.into_vec().map_err(e)?),
        "f2" => Data::F16(f.into_vec::<f16>().map_err(e)?),
        "i8" => Data::I64(f.into_vec().map_err(e)?),
        "i4" => Data::I32(f.into_vec().map_err(e)?),
        "i2" => Data::I16(f.into_vec().map_err(e)?),
        "i1" => Data::I8(f.into_vec().map_err(e)?),
        "u8" => Data::U64(f.into_vec().map_err(e)?),
        "u4" => Data::U32(f.into_vec().map_err(e)?),
        "u2" => Data::U16(f.into_vec().map_err(e)?),
        "u1" => Data::U8(f.into_vec().map_err(e)?),
        "b1" => Data::Bool(f.into_vec().map_err(e)?),
        _ => {
            return Err(npy_err(
                what,
                format!("array dtype '{code}' is not supported (numeric and bool arrays are)"),
            ));
        }
    };
    Tensor::new(shape, data).map_err(|x| npy_err(what, x.0))
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<Tensor, NpyError> {
    let what = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| npy_err(&what, e))?;
    let f = npyz::NpyFile::new(std::io::BufReader::new(file)).map_err(|e| npy_err(&what, e))?;
    from_npy(f, &what)
}

/// Reads every array of a `.npz` archive, in archive order. (The archive is read with the `zip` crate
/// directly, so that npyz's own npz support, which pulls in every zip compression codec, is not needed.)
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>, NpyError> {
    Ok(read_npz_where(path, |_| true)?.0)
}

/// Arrays read from an archive (name, tensor) and the names of every array it holds.
pub type NpzSelection = (Vec<(String, Tensor)>, Vec<String>);

/// Reads the arrays of a `.npz` archive whose names `want` accepts, in archive order, and returns them
/// with the names of every array in the archive (arrays not read may have any dtype, e.g. strings).
pub fn read_npz_where(path: &Path, want: impl Fn(&str) -> bool) -> Result<NpzSelection, NpyError> {
    let what = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| npy_err(&what, e))?;
    let mut zip =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| npy_err(&what, e))?;
    let (mut out, mut names) = (Vec::new(), Vec::new());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| npy_err(&what, e))?;
        let Some(name) = entry.name().strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        names.push(name.clone());
        if !want(&name) {
            continue;
        }
        let label = format!("{what}:{name}");
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| npy_err(&label, e))?;
        let f = npyz::NpyFile::new(bytes.as_slice()).map_err(|e| npy_err(&label, e))?;
        out.push((name, from_npy(f, &label)?));
    }
    Ok((out, names))
}

fn write_typed<T: npyz::AutoSerialize + Clone, W: Write>(
    w: W,
    shape: &[u64],
    v: &[T],
) -> std::io::Result<()> {
    let mut wr = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(w)
        .begin_nd()?;
    wr.extend(v.iter().cloned())?;
    wr.finish()
}

/// Encodes a tensor as `.npy` bytes.
pub fn npy_bytes(t: &Tensor) -> Result<Vec<u8>, String> {
    let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
    let mut buf = Vec::new();
    let r = match &t.data {
        Data::F32(v) => write_typed(&mut buf, &shape, v),
        Data::F64(v) => write_typed(&mut buf, &shape, v),
        Data::F16(v) => write_typed(&mut buf, &shape, v),
        Data::I64(v) => write_typed(&mut buf, &shape, v),
        Data::I32(v) => write_typed(&mut buf, &shape, v),
        Data::I16(v) => write_typed(&mut buf, &shape, v),
        Data::I8(v) => write_typed(&mut buf, &shape, v),
        Data::U64(v) => write_typed(&mut buf, &shape, v),
        Data::U32(v) => write_typed(&mut buf, &shape, v),
        Data::U16(v) => write_typed(&mut buf, &shape, v),
        Data::U8(v) => write_typed(&mut buf, &shape, v),
        Data::Bool(v) => write_typed(&mut buf, &shape, v),
        _ => return Err(format!("{} tensors cannot be written as .npy", t.dtype())),
    };
    r.map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Writes a tensor as a `.npy` file, atomically.
pub fn write_npy(path: &Path, t: &Tensor) -> Result<(), NpyError> {
    let what = path.display().to_string();
    let bytes = npy_bytes(t).map_err(|m| npy_err(&what, m))?;
    crate::output::write_atomic(path, &bytes).map_err(|e| npy_err(&what, e))
}

/// Writes named tensors as an `.npz` archive (uncompressed), atomically.
pub fn write_npz(path: &Path, arrays: &[(String, Tensor)]) -> Result<(), NpyError> {
    let what = path.display().to_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| npy_err(&what, e))?;
    {
        let mut z = zip::ZipWriter::new(tmp.as_file());
        let opts =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, t) in arrays {
            let bytes = npy_bytes(t).map_err(|m| npy_err(&format!("{what}:{name}"), m))?;
            z.start_file(format!("{name}.npy"), opts)
                .map_err(|e| npy_err(&what, e))?;
            z.write_all(&bytes).map_err(|e| npy_err(&what, e))?;
        }
        let mut f = z.finish().map_err(|e| npy_err(&what, e))?;
        f.flush().map_err(|e| npy_err(&what, e))?;
        f.rewind().map_err(|e| npy_err(&what, e))?;
    }
    tmp.persist(path).map_err(|e| npy_err(&what, e.error))?;
    Ok(())
}

/// The dtype names `.npy` supports here, for error messages.
pub fn supported_dtypes() -> Vec<DType> {
    vec![
        DType::F32,
        DType::F64,
        DType::F16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U64,
        DType::U32,
        DType::U16,
        DType::U8,
        DType::Bool,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npz_round_trips_numeric_and_bool_tensors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.npz");
        let a = Tensor::new(vec![2, 2], Data::F32(vec![1.0, 2.0, 3.0, 4.5])).unwrap();
        let b = Tensor::new(vec![3], Data::Bool(vec![true, false, true])).unwrap();
        let c = Tensor::new(vec![], Data::I64(vec![-7])).unwrap();
        let arrays = vec![
            ("a".to_string(), a),
            ("b".to_string(), b),
            ("c".to_string(), c),
        ];
        write_npz(&p, &arrays).unwrap();
        assert_eq!(read_npz(&p).unwrap(), arrays);
        let one = d.path().join("a.npy");
        write_npy(&one, &arrays[0].1).unwrap();
        assert_eq!(read_npy(&one).unwrap(), arrays[0].1);
    }
}
