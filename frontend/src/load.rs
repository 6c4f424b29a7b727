//! Reading model files: memory-map, decode with prost, import.

use std::path::Path;

use bytes::Bytes;
use prost::Message;

use crate::error::ImportError;
use crate::onnx::import::{Model, import_model};
use crate::proto::ModelProto;
use crate::tensor::TensorLoader;

/// Decodes a model file without importing it (for tools that inspect the raw protobuf).
pub fn decode_file(path: impl AsRef<Path>) -> Result<ModelProto, ImportError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io {
        path: path.into(),
        source,
    })?;
    // SAFETY: the map is read-only; model files are not expected to change while carve reads them.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ImportError::Io {
        path: path.into(),
        source,
    })?;
    let bytes = Bytes::from_owner(map);
    ModelProto::decode(bytes).map_err(|e| ImportError::Decode {
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

/// Loads and imports a model file; external data is resolved in (and confined to) its directory.
pub fn load(path: impl AsRef<Path>) -> Result<Model, ImportError> {
    let path = path.as_ref();
    let proto = decode_file(path)?;
    let loader = TensorLoader {
        base_dir: path.parent().map(Path::to_path_buf),
    };
    import_model(&proto, &loader)
}

/// Imports a model from bytes; external data is refused (there is no directory to resolve it in).
pub fn load_bytes(bytes: &[u8]) -> Result<Model, ImportError> {
    let proto = ModelProto::decode(bytes).map_err(|e| ImportError::Decode {
        path: "<memory>".into(),
        msg: e.to_string(),
    })?;
    import_model(&proto, &TensorLoader::default())
}
