//! The manifest an AOT object carries: a NUL-terminated text blob in the read-only data symbol
//! `<prefix>_manifest` that starts with [`MAGIC`] and then holds one `key=value` line per entry (model
//! content hash, carve version, target and options, I/O, sizes). Because it is plain text behind a
//! magic line, it can be found in an object, an archive or a linked executable by scanning the bytes
//! ([`find_manifests`]), without parsing the container format.

use std::fmt;

/// First line of every manifest (versioned: a reader knows the format from it).
pub const MAGIC: &str = "CARVE-AOT-MANIFEST/1";

/// Key/value entries in a fixed order (the order they were added in, which is deterministic).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// The entries.
    pub entries: Vec<(String, String)>,
}

impl Manifest {
    /// Appends an entry. Newlines and NULs in the value are replaced by spaces (one line per entry).
    pub fn push(&mut self, key: &str, value: impl fmt::Display) {
        let v: String = value
            .to_string()
            .chars()
            .map(|c| if c == '\n' || c == '\0' { ' ' } else { c })
            .collect();
        self.entries.push((key.to_string(), v));
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The text stored in the object (without the terminating NUL).
    pub fn to_text(&self) -> String {
        let mut s = String::from(MAGIC);
        s.push('\n');
        for (k, v) in &self.entries {
            s.push_str(k);
            s.push('=');
            s.push_str(v);
            s.push('\n');
        }
        s
    }

    /// Parses a manifest text (as written by [`Manifest::to_text`]); `None` if it lacks the magic line.
    pub fn parse(text: &str) -> Option<Manifest> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let mut m = Manifest::default();
        for l in lines {
            if let Some((k, v)) = l.split_once('=') {
                m.entries.push((k.to_string(), v.to_string()));
            }
        }
        (!m.entries.is_empty()).then_some(m)
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.entries.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &self.entries {
            writeln!(f, "{k:<w$}  {v}")?;
        }
        Ok(())
    }
}

/// Every manifest found in `bytes` (an object file, archive or executable), in file order.
pub fn find_manifests(bytes: &[u8]) -> Vec<Manifest> {
    let magic = MAGIC.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + magic.len() <= bytes.len() {
        let Some(p) = bytes[i..].windows(magic.len()).position(|w| w == magic) else {
            break;
        };
        let start = i + p;
        let end = bytes[start..]
            .iter()
            .position(|&b| b == 0)
            .map_or(bytes.len(), |e| start + e);
        if let Some(m) = std::str::from_utf8(&bytes[start..end])
            .ok()
            .and_then(Manifest::parse)
        {
            out.push(m);
        }
        i = end.max(start + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_found_inside_other_bytes() {
        let mut m = Manifest::default();
        m.push("name", "model");
        m.push("odd", "a\nb");
        let mut bytes = b"\x7fELF junk".to_vec();
        bytes.extend_from_slice(m.to_text().as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(b"more junk CARVE-AOT-MANIFEST/0\n");
        let found = find_manifests(&bytes);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].get("name"), Some("model"));
        assert_eq!(found[0].get("odd"), Some("a b"));
        assert_eq!(found[0], m);
    }
}
