//! Where the signing key comes from: the configuration, or — in the embedded mode only — a
//! file generated in the data directory on first start and readable by its owner alone.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

use crate::auth::token::{SigningKey, TokenKeys};
use crate::config::{AuthSettings, Secret, MIN_JWT_SECRET_BYTES};

pub const KEY_FILE_NAME: &str = "jwt-secret";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or create the signing key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("the signing key file {path} does not hold a base64 key of at least 32 bytes")]
    Malformed { path: String },
}

pub fn load(settings: &AuthSettings, data_dir: &Path) -> Result<TokenKeys, KeyError> {
    let current = match &settings.jwt_secret {
        Some(secret) => decode(secret),
        None => embedded_key(&data_dir.join(KEY_FILE_NAME))?,
    };
    let previous: Vec<Vec<u8>> = settings.jwt_previous_secrets.iter().map(decode).collect();
    Ok(TokenKeys::new(
        SigningKey::from_secret(current),
        previous.into_iter().map(SigningKey::from_secret).collect(),
        settings.access_token_ttl,
    ))
}

/// Configured secrets were checked when the settings were read.
fn decode(secret: &Secret) -> Vec<u8> {
    STANDARD.decode(secret.expose()).unwrap_or_default()
}

fn embedded_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let file_error = |source| KeyError::File {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = STANDARD
                .decode(text.trim())
                .ok()
                .filter(|key| key.len() >= MIN_JWT_SECRET_BYTES)
                .ok_or_else(|| KeyError::Malformed {
                    path: path.display().to_string(),
                })?;
            // Tighten a key file that someone made readable to others.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(file_error)?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            match publish(path, &key) {
                Ok(()) => Ok(key),
                // Another process published first: its key is the one everyone uses.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => embedded_key(path),
                Err(e) => Err(file_error(e)),
            }
        }
        Err(e) => Err(file_error(e)),
    }
}

/// Makes the key file appear whole or not at all: the key is written and synced to a file of
/// this process's own, which is then linked to the key file's name. Linking (unlike renaming)
/// never replaces a key another process published a moment earlier; a process starting at the
/// same moment never reads a half-written file.
fn publish(path: &Path, key: &[u8]) -> std::io::Result<()> {
    let draft = path.with_extension(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&draft)?;
        file.write_all(STANDARD.encode(key).as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&draft, path)
    })();
    let _ = std::fs::remove_file(&draft);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_key_is_generated_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let first = embedded_key(&path).unwrap();
        assert_eq!(first.len(), 32);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(embedded_key(&path).unwrap(), first);
    }

    /// issue 14: processes starting together all read the one key that was published, never
    /// an empty or half-written file; no draft is left behind.
    #[test]
    fn processes_starting_together_share_one_whole_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(KEY_FILE_NAME);
            let start = std::sync::Arc::new(std::sync::Barrier::new(8));
            let keys: Vec<Vec<u8>> = (0..8)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        embedded_key(&path).expect("a whole key")
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect();
            assert!(keys.iter().all(|k| *k == keys[0]), "one key for all");
            let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(files.len(), 1, "only the key file remains");
        }
    }
}
