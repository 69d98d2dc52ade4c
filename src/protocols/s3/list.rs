//! ListObjectsV2 and ListObjects (v1): S3's order, prefixes, delimiters and paging over a
//! bucket's keys.
//!
//! Candidate keys come from the bucket registry's key set, in byte order; each is checked
//! against the store before it is listed (an evicted or deleted key is dropped from the set
//! then). A continuation token is the last key or common prefix returned, base64-encoded, so a
//! page never repeats an item and never skips one.

use base64::Engine;

/// Largest page: S3 returns at most 1000 keys and prefixes per request.
pub const LIST_PAGE_MAX: usize = 1000;

/// Candidate keys read from the registry per step of a listing.
pub const LIST_BATCH_KEYS: usize = 1024;

/// What a listing asks for.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: usize,
    /// Exclusive start: a key (start-after, marker) or the last item of the previous page.
    pub after: Option<String>,
    /// `after` came from a continuation token: a common prefix equal to it was returned
    /// already.
    pub after_is_token: bool,
}

/// One listed item: an object key, or a common prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Key(String),
    Prefix(String),
}

/// The common prefix `key` rolls up into under `prefix` and `delimiter`, if any.
pub fn rollup<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len()])
}

/// The item `key` is listed as, or `None` when it is skipped (before the start, or inside a
/// common prefix already returned).
pub fn item_of(key: &str, query: &ListQuery, last_prefix: Option<&str>) -> Option<Item> {
    if !key.starts_with(&query.prefix) {
        return None;
    }
    if query.after.as_deref().is_some_and(|after| key <= after) {
        return None;
    }
    match rollup(key, &query.prefix, query.delimiter.as_deref()) {
        Some(common) => {
            if last_prefix == Some(common) {
                return None;
            }
            if query.after_is_token && query.after.as_deref() == Some(common) {
                return None;
            }
            Some(Item::Prefix(common.to_string()))
        }
        None => Some(Item::Key(key.to_string())),
    }
}

/// Whether every key under `item` is also skipped from now on (a common prefix).
pub fn is_prefix(item: &Item) -> bool {
    matches!(item, Item::Prefix(_))
}

pub fn encode_token(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after.as_bytes())
}

pub fn decode_token(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// `text` for `encoding-type=url`: every byte but unreserved characters and `/` as `%XX`.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listing of `keys` (sorted), all alive, page by page.
    fn pages(keys: &[&str], mut query: ListQuery) -> Vec<Vec<Item>> {
        let mut out = Vec::new();
        loop {
            let mut page = Vec::new();
            let mut last_prefix: Option<String> = None;
            let mut more = false;
            for key in keys {
                let Some(item) = item_of(key, &query, last_prefix.as_deref()) else {
                    continue;
                };
                if page.len() == query.max_keys {
                    more = true;
                    break;
                }
                if let Item::Prefix(p) = &item {
                    last_prefix = Some(p.clone());
                }
                page.push(item);
            }
            let last = page.last().cloned();
            out.push(page);
            if !more {
                return out;
            }
            query.after = Some(match last.unwrap() {
                Item::Key(k) | Item::Prefix(k) => k,
            });
            query.after_is_token = true;
        }
    }

    fn key(k: &str) -> Item {
        Item::Key(k.into())
    }

    fn pre(p: &str) -> Item {
        Item::Prefix(p.into())
    }

    #[test]
    fn delimiters_roll_keys_up_and_pages_never_repeat_or_skip() {
        let keys = ["a", "b/1", "b/2", "b/c/3", "c", "d/1", "e"];
        let query = ListQuery {
            delimiter: Some("/".into()),
            max_keys: 2,
            ..Default::default()
        };
        assert_eq!(
            pages(&keys, query),
            vec![
                vec![key("a"), pre("b/")],
                vec![key("c"), pre("d/")],
                vec![key("e")]
            ]
        );
        let query = ListQuery {
            prefix: "b/".into(),
            delimiter: Some("/".into()),
            max_keys: 10,
            ..Default::default()
        };
        assert_eq!(
            pages(&keys, query),
            vec![vec![key("b/1"), key("b/2"), pre("b/c/")]]
        );
        // start-after inside a prefix still returns the prefix (it is not a token).
        let query = ListQuery {
            delimiter: Some("/".into()),
            max_keys: 10,
            after: Some("b/1".into()),
            ..Default::default()
        };
        assert_eq!(
            pages(&keys, query),
            vec![vec![pre("b/"), key("c"), pre("d/"), key("e")]]
        );
    }

    #[test]
    fn flat_listing_pages_cover_every_key_once() {
        let keys: Vec<String> = (0..2500).map(|i| format!("k{i:05}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let query = ListQuery {
            max_keys: 1000,
            ..Default::default()
        };
        let got = pages(&refs, query);
        assert_eq!(
            got.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let flat: Vec<Item> = got.into_iter().flatten().collect();
        assert_eq!(flat, refs.iter().map(|k| key(k)).collect::<Vec<_>>());
    }

    #[test]
    fn tokens_and_url_encoding_round_trip() {
        assert_eq!(
            decode_token(&encode_token("a/ü b")).as_deref(),
            Some("a/ü b")
        );
        assert_eq!(decode_token("!!"), None);
        assert_eq!(url_encode("a b+c/ü"), "a%20b%2Bc/%C3%BC");
    }
}
