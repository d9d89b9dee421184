//! Encryption at rest of provider tokens and PKCE verifiers (OPERATOR §2).
//!
//! AES-256-GCM under a key derived with HKDF-SHA256 from the configured key material (info
//! `flux-integrations-v1`), a random 96-bit nonce per value, and `user_id|provider|field` as
//! associated data, so a ciphertext copied into another user's row or field does not decrypt.
//! Stored as `v1:` + base64(nonce ‖ ciphertext ‖ tag). A previous key decrypts only.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;

use crate::config::integrations::{IntegrationSettings, MIN_ENCRYPTION_KEY_BYTES};

const INFO: &[u8] = b"flux-integrations-v1";
const PREFIX: &str = "v1:";
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("cannot encrypt")]
    Seal,
    /// Wrong key, wrong row or field, or a damaged value. Never says which.
    #[error("cannot decrypt a stored secret")]
    Open,
}

/// Which field of which row a secret belongs to: the associated data.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    pub user_id: &'a str,
    pub provider: &'a str,
    pub field: &'a str,
}

impl Aad<'_> {
    fn bytes(&self) -> Vec<u8> {
        format!("{}|{}|{}", self.user_id, self.provider, self.field).into_bytes()
    }
}

pub struct Sealer {
    current: Aes256Gcm,
    previous: Option<Aes256Gcm>,
}

fn derive(material: &[u8]) -> Aes256Gcm {
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 255 × 32 limit, so `expand` cannot fail.
    let _ = Hkdf::<Sha256>::new(None, material).expand(INFO, &mut key);
    Aes256Gcm::new(&key.into())
}

impl Sealer {
    pub fn new(key: &[u8], previous: Option<&[u8]>) -> Sealer {
        Sealer {
            current: derive(key),
            previous: previous.filter(|p| !p.is_empty()).map(derive),
        }
    }

    pub fn seal(&self, plaintext: &str, aad: Aad<'_>) -> Result<String, CryptoError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::fill(&mut nonce);
        let aad = aad.bytes();
        let ct = self
            .current
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    pub fn open(&self, stored: &str, aad: Aad<'_>) -> Result<String, CryptoError> {
        let raw = stored
            .strip_prefix(PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|raw| raw.len() > NONCE_BYTES)
            .ok_or(CryptoError::Open)?;
        let (nonce, ct) = raw.split_at(NONCE_BYTES);
        let nonce =
            Nonce::from(<[u8; NONCE_BYTES]>::try_from(nonce).map_err(|_| CryptoError::Open)?);
        let aad = aad.bytes();
        let try_key =
            |cipher: &Aes256Gcm| cipher.decrypt(&nonce, Payload { msg: ct, aad: &aad }).ok();
        let plain = try_key(&self.current)
            .or_else(|| self.previous.as_ref().and_then(try_key))
            .ok_or(CryptoError::Open)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Open)
    }
}

/// The key material: the configured key; without one and without a configured provider (or in
/// production, where configuration refused to start otherwise) a random key of this process;
/// otherwise a development key generated once into `<data_dir>/dev-oauth-key`.
pub fn key_material(
    settings: &IntegrationSettings,
    data_dir: &Path,
    production: bool,
) -> anyhow::Result<Vec<u8>> {
    if !settings.encryption_key.is_empty() {
        return Ok(settings.encryption_key.as_bytes().to_vec());
    }
    // Without a configured provider nothing is ever encrypted: a key of this process will do, and
    // no file is written.
    if production || !settings.any_configured() {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        return Ok(key.to_vec());
    }
    let path = data_dir.join("dev-oauth-key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= MIN_ENCRYPTION_KEY_BYTES {
            return Ok(existing.as_bytes().to_vec());
        }
    }
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let key = hex::encode(bytes);
    std::fs::create_dir_all(data_dir)?;
    write_private(&path, &key)?;
    tracing::warn!(
        path = %path.display(),
        "integrations.encryption_key (OAUTH_ENCRYPTION_KEY) is not set: generated a development key; \
         set one in production"
    );
    Ok(key.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: Aad<'static> = Aad {
        user_id: "u1",
        provider: "github",
        field: "access_token",
    };

    #[test]
    fn round_trip_binding_and_rotation() {
        let old = Sealer::new(&[7u8; 32], None);
        let sealed = old.seal("gho_secret", AAD).unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("gho_secret"));
        assert_ne!(sealed, old.seal("gho_secret", AAD).unwrap(), "fresh nonce");
        assert_eq!(old.open(&sealed, AAD).unwrap(), "gho_secret");
        let other_user = Aad {
            user_id: "u2",
            ..AAD
        };
        assert!(old.open(&sealed, other_user).is_err());
        let other_field = Aad {
            field: "refresh_token",
            ..AAD
        };
        assert!(old.open(&sealed, other_field).is_err());

        let rotated = Sealer::new(&[9u8; 32], Some(&[7u8; 32]));
        assert_eq!(rotated.open(&sealed, AAD).unwrap(), "gho_secret");
        let fresh = rotated.seal("new", AAD).unwrap();
        assert!(
            old.open(&fresh, AAD).is_err(),
            "the previous key never encrypts"
        );
        assert!(Sealer::new(&[9u8; 32], None).open(&sealed, AAD).is_err());
        let mut damaged = sealed.clone();
        damaged.pop();
        damaged.push('A');
        assert!(old.open(&damaged, AAD).is_err());
        assert!(old.open("gho_plain", AAD).is_err());
    }
}
