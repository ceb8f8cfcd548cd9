//! The data directory: created on first start with owner-only permissions,
//! holding the SQLite database and the server secret. A secret is only
//! ever generated for a store that holds nothing sealed with one: the
//! caller asks the store first ([`Prepared::finish`]), because a new secret
//! next to an existing database could open none of its signing keys.

use std::io::Write;
use std::path::{Path, PathBuf};

use latchkey_core::secret::{Secret, ServerSecret};

pub const DATABASE_FILE: &str = "latchkey.db";
pub const SECRET_FILE: &str = "server-secret";

pub struct DataDir {
    pub database: PathBuf,
    pub secret: ServerSecret,
    /// Where the secret came from, for errors.
    pub secret_source: SecretSource,
    /// What this start created, for the log.
    pub created: Vec<String>,
}

/// Where the server secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    /// `LATCHKEY_SERVER_SECRET` (the file's text).
    Environment,
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Environment => f.write_str("LATCHKEY_SERVER_SECRET"),
        }
    }
}

/// The data directory, opened, with its secret if it has one.
pub struct Prepared {
    pub database: PathBuf,
    secret_path: PathBuf,
    secret: Option<(ServerSecret, SecretSource)>,
    created: Vec<String>,
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
    #[error(
        "{} is missing, but the database already holds signing keys sealed with a server secret: \
         restore the server-secret file that was backed up with this database (or set \
         LATCHKEY_SERVER_SECRET to its contents). No new secret is generated: it could not \
         open those keys",
        path.display()
    )]
    SecretMissing { path: PathBuf },
    #[error(
        "the server secret from {from} does not open signing key {kid} of the database: it is \
         not the secret this database was created with; restore the server-secret file that was \
         backed up with this database"
    )]
    WrongSecret { from: SecretSource, kid: String },
}

/// Opens (creating when missing) the data directory and reads its server
/// secret if there is one. `secret_override` (the secret's file text from
/// the environment) replaces the file and is never written to disk.
pub fn prepare(dir: &Path, secret_override: Option<&Secret>) -> Result<Prepared, DataDirError> {
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
    let secret = match secret_override {
        Some(text) => Some((
            ServerSecret::parse(text.expose())
                .map_err(|e| secret_error(Path::new("LATCHKEY_SERVER_SECRET"), e))?,
            SecretSource::Environment,
        )),
        None => read_secret(&secret_path)?.map(|s| (s, SecretSource::File(secret_path.clone()))),
    };
    Ok(Prepared {
        database: dir.join(DATABASE_FILE),
        secret_path,
        secret,
        created,
    })
}

impl Prepared {
    /// Whether a secret was found (in the file or the environment).
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// Where the secret file is (or would be).
    pub fn secret_path(&self) -> &Path {
        &self.secret_path
    }

    /// The directory with the secret found, or else with a new one written
    /// to the secret file: only for a store that holds no signing keys.
    pub fn finish(self) -> Result<DataDir, DataDirError> {
        let Self {
            database,
            secret_path,
            secret,
            mut created,
        } = self;
        let io = |source| DataDirError::Io {
            path: secret_path.clone(),
            source,
        };
        let (secret, secret_source) = match secret {
            Some(found) => found,
            None => {
                let secret = ServerSecret::generate().map_err(|e| secret_error(&secret_path, e))?;
                match write_private_file(&secret_path, secret.to_file_text().as_bytes()) {
                    Ok(()) => created.push(format!("server secret {}", secret_path.display())),
                    // Another node sharing this directory wrote it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let theirs = read_secret(&secret_path)?.ok_or_else(|| io(e))?;
                        return Ok(DataDir {
                            database,
                            secret: theirs,
                            secret_source: SecretSource::File(secret_path),
                            created,
                        });
                    }
                    Err(e) => return Err(io(e)),
                }
                (secret, SecretSource::File(secret_path))
            }
        };
        Ok(DataDir {
            database,
            secret,
            secret_source,
            created,
        })
    }
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
