//! Byte classes of RFC 9110/9112, as 256-entry tables built at compile time.

/// `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
///        / DIGIT / ALPHA` — RFC 9110 §5.6.2; `token = 1*tchar` (methods, field names).
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        table[i] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
};

/// `field-value = *field-content`, `field-content = field-vchar [ 1*( SP / HTAB / field-vchar )
/// field-vchar ]`, `field-vchar = VCHAR / obs-text`, `obs-text = %x80-FF` — RFC 9110 §5.5.
/// This table admits SP / HTAB / VCHAR (%x21-7E) / obs-text; leading and trailing whitespace is
/// trimmed by the parser. CR, LF, NUL and other controls are never allowed (RFC 9110 §5.5: "a
/// recipient ... MUST either reject the message or replace each of those characters with SP").
const FIELD_VALUE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = i == 0x09 || i == 0x20 || (i >= 0x21 && i <= 0x7e) || i >= 0x80;
        i += 1;
    }
    table
};

/// `request-target` (RFC 9112 §3.2) is built from URI characters (RFC 3986): all are VCHAR
/// (%x21-7E). We accept every VCHAR, as httparse does, and leave URI syntax to the front-end;
/// SP, controls, DEL and non-ASCII bytes are rejected, which keeps the target valid UTF-8.
const TARGET: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0x21;
    while i <= 0x7e {
        table[i] = true;
        i += 1;
    }
    table
};

/// True for a `tchar`.
pub fn is_tchar(byte: u8) -> bool {
    TCHAR[byte as usize]
}

/// True for a byte allowed inside a field value (SP, HTAB, VCHAR, obs-text).
pub fn is_field_value_byte(byte: u8) -> bool {
    FIELD_VALUE[byte as usize]
}

/// True when every byte of `value` is allowed inside a field value: the same class as
/// [`is_field_value_byte`], tested without a branch per byte so that it vectorizes (a bearer
/// token makes the `Authorization` value hundreds of bytes, on every request).
pub fn is_field_value(value: &[u8]) -> bool {
    let refused = value.iter().fold(false, |refused, &b| {
        refused | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
    });
    !refused
}

/// True for a byte allowed in a request-target.
pub fn is_target_byte(byte: u8) -> bool {
    TARGET[byte as usize]
}

/// True when `bytes` is a non-empty token.
pub fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_tchar(b))
}

/// Trims optional whitespace (`OWS = *( SP / HTAB )`, RFC 9110 §5.6.3) from both ends.
pub fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive reference implementations, written from the ABNF independently of the tables.
    fn tchar_reference(b: u8) -> bool {
        b"!#$%&'*+-.^_`|~".contains(&b) || b.is_ascii_digit() || b.is_ascii_alphabetic()
    }

    #[test]
    fn tables_match_reference() {
        for b in 0..=255u8 {
            assert_eq!(is_tchar(b), tchar_reference(b), "tchar {b:#x}");
            let value_ref = b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80;
            assert_eq!(is_field_value_byte(b), value_ref, "field value {b:#x}");
            // The whole-value check agrees byte by byte, alone and inside a long value.
            assert_eq!(is_field_value(&[b]), value_ref, "field value {b:#x}");
            let mut long = [b'a'; 67];
            long[40] = b;
            assert_eq!(is_field_value(&long), value_ref, "field value {b:#x} at 40");
            assert_eq!(is_target_byte(b), b.is_ascii_graphic(), "target {b:#x}");
        }
    }

    #[test]
    fn trims_ows() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert!(is_token(b"GET"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
    }
}
