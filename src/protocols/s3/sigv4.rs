//! A small AWS Signature V4 *client* signer (header form), for the load generator and the
//! tests: the server checks signatures through s3s, never with this.
//!
//! ```text
//! canonical request = METHOD \n PATH \n QUERY \n (name:value\n)* \n signed;names \n payload-hash
//! string to sign    = AWS4-HMAC-SHA256 \n DATE \n DAY/REGION/s3/aws4_request \n hex(sha256(canonical))
//! signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, DAY), REGION), "s3"), "aws4_request")
//! ```
//!
//! The signing key is derived once per day and reused, so a signature costs two SHA-256 runs
//! over short strings and one HMAC. With [`UNSIGNED_PAYLOAD`] the body is not hashed.

use sha2::{Digest, Sha256};

/// `x-amz-content-sha256` of a request whose body is not part of the signature (S3 allows it
/// for header-signed requests).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// SHA-256 of the empty string, hex (the payload hash of a request without a body).
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    crate::auth::s3::hmac_sha256(key, &[message])
}

use crate::store::digest::to_hex as hex;

/// Hex SHA-256 of `bytes` (a payload hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `x-amz-date` of a Unix time: `YYYYMMDDTHHMMSSZ`.
pub fn amz_date(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let rest = unix_seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// One access key's signer, with the signing key of the last day it signed for.
#[derive(Clone)]
pub struct Signer {
    access_key: String,
    secret: String,
    region: String,
    /// (day `YYYYMMDD`, signing key).
    day_key: Option<(String, [u8; 32])>,
}

/// What is signed: the request line and headers. Header names are lowercase; `host` must be
/// among them; `path` is already URI-encoded; `query` is canonical (sorted, encoded, or empty).
pub struct ToSign<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    /// `x-amz-content-sha256`: a hex SHA-256, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
    /// `x-amz-date`.
    pub date: &'a str,
}

impl Signer {
    pub fn new(access_key: &str, secret: &str, region: &str) -> Signer {
        Signer {
            access_key: access_key.to_owned(),
            secret: secret.to_owned(),
            region: region.to_owned(),
            day_key: None,
        }
    }

    fn signing_key(&mut self, day: &str) -> [u8; 32] {
        if let Some((cached, key)) = &self.day_key {
            if cached == day {
                return *key;
            }
        }
        let k_date = hmac(format!("AWS4{}", self.secret).as_bytes(), day.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, b"s3");
        let key = hmac(&k_service, b"aws4_request");
        self.day_key = Some((day.to_owned(), key));
        key
    }

    /// The `Authorization` header value of `request`. The request must also send
    /// `x-amz-date` and `x-amz-content-sha256` (both signed here: they need not be in
    /// `headers`).
    pub fn authorization(&mut self, request: &ToSign<'_>) -> String {
        let mut headers: Vec<(&str, &str)> = request.headers.to_vec();
        headers.push(("x-amz-content-sha256", request.payload_hash));
        headers.push(("x-amz-date", request.date));
        headers.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut canonical = String::with_capacity(256);
        for part in [request.method, request.path, request.query] {
            canonical.push_str(part);
            canonical.push('\n');
        }
        let mut signed = String::with_capacity(64);
        for (name, value) in &headers {
            canonical.push_str(name);
            canonical.push(':');
            canonical.push_str(value.trim());
            canonical.push('\n');
            if !signed.is_empty() {
                signed.push(';');
            }
            signed.push_str(name);
        }
        canonical.push('\n');
        canonical.push_str(&signed);
        canonical.push('\n');
        canonical.push_str(request.payload_hash);
        let day = &request.date[..8.min(request.date.len())];
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            request.date,
            sha256_hex(canonical.as_bytes())
        );
        let key = self.signing_key(day);
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            self.access_key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example (S3 API reference, "Signature Calculations for the
    /// Authorization Header", GET Object).
    #[test]
    fn signs_the_documented_get_object_example() {
        let mut signer = Signer::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
        );
        let authorization = signer.authorization(&ToSign {
            method: "GET",
            path: "/test.txt",
            query: "",
            headers: &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
            ],
            payload_hash: EMPTY_SHA256,
            date: "20130524T000000Z",
        });
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_date(951_782_400 + 3661), "20000229T010101Z");
    }
}
