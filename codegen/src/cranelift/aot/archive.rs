//! A static library (`.a`, GNU `ar` format with a symbol index) holding one object file, so a build
//! script can hand an AOT object to rustc/cargo with `cargo:rustc-link-lib=static=NAME`. The archive
//! is deterministic: zero timestamps, uid/gid 0, mode 644.

/// One 60-byte member header.
fn member_header(name: &str, size: usize) -> Vec<u8> {
    let mut h = format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n", 0, 0, 0, 644);
    h.truncate(60);
    h.into_bytes()
}

/// A GNU archive containing `object` under the member name `member` (at most 15 bytes) with an
/// index of the `symbols` it defines.
pub fn static_archive(member: &str, object: &[u8], symbols: &[String]) -> Vec<u8> {
    let member: String = member.chars().take(15).collect();
    // Symbol index: count, one offset per symbol (of the member header), NUL-terminated names.
    let names_len: usize = symbols.iter().map(|s| s.len() + 1).sum();
    let index_len = 4 + 4 * symbols.len() + names_len;
    let index_padded = index_len + index_len % 2;
    let member_offset = 8 + 60 + index_padded;
    let mut a = Vec::with_capacity(member_offset + 60 + object.len() + 1);
    a.extend_from_slice(b"!<arch>\n");
    a.extend_from_slice(&member_header("/", index_len));
    a.extend_from_slice(&(symbols.len() as u32).to_be_bytes());
    for _ in symbols {
        a.extend_from_slice(&(member_offset as u32).to_be_bytes());
    }
    for s in symbols {
        a.extend_from_slice(s.as_bytes());
        a.push(0);
    }
    if index_len % 2 == 1 {
        a.push(b'\n');
    }
    a.extend_from_slice(&member_header(&format!("{member}/"), object.len()));
    a.extend_from_slice(object);
    if object.len() % 2 == 1 {
        a.push(b'\n');
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let a = static_archive("m.o", b"abc", &["f".into(), "gg".into()]);
        assert!(a.starts_with(b"!<arch>\n/               0 "));
        // index: 4 + 8 + 5 = 17 bytes, padded to 18; member header at 8 + 60 + 18 = 86.
        assert_eq!(&a[68..72], &2u32.to_be_bytes());
        assert_eq!(&a[72..76], &86u32.to_be_bytes());
        assert_eq!(&a[86..89], b"m.o");
        assert_eq!(&a[86 + 48..86 + 51], b"3  ");
        assert_eq!(&a[86 + 60..86 + 63], b"abc");
        assert_eq!(a.len() % 2, 0);
    }
}
