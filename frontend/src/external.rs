//! External tensor data (`data_location: EXTERNAL`): parses the `location` / `offset` / `length` /
//! `checksum` keys, confines `location` to the model's directory, memory-maps each file once and hands
//! out zero-copy slices of the map.
//!
//! Confinement refuses absolute paths, drive prefixes, `..` components, locations whose canonical form
//! (symbolic links resolved) leaves the canonical model directory, and anything that is not a regular
//! file: the path traversal classes of ONNX's CVE-2022-25882, CVE-2024-27318 and CVE-2026-27489.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use carve_ir::Buffer;

use crate::error::ImportError;
use crate::proto::TensorProto;

/// Where a tensor's bytes live, as given by its `external_data` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExternalRef {
    /// The `location` key, verbatim.
    location: String,
    /// The `offset` key (0 when absent).
    offset: u64,
    /// The `length` key, if given.
    length: Option<u64>,
}

fn ext_err(t: &TensorProto, msg: impl Into<String>) -> ImportError {
    ImportError::ExternalData {
        tensor: t.name.clone(),
        msg: msg.into(),
    }
}

/// Reads the `external_data` key/value entries of `t`. Unknown keys are ignored (as ONNX does);
/// `checksum` is accepted but not verified (neither ONNX nor ONNX Runtime verifies it, and doing so
/// would read every byte of every weight file at load time).
fn parse_ref(t: &TensorProto) -> Result<ExternalRef, ImportError> {
    let mut location = None;
    let mut offset = None;
    let mut length = None;
    let mut checksum = None;
    for e in &t.external_data {
        let slot = match e.key.as_str() {
            "location" => &mut location,
            "offset" => &mut offset,
            "length" => &mut length,
            "checksum" => &mut checksum,
            _ => continue,
        };
        if slot.replace(e.value.as_str()).is_some() {
            return Err(ext_err(t, format!("key '{}' is given twice", e.key)));
        }
    }
    let location = location.ok_or_else(|| {
        ext_err(
            t,
            "data_location is EXTERNAL but there is no 'location' key",
        )
    })?;
    let number = |key: &str, v: Option<&str>| -> Result<Option<u64>, ImportError> {
        v.map(|s| {
            s.trim().parse::<u64>().map_err(|_| {
                ext_err(
                    t,
                    format!("'{key}' is '{s}', which is not a non-negative integer"),
                )
            })
        })
        .transpose()
    };
    Ok(ExternalRef {
        location: location.to_string(),
        offset: number("offset", offset)?.unwrap_or(0),
        length: number("length", length)?,
    })
}

/// The relative path a `location` names, or why it is refused. Both `/` and `\` separate components
/// (a model written on Windows may use either, and a Windows runtime would honour `..\`).
fn relative_location(location: &str) -> Result<PathBuf, String> {
    if location.is_empty() {
        return Err("the location is empty".into());
    }
    if location.contains('\0') {
        return Err("the location contains a NUL byte".into());
    }
    let bytes = location.as_bytes();
    let drive_prefix = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if Path::new(location).has_root() || location.starts_with(['/', '\\']) || drive_prefix {
        return Err(format!(
            "location '{location}' is an absolute path; external data must be named relative to the \
             model's directory"
        ));
    }
    let mut out = PathBuf::new();
    for part in location.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "location '{location}' has a '..' component; external data must stay inside the \
                     model's directory"
                ));
            }
            p => out.push(p),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!("location '{location}' names no file"));
    }
    Ok(out)
}

/// Memory maps of external data files, each mapped once, confined to one model directory.
#[derive(Debug, Default)]
pub(crate) struct ExternalFiles {
    /// The model's directory; `None` when the model came from memory (external data is refused).
    base_dir: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `base_dir`, canonicalized on first use.
    canonical_base: Option<PathBuf>,
    /// Mapped files by canonical path.
    maps: HashMap<PathBuf, Buffer>,
}

impl ExternalFiles {
    /// External data resolved in (and confined to) `base_dir`; `None` refuses external data.
    pub(crate) fn new(base_dir: Option<PathBuf>) -> ExternalFiles {
        ExternalFiles {
            base_dir,
            state: Mutex::default(),
        }
    }

    /// The directory external data is resolved in.
    pub(crate) fn base_dir(&self) -> Option<&Path> {
        self.base_dir.as_deref()
    }

    /// The `need` bytes of external tensor `t`: a zero-copy slice of its file's memory map.
    pub(crate) fn read(&self, t: &TensorProto, need: u64) -> Result<Buffer, ImportError> {
        let Some(base) = &self.base_dir else {
            return Err(ext_err(
                t,
                "the model was loaded from memory, so there is no directory to resolve external \
                 data in; load it from its file instead",
            ));
        };
        let r = parse_ref(t)?;
        let rel = relative_location(&r.location).map_err(|m| ext_err(t, m))?;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let canonical_base = match &state.canonical_base {
            Some(b) => b.clone(),
            None => {
                let b = std::fs::canonicalize(base).map_err(|e| {
                    ext_err(
                        t,
                        format!(
                            "cannot resolve the model directory '{}': {e}",
                            base.display()
                        ),
                    )
                })?;
                state.canonical_base = Some(b.clone());
                b
            }
        };
        let path = std::fs::canonicalize(canonical_base.join(&rel))
            .map_err(|e| ext_err(t, format!("cannot open location '{}': {e}", r.location)))?;
        if !path.starts_with(&canonical_base) {
            return Err(ext_err(
                t,
                format!(
                    "location '{}' resolves to '{}', outside the model directory '{}' (through a \
                     symbolic link); external data must stay inside the model's directory",
                    r.location,
                    path.display(),
                    canonical_base.display()
                ),
            ));
        }
        let file = match state.maps.get(&path) {
            Some(b) => b.clone(),
            None => {
                let b = map_regular_file(&path)
                    .map_err(|m| ext_err(t, format!("location '{}': {m}", r.location)))?;
                state.maps.insert(path, b.clone());
                b
            }
        };
        drop(state);
        slice(t, &r, &file, need)
    }
}

/// Memory-maps `path` (already canonical) after checking it is a regular file.
fn map_regular_file(path: &Path) -> Result<Buffer, String> {
    // Checked before opening: opening a FIFO would block.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    let file = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    // Checked again on the opened handle, in case the path was swapped in between.
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    // SAFETY: the map is read-only and private to this process. Its bytes are only ever read through
    // `&[u8]` views; if another process truncates the file while it is mapped, reads past the new end
    // fault (SIGBUS) — the same contract every memory-mapping ONNX runtime has. Weight files are not
    // expected to change while carve reads them.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot map it: {e}"))?;
    Ok(Buffer::new(Arc::new(map)))
}

/// The bytes `[offset, offset + need)` of `file`, checking the declared `length` and the file size.
fn slice(
    t: &TensorProto,
    r: &ExternalRef,
    file: &Buffer,
    need: u64,
) -> Result<Buffer, ImportError> {
    let size = file.len() as u64;
    let loc = &r.location;
    if r.offset > size {
        return Err(ext_err(
            t,
            format!(
                "offset {} is past the end of '{loc}' ({size} bytes)",
                r.offset
            ),
        ));
    }
    let len = r.length.unwrap_or(need);
    let end = r.offset.checked_add(len).filter(|&e| e <= size);
    if end.is_none() {
        return Err(ext_err(
            t,
            format!(
                "bytes {}..{}+{len} run past the end of '{loc}' ({size} bytes)",
                r.offset, r.offset
            ),
        ));
    }
    if len != need {
        return Err(ext_err(
            t,
            format!("length is {len} bytes but the tensor's dtype and dims need {need}"),
        ));
    }
    let (Ok(start), Ok(len)) = (usize::try_from(r.offset), usize::try_from(len)) else {
        return Err(ext_err(
            t,
            "offset or length does not fit this platform's address space",
        ));
    };
    file.slice(start, len)
        .ok_or_else(|| ext_err(t, format!("bytes past the end of '{loc}'")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::StringStringEntryProto;

    fn tensor(kv: &[(&str, &str)]) -> TensorProto {
        TensorProto {
            name: "w".into(),
            external_data: kv
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn relative_locations_are_split_on_both_separators() {
        assert_eq!(
            relative_location("a/./b\\c.bin"),
            Ok(PathBuf::from("a/b/c.bin"))
        );
        assert_eq!(relative_location("w.bin"), Ok(PathBuf::from("w.bin")));
    }

    #[test]
    fn escaping_locations_are_refused() {
        for bad in [
            "../w.bin",
            "a/../../w.bin",
            "..\\w.bin",
            "/etc/passwd",
            "\\\\server\\share\\w",
            "C:\\w.bin",
            "c:w.bin",
            "",
            ".",
            "./",
            "a\0b",
        ] {
            assert!(relative_location(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn external_keys_are_parsed_and_checked() {
        let r = parse_ref(&tensor(&[
            ("location", "w.bin"),
            ("offset", "16"),
            ("length", "8"),
            ("checksum", "abc"),
            ("basepath", "ignored"),
        ]));
        assert_eq!(
            r.ok(),
            Some(ExternalRef {
                location: "w.bin".into(),
                offset: 16,
                length: Some(8),
            })
        );
        let msg = |kv: &[(&str, &str)]| parse_ref(&tensor(kv)).err().map(|e| e.to_string());
        assert!(msg(&[("offset", "1")]).is_some_and(|m| m.contains("no 'location'")));
        assert!(
            msg(&[("location", "a"), ("offset", "-1")]).is_some_and(|m| m.contains("non-negative"))
        );
        assert!(msg(&[("location", "a"), ("location", "b")]).is_some_and(|m| m.contains("twice")));
    }

    #[test]
    fn external_data_is_refused_without_a_model_directory() {
        let files = ExternalFiles::new(None);
        let err = files.read(&tensor(&[("location", "w.bin")]), 4);
        assert!(
            matches!(err, Err(ImportError::ExternalData { msg, .. }) if msg.contains("memory"))
        );
    }
}
