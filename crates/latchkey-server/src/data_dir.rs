//! The data directory: created on first start with owner-only permissions,
//! holding the SQLite database and the server secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use latchkey_core::secret::{Secret, ServerSecret};

pub const DATABASE_FILE: &str = "latchkey.db";
pub const SECRET_FILE: &str = "server-secret";

pub struct DataDir {
    pub database: PathBuf,
    pub secret: ServerSecret,
    /// What this start created, for the log.
    pub created: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Secret { path: PathBuf, message: String },
}

/// Opens (creating when missing) the data directory and its server secret.
/// `secret_override` (the secret's file text from the environment) replaces
/// the file and is never written to disk.
pub fn prepare(dir: &Path, secret_override: Option<&Secret>) -> Result<DataDir, DataDirError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DataDirError::Io { path, source }
    };
    let mut created = Vec::new();
    if !dir.exists() {
        create_private_dir(dir).map_err(io(dir))?;
        created.push(format!("data directory {}", dir.display()));
    }
    let secret_path = dir.join(SECRET_FILE);
    let stored = match secret_override {
        Some(text) => Some(
            ServerSecret::parse(text.expose())
                .map_err(|e| secret_error(Path::new("LATCHKEY_SERVER_SECRET"), e))?,
        ),
        None => read_secret(&secret_path)?,
    };
    let secret = match stored {
        Some(secret) => secret,
        None => {
            let secret = ServerSecret::generate().map_err(|e| secret_error(&secret_path, e))?;
            match write_private_file(&secret_path, secret.to_file_text().as_bytes()) {
                Ok(()) => {
                    created.push(format!("server secret {}", secret_path.display()));
                    secret
                }
                // Another node sharing this directory wrote it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_secret(&secret_path)?.ok_or_else(|| io(&secret_path)(e))?
                }
                Err(e) => return Err(io(&secret_path)(e)),
            }
        }
    };
    Ok(DataDir {
        database: dir.join(DATABASE_FILE),
        secret,
        created,
    })
}

fn read_secret(path: &Path) -> Result<Option<ServerSecret>, DataDirError> {
    match std::fs::read_to_string(path) {
        Ok(text) => ServerSecret::parse(&text)
            .map(Some)
            .map_err(|e| secret_error(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DataDirError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn secret_error(path: &Path, e: impl std::fmt::Display) -> DataDirError {
    DataDirError::Secret {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes a new file only the owner can read, durably, and never over an
/// existing one (two nodes starting at once must not swap secrets).
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
