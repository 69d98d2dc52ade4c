//! Opaque client keys (Gradle, Nx, Turborepo, ccache): what a key may look like.
//!
//! These clients name entries with hashes of their own (hex, decimal, base32hex); Tessera
//! treats them as opaque but bounded, so a path can never smuggle in something that is not a
//! key (`..`, control bytes, a 10 KB segment).

/// Longest accepted key, in bytes. Real keys are 16–64 characters; 256 leaves room for any
/// client's format while keeping per-request work and metadata small.
pub const OPAQUE_KEY_BYTES_MAX: usize = 256;

/// Why a key is refused, for the 400 message.
pub fn check(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if key.len() > OPAQUE_KEY_BYTES_MAX {
        return Err(format!(
            "the key has {} bytes, more than the limit of {OPAQUE_KEY_BYTES_MAX}",
            key.len()
        ));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "the key contains {bad:?}; keys are ASCII letters, digits, '-', '_' and '.'"
        ));
    }
    if key.chars().all(|c| c == '.') {
        return Err("the key may not be only dots".into());
    }
    Ok(())
}

/// The single path segment after a mount (`/<key>`), checked.
pub fn single_segment(rest: &str) -> Result<&str, String> {
    let key = rest.strip_prefix('/').unwrap_or(rest);
    if key.contains('/') {
        return Err(format!(
            "`{}` has more than one path segment; expected /<key>",
            truncate(key)
        ));
    }
    check(key).map(|()| key)
}

/// At most 64 characters of `text`, for error messages.
pub fn truncate(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_real_clients_pass() {
        for key in [
            "0123456789abcdef0123456789abcdef",  // Gradle
            "3909283978823017987",               // Nx
            "18446744073709551615",              // Nx, the longest (u64::MAX)
            "a1b2c3d4e5f60718",                  // Turborepo
            "e52be5853t2t2a38ek9iso1op9hpr0k6k", // ccache 4.7
        ] {
            assert_eq!(check(key), Ok(()), "{key}");
            assert_eq!(single_segment(&format!("/{key}")), Ok(key));
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        let long = "a".repeat(OPAQUE_KEY_BYTES_MAX + 1);
        for key in ["", "..", ".", "a b", "a%2f", "ä", "x\u{7}", long.as_str()] {
            assert!(check(key).is_err(), "{key:?}");
        }
        assert!(single_segment("/a/b").is_err());
        assert!(single_segment("/").is_err());
    }
}
