//! The checksum headers current SDKs send (`x-amz-checksum-crc32`, `-crc32c`, `-crc64nvme`,
//! `-sha1`, `-sha256`), in the request head or as trailers of an `aws-chunked` body: every
//! one given is computed over the body as it streams and must match, or the put is refused
//! with `BadDigest` and nothing is stored.

use http::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::Checksum;
use s3s::{S3Error, S3ErrorCode, S3Result};

/// (header, algorithm name in messages) of every checksum S3 defines.
const ALGORITHMS: [(&str, &str); 5] = [
    ("x-amz-checksum-crc32", "CRC32"),
    ("x-amz-checksum-crc32c", "CRC32C"),
    ("x-amz-checksum-crc64nvme", "CRC64NVME"),
    ("x-amz-checksum-sha1", "SHA1"),
    ("x-amz-checksum-sha256", "SHA256"),
];

/// Whether `header` is given in the head or announced as a trailer (`x-amz-trailer`).
fn wanted(headers: &HeaderMap, header: &str) -> bool {
    headers.contains_key(header)
        || headers
            .get_all("x-amz-trailer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|name| name.trim().eq_ignore_ascii_case(header))
}

/// A hasher for every checksum the request gives or announces.
pub fn hasher_for(headers: &HeaderMap) -> ChecksumHasher {
    ChecksumHasher {
        crc32: wanted(headers, ALGORITHMS[0].0).then(Crc32::new),
        crc32c: wanted(headers, ALGORITHMS[1].0).then(Crc32c::new),
        crc64nvme: wanted(headers, ALGORITHMS[2].0).then(Crc64Nvme::new),
        sha1: wanted(headers, ALGORITHMS[3].0).then(Sha1::new),
        sha256: wanted(headers, ALGORITHMS[4].0).then(Sha256::new),
    }
}

/// Checks the computed checksums against the head's values and the trailers'.
pub fn verify(
    computed: &Checksum,
    headers: &HeaderMap,
    trailers: Option<&HeaderMap>,
) -> S3Result<()> {
    let values = [
        &computed.checksum_crc32,
        &computed.checksum_crc32c,
        &computed.checksum_crc64nvme,
        &computed.checksum_sha1,
        &computed.checksum_sha256,
    ];
    for ((header, name), value) in ALGORITHMS.iter().zip(values) {
        let expected = trailers
            .and_then(|t| t.get(*header))
            .or_else(|| headers.get(*header))
            .and_then(|v| v.to_str().ok());
        let Some(expected) = expected else {
            if wanted(headers, header) {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    format!("The announced trailer {header} was not sent"),
                ));
            }
            continue;
        };
        if value.as_deref() != Some(expected.trim()) {
            return Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                format!("The {name} you specified did not match the calculated checksum."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_checksums_are_computed_and_compared() {
        let mut headers = HeaderMap::new();
        // CRC32 of "hello" is 0x3610a686.
        headers.insert("x-amz-checksum-crc32", "NhCmhg==".parse().unwrap());
        let mut hasher = hasher_for(&headers);
        assert!(hasher.sha256.is_none());
        hasher.update(b"hello");
        let computed = hasher.finalize();
        assert!(verify(&computed, &headers, None).is_ok());
        headers.insert("x-amz-checksum-crc32", "AAAAAA==".parse().unwrap());
        let e = verify(&computed, &headers, None).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::BadDigest);
    }

    #[test]
    fn announced_trailers_are_required() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
        let mut hasher = hasher_for(&headers);
        hasher.update(b"hello");
        let computed = hasher.finalize();
        assert!(verify(&computed, &headers, None).is_err());
        let mut trailers = HeaderMap::new();
        trailers.insert("x-amz-checksum-crc32", "NhCmhg==".parse().unwrap());
        assert!(verify(&computed, &headers, Some(&trailers)).is_ok());
    }
}
