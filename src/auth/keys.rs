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
            let key = STANDARD.decode(text.trim()).unwrap_or_default();
            if key.len() < MIN_JWT_SECRET_BYTES {
                return Err(KeyError::Malformed {
                    path: path.display().to_string(),
                });
            }
            // Tighten a key file that someone made readable to others.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(file_error)?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            // create_new: if another process wins the race, its key is the one to read.
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            match created {
                Ok(mut file) => {
                    file.write_all(STANDARD.encode(&key).as_bytes())
                        .map_err(file_error)?;
                    file.sync_all().map_err(file_error)?;
                    Ok(key)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => embedded_key(path),
                Err(e) => Err(file_error(e)),
            }
        }
        Err(e) => Err(file_error(e)),
    }
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
}
