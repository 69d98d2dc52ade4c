//! Key files: making a key pair, and loading what the server trusts.
//!
//! | file             | format                                        | made by                        |
//! |------------------|-----------------------------------------------|--------------------------------|
//! | `DIR/KID.key`    | PKCS#8 PEM (`BEGIN PRIVATE KEY`), mode 0600   | `tessera keygen`, `openssl genpkey -algorithm ed25519` |
//! | `DIR/KID.pub`    | SPKI PEM (`BEGIN PUBLIC KEY`)                 | `tessera keygen`, `openssl pkey -pubout` |
//! | JWKS             | `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":…,"x":…}]}` (RFC 8037 §2) | any JWKS tool |
//! | revocation list  | one `jti` a line; blank lines and `#` comments ignored | the operator |
//!
//! The server trusts every `*.pub` of `auth.public_keys` (the file stem is the `kid`) and every
//! Ed25519 key of `auth.jwks`; [`Trust::load`] reads them with the revocation list, and
//! [`Fingerprint`] tells the reloader when any of those files changed.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::token::{KeySet, Policy};
use crate::config::AuthConfig;

/// Trusted keys at most (a directory or JWKS with more is refused): each costs ~100 bytes per
/// executor, and rotation needs two or three.
pub const TRUSTED_KEYS_MAX: usize = 1024;
/// Largest key, JWKS or revocation file read, in bytes. A revocation list of 16 MiB holds
/// ~400,000 ids of 40 bytes; every executor keeps a copy.
pub const KEY_FILE_BYTES_MAX: u64 = 16 << 20;

/// What the server trusts: the keys and the checks besides the signature.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub keys: KeySet,
    pub policy: Policy,
}

impl Trust {
    /// Reads the keys, the JWKS and the revocation list named by `config`.
    pub fn load(config: &AuthConfig) -> Result<Trust, String> {
        let mut keys = KeySet::default();
        if let Some(dir) = &config.public_keys {
            load_dir(dir, &mut keys)?;
        }
        if let Some(path) = &config.jwks {
            load_jwks(path, &mut keys)?;
        }
        if keys.len() > TRUSTED_KEYS_MAX {
            return Err(format!(
                "{} trusted keys; at most {TRUSTED_KEYS_MAX} are allowed",
                keys.len()
            ));
        }
        let revoked = match &config.revoked {
            Some(path) => load_revoked(path)?,
            None => HashSet::new(),
        };
        Ok(Trust {
            keys,
            policy: Policy {
                audience: config.audience.clone(),
                revoked,
            },
        })
    }
}

/// A file's contents, bounded by [`KEY_FILE_BYTES_MAX`].
fn read_bounded(path: &Path) -> Result<String, String> {
    let file = fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(KEY_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > KEY_FILE_BYTES_MAX {
        return Err(format!(
            "{} is larger than {KEY_FILE_BYTES_MAX} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// The `*.pub` files of `dir`, sorted.
fn public_key_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "pub"))
        .collect();
    files.sort();
    Ok(files)
}

/// Adds every `KID.pub` (SPKI PEM) of `dir` to `keys`.
pub fn load_dir(dir: &Path, keys: &mut KeySet) -> Result<(), String> {
    for path in public_key_files(dir)? {
        let kid = stem(&path)?;
        let key = VerifyingKey::from_public_key_pem(&read_bounded(&path)?).map_err(|e| {
            format!(
                "{} is not an Ed25519 public key in SPKI PEM ({e})",
                path.display()
            )
        })?;
        keys.insert(kid, key);
    }
    Ok(())
}

/// The `kid` of a key file: its stem.
pub fn stem(path: &Path) -> Result<String, String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: the file name is not a UTF-8 key id", path.display()))
}

#[derive(serde::Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(serde::Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default)]
    kid: String,
    #[serde(default)]
    x: String,
}

/// Adds every Ed25519 key (`kty` OKP, `crv` Ed25519) of the JWKS file at `path`; other key
/// types are skipped (a JWKS may serve other verifiers too).
pub fn load_jwks(path: &Path, keys: &mut KeySet) -> Result<(), String> {
    let jwks: Jwks = serde_json::from_str(&read_bounded(path)?)
        .map_err(|e| format!("{} is not a JWKS ({e})", path.display()))?;
    for (i, jwk) in jwks.keys.iter().enumerate() {
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            continue;
        }
        let bad = |what: &str| format!("{} key {}: {what}", path.display(), i + 1);
        if jwk.kid.is_empty() {
            return Err(bad("no kid"));
        }
        let x = URL_SAFE_NO_PAD
            .decode(&jwk.x)
            .map_err(|_| bad("x is not base64url"))?;
        let x: [u8; 32] = x.try_into().map_err(|_| bad("x is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&x).map_err(|_| bad("x is not an Ed25519 point"))?;
        keys.insert(jwk.kid.clone(), key);
    }
    Ok(())
}

/// The revoked `jti`s of the file at `path`.
pub fn load_revoked(path: &Path) -> Result<HashSet<String>, String> {
    Ok(read_bounded(path)?
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// What the reloader compares: each watched file's (path, modification time, length).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Fingerprint(Vec<(PathBuf, Option<SystemTime>, u64)>);

impl Fingerprint {
    /// The key directory itself (a file added or removed changes its mtime), each `*.pub` in
    /// it, the JWKS and the revocation list. Unreadable files count as absent.
    pub fn of(config: &AuthConfig) -> Fingerprint {
        let mut paths: Vec<PathBuf> = Vec::new();
        if let Some(dir) = &config.public_keys {
            paths.push(dir.clone());
            paths.extend(public_key_files(dir).unwrap_or_default());
        }
        paths.extend(config.jwks.clone());
        paths.extend(config.revoked.clone());
        Fingerprint(
            paths
                .into_iter()
                .map(|path| {
                    let meta = fs::metadata(&path).ok();
                    let modified = meta.as_ref().and_then(|m| m.modified().ok());
                    let len = meta.map_or(0, |m| m.len());
                    (path, modified, len)
                })
                .collect(),
        )
    }
}

/// A new random signing key (32 bytes from the kernel's CSPRNG).
pub fn random_signing_key() -> Result<SigningKey, String> {
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The PKCS#8 PEM of `key`, as `openssl genpkey -algorithm ed25519` writes it (version 1, no
/// public key inside).
pub fn private_key_pem(key: &SigningKey) -> String {
    let bytes = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    bytes
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an Ed25519 key encodes")
        .to_string()
}

/// The SPKI PEM of `key`, as `openssl pkey -pubout` writes it.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("an Ed25519 key encodes")
}

/// Writes a new key pair `DIR/KID.key` (mode 0600) and `DIR/KID.pub`; never overwrites.
pub fn generate(dir: &Path, kid: &str) -> Result<(PathBuf, PathBuf), String> {
    if kid.is_empty() || kid.contains(['/', '\0']) || kid.starts_with('.') {
        return Err(format!(
            "{kid:?} cannot be a key id (a file name without `/`)"
        ));
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let key = random_signing_key()?;
    let private = dir.join(format!("{kid}.key"));
    let public = dir.join(format!("{kid}.pub"));
    for path in [&private, &public] {
        if path.exists() {
            return Err(format!(
                "{} exists; remove it or pick another --kid",
                path.display()
            ));
        }
    }
    write_new(&private, private_key_pem(&key).as_bytes(), 0o600)?;
    write_new(
        &public,
        public_key_pem(&key.verifying_key()).as_bytes(),
        0o644,
    )?;
    Ok((private, public))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads a PKCS#8 PEM private key; its `kid` is the file stem.
pub fn read_signing_key(path: &Path) -> Result<(String, SigningKey), String> {
    let key = SigningKey::from_pkcs8_pem(&read_bounded(path)?).map_err(|e| {
        format!(
            "{} is not an Ed25519 private key in PKCS#8 PEM ({e})",
            path.display()
        )
    })?;
    Ok((stem(path)?, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::{mint, verify, Claims};

    fn claims() -> Claims {
        Claims {
            sub: "s".into(),
            exp: u64::MAX / 2,
            nbf: None,
            iat: None,
            jti: Some("j1".into()),
            aud: None,
            read: vec!["*".into()],
            write: vec![],
            admin: false,
        }
    }

    #[test]
    fn generated_keys_load_and_verify_their_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = generate(dir.path(), "ci").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(fs::read_to_string(&private)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(generate(dir.path(), "ci").unwrap_err().contains("exists"));

        let (kid, key) = read_signing_key(&private).unwrap();
        assert_eq!(kid, "ci");
        let config = AuthConfig {
            public_keys: Some(dir.path().into()),
            ..AuthConfig::default()
        };
        let trust = Trust::load(&config).unwrap();
        let token = mint(&key, &kid, &claims());
        assert_eq!(
            verify(&token, &trust.keys, &trust.policy, 1).unwrap(),
            claims()
        );
    }

    /// `openssl genpkey -algorithm ed25519` output: 48 bytes of DER, the seed last.
    #[test]
    fn the_private_key_is_encoded_as_openssl_does() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let pem = private_key_pem(&key);
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::engine::general_purpose::STANDARD;
        let der = STANDARD.decode(body).unwrap();
        let mut expected = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        expected.extend([7u8; 32]);
        assert_eq!(der, expected);
    }

    #[test]
    fn jwks_and_revocation_lists_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let jwks = dir.path().join("jwks.json");
        fs::write(
            &jwks,
            format!(
                r#"{{"keys":[{{"kty":"RSA","n":"x","e":"AQAB"}},{{"kty":"OKP","crv":"Ed25519","kid":"k2","x":"{x}"}}]}}"#
            ),
        )
        .unwrap();
        let revoked = dir.path().join("revoked");
        fs::write(&revoked, "# old CI tokens\nj1\n\n  j2  \n").unwrap();
        let config = AuthConfig {
            jwks: Some(jwks.clone()),
            revoked: Some(revoked),
            ..AuthConfig::default()
        };
        let trust = Trust::load(&config).unwrap();
        assert_eq!(trust.keys.kids().collect::<Vec<_>>(), ["k2"]);
        assert_eq!(
            trust.policy.revoked,
            HashSet::from(["j1".to_string(), "j2".to_string()])
        );
        let token = mint(&key, "k2", &claims());
        assert_eq!(
            verify(&token, &trust.keys, &trust.policy, 1)
                .unwrap_err()
                .reason(),
            "revoked"
        );
        fs::write(
            &jwks,
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"AAAA"}]}"#,
        )
        .unwrap();
        assert!(Trust::load(&config).unwrap_err().contains("32 bytes"));
    }

    #[test]
    fn a_bad_public_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad.pub"), "not a key").unwrap();
        let config = AuthConfig {
            public_keys: Some(dir.path().into()),
            ..AuthConfig::default()
        };
        let error = Trust::load(&config).unwrap_err();
        assert!(error.contains("bad.pub"), "{error}");
    }

    #[test]
    fn the_fingerprint_changes_when_a_key_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuthConfig {
            public_keys: Some(dir.path().into()),
            ..AuthConfig::default()
        };
        let before = Fingerprint::of(&config);
        generate(dir.path(), "new").unwrap();
        assert_ne!(Fingerprint::of(&config), before);
    }
}
