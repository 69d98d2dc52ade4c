//! S3 credentials for a token (`tessera token --s3`), with no per-token state on the server.
//!
//! ```text
//! AWS_ACCESS_KEY_ID     = the token itself (compact JWS: [A-Za-z0-9_.-], no `/`)
//! AWS_SECRET_ACCESS_KEY = base64url(HMAC-SHA256(server secret, "tessera-s3-v1" ‖ 0x00 ‖ token))
//! ```
//!
//! The access key id travels in every request, presigned URL and log line, so the secret must
//! not be computable from it: it is keyed by a server-side secret (`auth.s3_secret`, 32 random
//! bytes in hex, made by `tessera keygen` as `DIR/s3.secret` when absent, mode 0600).
//!
//! The seam for the S3 front-end: for a request signed with access key id `A`,
//! 1. [`secret_access_key`]`(server_secret, A)` is the secret to check the SigV4 signature with;
//! 2. once the signature holds, the request's identity is `Credential::Bearer(A)`, and the
//!    authorization layer verifies the token and applies its scopes (`s3/BUCKET` namespaces)
//!    exactly as for every other protocol. An access key id that is not a valid token is refused
//!    there (`InvalidAccessKeyId` in S3's terms).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::Sha256;

/// Bytes of the server-side secret.
pub const S3_SECRET_BYTES: usize = 32;

/// Domain separation: the MAC of a token under this scheme is never a MAC of anything else.
const CONTEXT: &[u8] = b"tessera-s3-v1\0";

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts` under `key`: the one HMAC of the
/// crate (also SigV4's signing keys and signatures, `protocols::s3::sigv4`).
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The secret access key that goes with `access_key_id` (a token).
pub fn secret_access_key(server_secret: &[u8; S3_SECRET_BYTES], access_key_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac_sha256(
        server_secret,
        &[CONTEXT, access_key_id.as_bytes()],
    ))
}

/// The two lines `tessera token --s3` prints.
pub fn credentials(server_secret: &[u8; S3_SECRET_BYTES], token: &str) -> String {
    format!(
        "AWS_ACCESS_KEY_ID={token}\nAWS_SECRET_ACCESS_KEY={}\n",
        secret_access_key(server_secret, token)
    )
}

/// Reads a server secret file (hex).
pub fn read_secret(path: &Path) -> Result<[u8; S3_SECRET_BYTES], String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.trim();
    let bad = || {
        format!(
            "{} is not {S3_SECRET_BYTES} bytes of hex (make one with tessera keygen)",
            path.display()
        )
    };
    if text.len() != 2 * S3_SECRET_BYTES {
        return Err(bad());
    }
    let mut secret = [0u8; S3_SECRET_BYTES];
    for (i, byte) in secret.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(secret)
}

/// Writes a new random secret to `path` (mode 0600) unless one exists; whether it wrote one.
pub fn ensure_secret(path: &Path) -> Result<bool, String> {
    if path.exists() {
        return Ok(false);
    }
    let seed = super::keys::random_signing_key()?.to_bytes();
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(format!("{hex}\n").as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 and a key longer than the block (test case 6).
    #[test]
    fn hmac_matches_rfc_4231() {
        let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn secrets_depend_on_the_server_secret_and_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s3.secret");
        assert!(ensure_secret(&path).unwrap());
        assert!(!ensure_secret(&path).unwrap(), "never overwritten");
        let secret = read_secret(&path).unwrap();
        let a = secret_access_key(&secret, "token-a");
        assert_eq!(a, secret_access_key(&secret, "token-a"));
        assert_ne!(a, secret_access_key(&secret, "token-b"));
        assert_ne!(a, secret_access_key(&[0u8; 32], "token-a"));
        let lines = credentials(&secret, "token-a");
        assert_eq!(
            lines,
            format!("AWS_ACCESS_KEY_ID=token-a\nAWS_SECRET_ACCESS_KEY={a}\n")
        );
        fs::write(&path, "zz").unwrap();
        assert!(read_secret(&path).unwrap_err().contains("hex"));
    }
}
