//! ByteStream resource names of REAPI v2 (their digests are checked by [`super::digest`]).
//!
//! Grammar (upstream `remote_execution.proto`, ContentAddressableStorage service comment):
//!
//! ```text
//! read:  [{instance_name}/]blobs/[{digest_function}/]{hash}/{size}
//!        [{instance_name}/]compressed-blobs/{compressor}/[{digest_function}/]{hash}/{size}
//! write: [{instance_name}/]uploads/{uuid}/blobs/[{digest_function}/]{hash}/{size}[/{metadata}]
//!        [{instance_name}/]uploads/{uuid}/compressed-blobs/{compressor}/[{digest_function}/]
//!            {hash}/{size}[/{metadata}]
//! ```
//!
//! The instance name may span several segments, but no segment of it may equal a reserved
//! keyword (`blobs`, `uploads`, `actions`, `actionResults`, `operations`, `capabilities`,
//! `compressed-blobs`); so the parser anchors on the first keyword segment instead of counting
//! from either end. `{digest_function}` is present only for functions other than MD5, MURMUR3,
//! SHA1, SHA256, SHA384, SHA512 and VSO; Bazel writes `blake3/` for BLAKE3 (clients.md §2).
//! For a compressed blob `{hash}/{size}` describe the *uncompressed* bytes.
//!
//! ```
//! use tessera::protocols::reapi::resource_name::{parse_read, Compressor};
//! use tessera::store::DigestFunction;
//! let hash = "ab".repeat(32);
//! let text = format!("ci/linux/compressed-blobs/zstd/blake3/{hash}/42");
//! let name = parse_read(&text).unwrap();
//! assert_eq!(name.instance_name, "ci/linux");
//! assert_eq!(name.blob.compressor, Compressor::Zstd);
//! assert_eq!(name.blob.digest_function, DigestFunction::Blake3);
//! assert_eq!(name.blob.size_bytes, 42);
//! ```

use std::fmt;

use crate::grpc::Status;

use crate::store::DigestFunction;

use super::digest::{validate_hash, DigestError};

/// Longest resource name accepted, in bytes: instance names are short paths, and a bounded name
/// keeps error messages and map keys small.
pub const RESOURCE_NAME_BYTES_MAX: usize = 1024;

/// Path segments that may not appear in an instance name (spec text quoted in the module docs).
pub const RESERVED_SEGMENTS: [&str; 7] = [
    "blobs",
    "uploads",
    "actions",
    "actionResults",
    "operations",
    "capabilities",
    "compressed-blobs",
];

/// The lowercase names of `DigestFunction.Value`, which may appear as a segment.
const DIGEST_FUNCTION_NAMES: [&str; 10] = [
    "sha256",
    "sha1",
    "md5",
    "vso",
    "sha384",
    "sha512",
    "murmur3",
    "sha256tree",
    "blake3",
    "gitsha1",
];

/// How the bytes of a resource travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compressor {
    Identity,
    Zstd,
}

/// The blob a resource name designates (hash validated, lowercase hex).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobName<'a> {
    pub compressor: Compressor,
    pub digest_function: DigestFunction,
    pub hash: &'a str,
    pub size_bytes: u64,
}

/// A parsed `ReadRequest.resource_name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadResource<'a> {
    /// Empty when the name has no instance part.
    pub instance_name: &'a str,
    pub blob: BlobName<'a>,
}

/// A parsed `WriteRequest.resource_name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteResource<'a> {
    pub instance_name: &'a str,
    pub upload_id: &'a str,
    pub blob: BlobName<'a>,
}

/// Why a resource name was refused; becomes INVALID_ARGUMENT with this text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceNameError {
    TooLong { bytes: usize },
    EmptySegment,
    NoKeyword { expected: &'static str },
    ReservedInInstance(String),
    MissingUploadId,
    UnsupportedCompressor(String),
    MissingSegments,
    TrailingSegments,
    Digest(DigestError),
}

impl fmt::Display for ResourceNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourceNameError::TooLong { bytes } => write!(
                f,
                "resource name is {bytes} bytes long, the limit is {RESOURCE_NAME_BYTES_MAX}"
            ),
            ResourceNameError::EmptySegment => f.write_str("resource name has an empty segment"),
            ResourceNameError::NoKeyword { expected } => {
                write!(f, "resource name has no {expected} segment")
            }
            ResourceNameError::ReservedInInstance(segment) => write!(
                f,
                "instance name segment {segment:?} is a reserved word of the resource-name grammar"
            ),
            ResourceNameError::MissingUploadId => {
                f.write_str("resource name has no upload id after \"uploads\"")
            }
            ResourceNameError::UnsupportedCompressor(name) => write!(
                f,
                "compressor {name:?} is not supported (this server supports zstd)"
            ),
            ResourceNameError::MissingSegments => {
                f.write_str("resource name ends before {hash}/{size}")
            }
            ResourceNameError::TrailingSegments => {
                f.write_str("resource name has segments after {size}")
            }
            ResourceNameError::Digest(error) => write!(f, "resource name: {error}"),
        }
    }
}

impl std::error::Error for ResourceNameError {}

impl From<DigestError> for ResourceNameError {
    fn from(error: DigestError) -> ResourceNameError {
        ResourceNameError::Digest(error)
    }
}

impl From<ResourceNameError> for Status {
    fn from(error: ResourceNameError) -> Status {
        Status::invalid_argument(error.to_string())
    }
}

/// Parses a ByteStream.Read resource name.
pub fn parse_read(name: &str) -> Result<ReadResource<'_>, ResourceNameError> {
    let segments = split_segments(name)?;
    let keyword = segments
        .iter()
        .position(|s| *s == "blobs" || *s == "compressed-blobs")
        .ok_or(ResourceNameError::NoKeyword {
            expected: "\"blobs\" or \"compressed-blobs\"",
        })?;
    let instance_name = instance_part(name, &segments[..keyword])?;
    let (blob, rest) = parse_blob(&segments[keyword..])?;
    if !rest.is_empty() {
        return Err(ResourceNameError::TrailingSegments);
    }
    Ok(ReadResource {
        instance_name,
        blob,
    })
}

/// Parses a ByteStream.Write (or QueryWriteStatus) resource name; metadata after `{size}` is
/// allowed and ignored, as the spec permits.
pub fn parse_write(name: &str) -> Result<WriteResource<'_>, ResourceNameError> {
    let segments = split_segments(name)?;
    let keyword =
        segments
            .iter()
            .position(|s| *s == "uploads")
            .ok_or(ResourceNameError::NoKeyword {
                expected: "\"uploads\"",
            })?;
    let instance_name = instance_part(name, &segments[..keyword])?;
    let upload_id = *segments
        .get(keyword + 1)
        .ok_or(ResourceNameError::MissingUploadId)?;
    if RESERVED_SEGMENTS.contains(&upload_id) {
        return Err(ResourceNameError::MissingUploadId);
    }
    let blob_segments = &segments[keyword + 2..];
    if !matches!(blob_segments.first(), Some(&"blobs" | &"compressed-blobs")) {
        return Err(ResourceNameError::NoKeyword {
            expected: "\"blobs\" or \"compressed-blobs\" after the upload id",
        });
    }
    let (blob, _metadata) = parse_blob(blob_segments)?;
    Ok(WriteResource {
        instance_name,
        upload_id,
        blob,
    })
}

fn split_segments(name: &str) -> Result<Vec<&str>, ResourceNameError> {
    if name.len() > RESOURCE_NAME_BYTES_MAX {
        return Err(ResourceNameError::TooLong { bytes: name.len() });
    }
    let segments: Vec<&str> = name.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(ResourceNameError::EmptySegment);
    }
    Ok(segments)
}

/// The instance name is the text before the keyword; none of its segments may be reserved.
fn instance_part<'a>(name: &'a str, segments: &[&'a str]) -> Result<&'a str, ResourceNameError> {
    if let Some(reserved) = segments.iter().find(|s| RESERVED_SEGMENTS.contains(s)) {
        return Err(ResourceNameError::ReservedInInstance(
            (*reserved).to_owned(),
        ));
    }
    let length = segments.iter().map(|s| s.len() + 1).sum::<usize>();
    Ok(&name[..length.saturating_sub(1)])
}

/// Parses `blobs/...` or `compressed-blobs/{compressor}/...` up to `{size}`; returns the segments
/// after it.
fn parse_blob<'s, 'a>(
    segments: &'s [&'a str],
) -> Result<(BlobName<'a>, &'s [&'a str]), ResourceNameError> {
    let (compressor, rest) = match segments {
        ["blobs", rest @ ..] => (Compressor::Identity, rest),
        ["compressed-blobs", compressor, rest @ ..] => (parse_compressor(compressor)?, rest),
        _ => return Err(ResourceNameError::MissingSegments),
    };
    let (digest_function, rest) = match rest {
        [name, rest @ ..] if DIGEST_FUNCTION_NAMES.contains(name) => {
            (parse_function_segment(name)?, rest)
        }
        _ => (DigestFunction::Sha256, rest),
    };
    let [hash, size, rest @ ..] = rest else {
        return Err(ResourceNameError::MissingSegments);
    };
    validate_hash(digest_function, hash)?;
    let size_bytes = parse_size(size)?;
    let blob = BlobName {
        compressor,
        digest_function,
        hash,
        size_bytes,
    };
    Ok((blob, rest))
}

fn parse_compressor(name: &str) -> Result<Compressor, ResourceNameError> {
    match name {
        "zstd" => Ok(Compressor::Zstd),
        other => Err(ResourceNameError::UnsupportedCompressor(other.to_owned())),
    }
}

/// A digest-function segment. `sha256` should be omitted by clients but names what we would
/// infer anyway, so it is accepted.
fn parse_function_segment(name: &str) -> Result<DigestFunction, ResourceNameError> {
    match name {
        "blake3" => Ok(DigestFunction::Blake3),
        "sha256" => Ok(DigestFunction::Sha256),
        other => Err(DigestError::UnsupportedFunction(other.to_owned()).into()),
    }
}

/// Decimal digits only (no sign, no spaces), at most `i64::MAX` as `Digest.size_bytes` is int64.
fn parse_size(text: &str) -> Result<u64, ResourceNameError> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DigestError::SizeNotDecimal.into());
    }
    text.parse::<i64>()
        .ok()
        .and_then(|size| u64::try_from(size).ok())
        .ok_or_else(|| DigestError::SizeNotDecimal.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn blob(compressor: Compressor, function: DigestFunction, size: u64) -> BlobName<'static> {
        BlobName {
            compressor,
            digest_function: function,
            hash: H,
            size_bytes: size,
        }
    }

    #[test]
    fn read_names_parse() {
        use Compressor::*;
        use DigestFunction::*;
        let cases: Vec<(String, &str, BlobName)> = vec![
            (format!("blobs/{H}/5"), "", blob(Identity, Sha256, 5)),
            (
                format!("main/blobs/{H}/0"),
                "main",
                blob(Identity, Sha256, 0),
            ),
            (
                format!("a/b/c/blobs/{H}/7"),
                "a/b/c",
                blob(Identity, Sha256, 7),
            ),
            (format!("blobs/blake3/{H}/9"), "", blob(Identity, Blake3, 9)),
            (format!("blobs/sha256/{H}/9"), "", blob(Identity, Sha256, 9)),
            (
                format!("x/compressed-blobs/zstd/{H}/11"),
                "x",
                blob(Zstd, Sha256, 11),
            ),
            (
                format!("compressed-blobs/zstd/blake3/{H}/9223372036854775807"),
                "",
                blob(Zstd, Blake3, i64::MAX as u64),
            ),
        ];
        for (name, instance, expected) in cases {
            let parsed = parse_read(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed.instance_name, instance, "{name}");
            assert_eq!(parsed.blob, expected, "{name}");
        }
    }

    #[test]
    fn write_names_parse_with_and_without_metadata() {
        use Compressor::*;
        use DigestFunction::*;
        let uuid = "3f4e2a1c-1111-4222-8333-944455556666";
        let cases: Vec<(String, &str, BlobName)> = vec![
            (
                format!("uploads/{uuid}/blobs/{H}/5"),
                "",
                blob(Identity, Sha256, 5),
            ),
            (
                format!("team/x/uploads/{uuid}/blobs/blake3/{H}/5/some/meta"),
                "team/x",
                blob(Identity, Blake3, 5),
            ),
            (
                format!("i/uploads/{uuid}/compressed-blobs/zstd/{H}/12"),
                "i",
                blob(Zstd, Sha256, 12),
            ),
            (
                format!("uploads/{uuid}/compressed-blobs/zstd/blake3/{H}/12/m"),
                "",
                blob(Zstd, Blake3, 12),
            ),
        ];
        for (name, instance, expected) in cases {
            let parsed = parse_write(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed.instance_name, instance, "{name}");
            assert_eq!(parsed.upload_id, uuid, "{name}");
            assert_eq!(parsed.blob, expected, "{name}");
        }
    }

    #[test]
    fn bad_read_names_are_refused_precisely() {
        let upper = H.to_uppercase();
        let cases: Vec<(String, ResourceNameError)> = vec![
            (
                format!("foo/{H}/5"),
                ResourceNameError::NoKeyword {
                    expected: "\"blobs\" or \"compressed-blobs\"",
                },
            ),
            (format!("/blobs/{H}/5"), ResourceNameError::EmptySegment),
            (format!("a//blobs/{H}/5"), ResourceNameError::EmptySegment),
            (format!("blobs/{H}/5/"), ResourceNameError::EmptySegment),
            (
                format!("operations/blobs/{H}/5"),
                ResourceNameError::ReservedInInstance("operations".into()),
            ),
            (
                format!("uploads/u/blobs/{H}/5"),
                ResourceNameError::ReservedInInstance("uploads".into()),
            ),
            (format!("blobs/{H}"), ResourceNameError::MissingSegments),
            ("blobs".to_string(), ResourceNameError::MissingSegments),
            (
                format!("blobs/{H}/5/extra"),
                ResourceNameError::TrailingSegments,
            ),
            (
                format!("compressed-blobs/deflate/{H}/5"),
                ResourceNameError::UnsupportedCompressor("deflate".into()),
            ),
            (
                format!("compressed-blobs/identity/{H}/5"),
                ResourceNameError::UnsupportedCompressor("identity".into()),
            ),
            (
                format!("blobs/md5/{H}/5"),
                DigestError::UnsupportedFunction("md5".into()).into(),
            ),
            (
                format!("blobs/{}/5", &H[..40]),
                DigestError::HashLength {
                    function: DigestFunction::Sha256,
                    found_chars: 40,
                }
                .into(),
            ),
            (
                format!("blobs/{upper}/5"),
                DigestError::HashNotLowercaseHex.into(),
            ),
            (format!("blobs/{H}/-5"), DigestError::SizeNotDecimal.into()),
            (format!("blobs/{H}/+5"), DigestError::SizeNotDecimal.into()),
            (
                format!("blobs/{H}/9223372036854775808"),
                DigestError::SizeNotDecimal.into(),
            ),
            (format!("blobs/{H}/5x"), DigestError::SizeNotDecimal.into()),
            (
                "a/".repeat(600) + "blobs",
                ResourceNameError::TooLong { bytes: 1205 },
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_read(&name), Err(expected), "{name}");
        }
    }

    #[test]
    fn bad_write_names_are_refused_precisely() {
        let cases: Vec<(String, ResourceNameError)> = vec![
            (
                format!("blobs/{H}/5"),
                ResourceNameError::NoKeyword {
                    expected: "\"uploads\"",
                },
            ),
            ("uploads".to_string(), ResourceNameError::MissingUploadId),
            (
                format!("uploads/blobs/{H}/5"),
                ResourceNameError::MissingUploadId,
            ),
            (
                format!("uploads/u/{H}/5"),
                ResourceNameError::NoKeyword {
                    expected: "\"blobs\" or \"compressed-blobs\" after the upload id",
                },
            ),
            (
                format!("actions/uploads/u/blobs/{H}/5"),
                ResourceNameError::ReservedInInstance("actions".into()),
            ),
            (
                "uploads/u/blobs/5".to_string(),
                ResourceNameError::MissingSegments,
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_write(&name), Err(expected), "{name}");
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        let error = parse_read(&format!("blobs/blake3/{}/1", &H[..10])).unwrap_err();
        assert_eq!(
            Status::from(error).message,
            "resource name: hash has 10 characters, a blake3 hash has 64"
        );
        let status = Status::from(parse_write("x/uploads").unwrap_err());
        assert_eq!(status.code, crate::grpc::Code::InvalidArgument);
        assert_eq!(
            status.message,
            "resource name has no upload id after \"uploads\""
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_.-]{1,12}".prop_filter("not reserved", |s| {
            !RESERVED_SEGMENTS.contains(&s.as_str()) && !DIGEST_FUNCTION_NAMES.contains(&s.as_str())
        })
    }

    proptest! {
        /// Names built from the grammar parse back to their parts.
        #[test]
        fn generated_names_round_trip(
            instance in proptest::collection::vec(segment(), 0..4),
            hash in "[0-9a-f]{64}",
            size in 0i64..=i64::MAX,
            blake3 in any::<bool>(),
            zstd in any::<bool>(),
            upload in segment(),
            metadata in proptest::collection::vec(segment(), 0..3),
        ) {
            let instance_name = instance.join("/");
            let mut blob = String::new();
            blob.push_str(if zstd { "compressed-blobs/zstd/" } else { "blobs/" });
            if blake3 {
                blob.push_str("blake3/");
            }
            blob.push_str(&format!("{hash}/{size}"));
            let prefix = if instance_name.is_empty() { String::new() } else { format!("{instance_name}/") };
            let expected = BlobName {
                compressor: if zstd { Compressor::Zstd } else { Compressor::Identity },
                digest_function: if blake3 { DigestFunction::Blake3 } else { DigestFunction::Sha256 },
                hash: &hash,
                size_bytes: size as u64,
            };
            let read_name = format!("{prefix}{blob}");
            let read = parse_read(&read_name).unwrap();
            prop_assert_eq!(read.instance_name, instance_name.as_str());
            prop_assert_eq!(read.blob, expected);
            let suffix: String = metadata.iter().map(|m| format!("/{m}")).collect();
            let write_name = format!("{prefix}uploads/{upload}/{blob}{suffix}");
            let write = parse_write(&write_name).unwrap();
            prop_assert_eq!(write.instance_name, instance_name.as_str());
            prop_assert_eq!(write.upload_id, upload.as_str());
            prop_assert_eq!(write.blob, expected);
        }

        /// Arbitrary text never panics either parser.
        #[test]
        fn arbitrary_text_never_panics(name in "\\PC{0,200}", slashy in "[a-z/]{0,60}") {
            let _ = parse_read(&name);
            let _ = parse_write(&name);
            let _ = parse_read(&slashy);
            let _ = parse_write(&slashy);
        }
    }
}
