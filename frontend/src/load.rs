//! Reading model files: memory-map (no copy), decode with prost straight from the map, import.
//!
//! Weights in `raw_data` stay slices of the map; external data is resolved in the model file's directory.

use std::io::ErrorKind;
use std::path::Path;

use bytes::{Buf, Bytes};
use prost::Message;

use crate::error::ImportError;
use crate::onnx::import::{Model, import_model};
use crate::proto::ModelProto;
use crate::tensor::TensorLoader;

fn io_err(path: &Path, source: std::io::Error) -> ImportError {
    ImportError::Io {
        path: path.into(),
        error: source,
    }
}

/// Memory-maps a model file, refusing directories, non-regular files and empty files up front.
fn map_model_file(path: &Path) -> Result<Bytes, ImportError> {
    // Checked before opening: opening a FIFO would block, and a directory would fail obscurely later.
    let meta = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    let not_a_file = |what: &str| {
        io_err(
            path,
            std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("it is {what}, not an ONNX model file"),
            ),
        )
    };
    if meta.is_dir() {
        return Err(not_a_file("a directory"));
    }
    if !meta.is_file() {
        return Err(not_a_file("not a regular file"));
    }
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    if !meta.is_file() {
        return Err(not_a_file("not a regular file"));
    }
    if meta.len() == 0 {
        return Err(empty(&path.display().to_string()));
    }
    // SAFETY: the map is read-only and private to this process, and its bytes are only read through
    // `&[u8]` views (prost slices it into `Bytes`). If another process truncates the file while it is
    // mapped, reads past the new end fault (SIGBUS); model files are not expected to change while carve
    // reads them — the same contract every memory-mapping ONNX runtime has.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_err(path, e))?;
    Ok(Bytes::from_owner(map))
}

fn empty(origin: &str) -> ImportError {
    ImportError::Decode {
        path: origin.to_string(),
        msg: "it is empty (0 bytes)".into(),
    }
}

/// Decodes a `ModelProto`; `origin` names the file (or `<memory>`) in errors.
fn decode(bytes: impl Buf, origin: &str) -> Result<ModelProto, ImportError> {
    if !bytes.has_remaining() {
        return Err(empty(origin));
    }
    let size = bytes.remaining();
    ModelProto::decode(bytes).map_err(|e| ImportError::Decode {
        path: origin.to_string(),
        msg: format!("{e} (file size {size} bytes)"),
    })
}

/// Decodes a model file without importing it (for tools that inspect the raw protobuf). The file is
/// memory-mapped and `raw_data` fields are slices of the map.
pub fn decode_file(path: impl AsRef<Path>) -> Result<ModelProto, ImportError> {
    let path = path.as_ref();
    decode(map_model_file(path)?, &path.display().to_string())
}

/// Loads and imports a model file; external data is resolved in (and confined to) its directory.
pub fn load(path: impl AsRef<Path>) -> Result<Model, ImportError> {
    let path = path.as_ref();
    let proto = decode_file(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    import_model(&proto, &TensorLoader::in_dir(dir))
}

/// Imports a model from bytes; external data is refused (there is no directory to resolve it in).
pub fn load_bytes(bytes: &[u8]) -> Result<Model, ImportError> {
    let proto = decode(bytes, "<memory>")?;
    import_model(&proto, &TensorLoader::in_memory())
}
