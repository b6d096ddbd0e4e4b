//! Files the hub writes: the generated credentials, always atomically; and random tokens.

use std::path::Path;

use rand::Rng;

use super::{AppConfig, ConfigError};

/// A random token of 32 hex characters, for the admin API.
pub fn random_token() -> String {
    let mut rng = rand::rng();
    (0..32).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect()
}

/// Loads the app kept in `dir/credentials.toml`, or makes one and saves it there (atomically: a temporary
/// file renamed over the old one, so a crash never leaves half a file).
pub fn load_or_create_credentials(dir: &Path) -> Result<(AppConfig, bool), ConfigError> {
    let path = dir.join("credentials.toml");
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
        let app: AppConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?;
        app.validate()?;
        return Ok((app, false));
    }
    let app = AppConfig::generate();
    let text = toml::to_string(&app).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    write_atomically(&path, text.as_bytes())?;
    Ok((app, true))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that readers see
/// either the old file or the new one, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    use std::io::Write;
    let io = |source| ConfigError::Io { path: path.into(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let written = (|| {
        // A temporary file left by a crash is replaced; a new one is created, never an existing one (or the
        // file a symbolic link in its place points to) reused. It holds a secret: readable by its owner only,
        // from the moment it exists.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        // A disk that filled up mid-write leaves a partial temporary file: remove it, keep the old file.
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    // The rename itself reaches the disk once the folder is synced (a power cut would otherwise be able to
    // undo it). Not every platform can open a folder for that, so a failure here is not an error.
    #[cfg(unix)]
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn credentials_are_created_once_then_kept() {
        let dir = std::env::temp_dir().join(format!("poussr-cred-{}", rand::random::<u64>()));
        let (first, created) = load_or_create_credentials(&dir).unwrap();
        assert!(created);
        let (second, created) = load_or_create_credentials(&dir).unwrap();
        assert!(!created);
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("credentials.toml")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
