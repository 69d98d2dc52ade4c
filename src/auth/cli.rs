//! `tessera keygen` and `tessera token`: make a key pair, mint a token, inspect one.
//!
//! ```text
//! tessera keygen --dir /etc/tessera/keys --kid ci          # ci.key (0600) and ci.pub
//! tessera token --key /etc/tessera/keys/ci.key --subject ci-main \
//!     --read 'bazel*' --write bazel/main --ttl 30d          # prints the token
//! tessera token --inspect TOKEN --config /etc/tessera.toml  # header, claims, verdict
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::keys::{self, Trust};
use super::s3;
use super::token::{self, Claims};
use crate::config::{parse_duration, Layers};

/// The S3 server secret `tessera keygen` makes next to the keys when absent.
pub const S3_SECRET_FILE: &str = "s3.secret";

/// The default lifetime of a minted token.
pub const TOKEN_TTL_DEFAULT: Duration = Duration::from_secs(24 * 3600);

/// Seconds since the epoch now.
pub fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `tessera keygen`: writes the pair and says where.
pub fn keygen(dir: &Path, kid: &str) -> Result<String, String> {
    let (private, public) = keys::generate(dir, kid)?;
    let mut out = format!(
        "wrote {} (private, keep it secret) and {} (trust it with auth.public_keys = {:?})",
        private.display(),
        public.display(),
        dir.display().to_string()
    );
    let secret = dir.join(S3_SECRET_FILE);
    if s3::ensure_secret(&secret)? {
        out.push_str(&format!(
            "\nwrote {} (the server-side secret of S3 credentials, `tessera token --s3`)",
            secret.display()
        ));
    }
    Ok(out)
}

/// What `tessera token` mints.
#[derive(Clone, Debug, Default)]
pub struct MintRequest {
    pub key: PathBuf,
    pub subject: String,
    pub read: Vec<String>,
    pub write: Vec<String>,
    pub admin: bool,
    /// `30d`, `1h`, … (default 24 h).
    pub ttl: Option<String>,
    pub audience: Option<String>,
    /// Print S3 credentials instead: the server secret file (`None`: `s3.secret` beside the key).
    pub s3: Option<Option<PathBuf>>,
}

/// A random token id (128 bits, hex), so any token can be revoked.
fn random_jti() -> Result<String, String> {
    let key = keys::random_signing_key()?;
    Ok(key.to_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `tessera token --key …`: the token.
pub fn mint(request: &MintRequest, now: u64) -> Result<String, String> {
    if request.subject.is_empty() {
        return Err("--subject must name who the token is for".into());
    }
    let ttl = match &request.ttl {
        None => TOKEN_TTL_DEFAULT,
        Some(text) => parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("--ttl {text:?} is not a duration like 1h, 30d"))?,
    };
    let (kid, key) = keys::read_signing_key(&request.key)?;
    let claims = Claims {
        sub: request.subject.clone(),
        exp: now.saturating_add(ttl.as_secs()),
        nbf: None,
        iat: Some(now),
        jti: Some(random_jti()?),
        aud: request.audience.clone().map(token::Audience::One),
        read: request.read.clone(),
        write: request.write.clone(),
        admin: request.admin,
    };
    let token = token::mint(&key, &kid, &claims);
    let Some(secret) = &request.s3 else {
        return Ok(token);
    };
    let secret = match secret {
        Some(path) => path.clone(),
        None => request
            .key
            .parent()
            .unwrap_or(Path::new("."))
            .join(S3_SECRET_FILE),
    };
    Ok(s3::credentials(&s3::read_secret(&secret)?, &token))
}

/// `tessera token --inspect`: the header and claims, and the verdict of `config`'s keys.
/// `Ok` text for an accepted (or unchecked) token, `Err` text for a refused one.
pub fn inspect(token_text: &str, config: Option<&Path>, now: u64) -> Result<String, String> {
    let (header, claims) = token::peek(token_text.trim()).map_err(|e| format!("refused: {e}"))?;
    let mut out = format!(
        "header: {}\nclaims: {}\n",
        serde_json::to_string(&header).unwrap_or_default(),
        serde_json::to_string_pretty(&claims).unwrap_or_default()
    );
    if let Some(exp) = claims.get("exp").and_then(|e| e.as_u64()) {
        out.push_str(&if exp > now {
            format!("expires in {}s\n", exp - now)
        } else {
            format!("expired {}s ago\n", now - exp)
        });
    }
    let Some(path) = config else {
        out.push_str("not checked: pass --config FILE to verify it against a server's keys\n");
        return Ok(out);
    };
    let mut layers = Layers::with_defaults();
    layers.apply_file(path).map_err(|e| e.to_string())?;
    let config = layers.validate().map_err(|e| e.to_string())?;
    if !config.auth.has_token_keys() {
        return Err(format!(
            "{out}refused: {} configures no keys (auth.public_keys or auth.jwks)",
            path.display()
        ));
    }
    let trust = Trust::load(&config.auth)?;
    match token::verify(token_text.trim(), &trust.keys, &trust.policy, now) {
        Ok(claims) => {
            out.push_str(&format!(
                "accepted by {}: subject {:?}, read {:?}, write {:?}, admin {}\n",
                path.display(),
                claims.sub,
                claims.read,
                claims.write,
                claims.admin
            ));
            Ok(out)
        }
        Err(error) => Err(format!(
            "{out}refused by {} ({}): {error}",
            path.display(),
            error.reason()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_inspect_as_accepted_and_expired_ones_as_refused() {
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path(), "ci").unwrap();
        let request = MintRequest {
            key: dir.path().join("ci.key"),
            subject: "ci-main".into(),
            read: vec!["bazel*".into()],
            write: vec!["bazel/main".into()],
            ttl: Some("1h".into()),
            ..MintRequest::default()
        };
        let now = 1_800_000_000;
        let token = mint(&request, now).unwrap();
        let config = dir.path().join("tessera.toml");
        std::fs::write(
            &config,
            format!(
                "[auth]\npublic_keys = {:?}\n",
                dir.path().display().to_string()
            ),
        )
        .unwrap();
        let accepted = inspect(&token, Some(&config), now).unwrap();
        assert!(accepted.contains("accepted"), "{accepted}");
        assert!(accepted.contains("\"kid\":\"ci\""), "{accepted}");
        let refused = inspect(&token, Some(&config), now + 3600).unwrap_err();
        assert!(refused.contains("(expired)"), "{refused}");
        let unchecked = inspect(&token, None, now).unwrap();
        assert!(unchecked.contains("not checked"), "{unchecked}");
        assert!(inspect("a.b", None, now).unwrap_err().contains("refused"));
        let bad_ttl = MintRequest {
            ttl: Some("soon".into()),
            ..request
        };
        assert!(mint(&bad_ttl, now).unwrap_err().contains("--ttl"));
        let s3 = MintRequest {
            s3: Some(None),
            ttl: None,
            ..bad_ttl
        };
        let lines = mint(&s3, now).unwrap();
        let (id, secret) = lines.trim().split_once('\n').unwrap();
        let id = id.strip_prefix("AWS_ACCESS_KEY_ID=").unwrap();
        let server = s3::read_secret(&dir.path().join(S3_SECRET_FILE)).unwrap();
        assert_eq!(
            secret.strip_prefix("AWS_SECRET_ACCESS_KEY=").unwrap(),
            s3::secret_access_key(&server, id)
        );
        assert!(inspect(id, Some(&config), now)
            .unwrap()
            .contains("accepted"));
    }
}
