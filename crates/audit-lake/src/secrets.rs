//! Secrets at rest: the secret access keys the lake must keep (SigV4 verification derives each
//! request's signing key from the secret itself, so a hash will not do) are stored sealed with
//! ChaCha20-Poly1305 under a key kept apart from the database ([`LakeConfig::secrets_key_file`]).
//! A copy of `lake.db` alone hands out no working key.
//!
//! A sealed value is `sealed:v1:` and the base64 of a random 96-bit nonce and the ciphertext with
//! its tag; the associated data is what the secret belongs to (the access key id), so a sealed
//! value moved to another row does not open. A value without the prefix is a plaintext one of an
//! older lake: it is read as it is, and the store rewrites it sealed when it opens.
//!
//! [`LakeConfig::secrets_key_file`]: crate::LakeConfig::secrets_key_file

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    AeadCore, ChaCha20Poly1305, KeyInit,
    aead::{Aead, OsRng, Payload},
};

use crate::error::LakeError;

const PREFIX: &str = "sealed:v1:";
const NONCE_BYTES: usize = 12;

/// Seals and opens secrets with the lake's key.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    path: PathBuf,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Sealer {
    /// The key in the file at `path` (64 hexadecimal digits), made there (readable by the owner
    /// only) when there is none.
    pub fn load_or_create(path: &Path) -> Result<Sealer, LakeError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let key = ChaCha20Poly1305::generate_key(&mut OsRng);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                let mut options = fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path)?;
                file.write_all(hex::encode(key).as_bytes())?;
                file.sync_all()?;
                tracing::info!(path = %path.display(), "Made the key that seals the lake's secrets; keep it apart from backups of the database.");
                hex::encode(key)
            }
            Err(err) => return Err(err.into()),
        };
        let key = hex::decode(text.trim()).ok().filter(|k| k.len() == 32).ok_or_else(|| {
            LakeError::Config(format!("{} must hold 64 hexadecimal digits (a 256-bit key)", path.display()))
        })?;
        let cipher = ChaCha20Poly1305::new_from_slice(&key).expect("a 32-byte key");
        Ok(Sealer { cipher, path: path.to_owned() })
    }

    /// `secret`, sealed for `owner` (what it belongs to: the access key id).
    pub fn seal(&self, owner: &str, secret: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: secret.as_bytes(), aad: owner.as_bytes() })
            .expect("sealing a short secret cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// The secret of a stored value: opened when sealed, as it is when stored by an older lake.
    pub fn open(&self, owner: &str, stored: &str) -> Result<String, LakeError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_owned()) };
        let unreadable = || {
            LakeError::Config(format!(
                "the secret of {owner} does not open with the key in {}: the database was sealed with another key",
                self.path.display()
            ))
        };
        let bytes = STANDARD.decode(encoded).map_err(|_| unreadable())?;
        if bytes.len() < NONCE_BYTES {
            return Err(unreadable());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(nonce.into(), Payload { msg: sealed, aad: owner.as_bytes() })
            .map_err(|_| unreadable())?;
        String::from_utf8(plain).map_err(|_| unreadable())
    }

    /// Whether a stored value is sealed.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_opens_with_its_key_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let sealer = Sealer::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let sealed = sealer.seal("AKIAEXAMPLE", "the-secret");
        assert!(Sealer::is_sealed(&sealed) && !sealed.contains("the-secret"));
        assert_ne!(sealed, sealer.seal("AKIAEXAMPLE", "the-secret"), "a fresh nonce each time");
        assert_eq!(sealer.open("AKIAEXAMPLE", &sealed).unwrap(), "the-secret");
        assert!(sealer.open("AKIAOTHER", &sealed).is_err(), "bound to its owner");
        // The same file gives the same key; another key does not open it.
        assert_eq!(Sealer::load_or_create(&path).unwrap().open("AKIAEXAMPLE", &sealed).unwrap(), "the-secret");
        let other = Sealer::load_or_create(&dir.path().join("other.key")).unwrap();
        let err = other.open("AKIAEXAMPLE", &sealed).unwrap_err().to_string();
        assert!(err.contains("sealed with another key"), "{err}");
        // A plaintext value of an older lake reads as it is.
        assert_eq!(sealer.open("AKIAEXAMPLE", "plain").unwrap(), "plain");
        fs::write(dir.path().join("bad.key"), "abc").unwrap();
        assert!(Sealer::load_or_create(&dir.path().join("bad.key")).is_err());
    }
}
