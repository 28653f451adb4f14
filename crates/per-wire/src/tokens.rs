//! Bearer tokens for `/deposit` and the admin API.
//!
//! A token comes from its variable, its `*_FILE`, or — on first start — is generated into the data
//! dir with mode 0600 so the default is both secure and usable. Values are never logged; only paths.

use rand::RngCore;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// A secret bearer token, compared in constant time.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where a token came from (logged instead of the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// The environment variable itself.
    Env(&'static str),
    /// A file named by `*_FILE` or the config.
    File(PathBuf),
    /// Generated now into the data dir.
    Generated(PathBuf),
    /// Read back from a previously generated file in the data dir.
    DataDir(PathBuf),
}

/// Why a token could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or writing the token file failed.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The token is empty or too short to be a secret.
    #[error("token from {0} is shorter than 16 characters")]
    TooShort(String),
}

impl Token {
    /// Wraps a known token value (tests and clients).
    pub fn new(value: impl Into<String>) -> Token {
        Token(value.into())
    }

    /// The token's text, for clients that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks an `Authorization` header value (`Bearer <token>`) in constant time.
    pub fn matches_header(&self, header: Option<&str>) -> bool {
        let Some(presented) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        bool::from(presented.trim().as_bytes().ct_eq(self.0.as_bytes()))
    }

    /// Resolves a token: value, then file, then `<data_dir>/<name>` (generated if absent).
    pub fn resolve(
        value: Option<String>,
        env_name: &'static str,
        file: Option<&Path>,
        data_dir: &Path,
        name: &str,
    ) -> Result<(Token, TokenSource), TokenError> {
        if let Some(value) = value {
            return Token::checked(value, env_name).map(|t| (t, TokenSource::Env(env_name)));
        }
        if let Some(path) = file {
            let text = read(path)?;
            let token = Token::checked(text.trim().to_owned(), &path.display().to_string())?;
            return Ok((token, TokenSource::File(path.to_owned())));
        }
        let path = data_dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let token = Token::checked(text.trim().to_owned(), &path.display().to_string())?;
                Ok((token, TokenSource::DataDir(path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = Token::generate();
                write_private(&path, &token.0)?;
                Ok((token, TokenSource::Generated(path)))
            }
            Err(source) => Err(TokenError::Io { path, source }),
        }
    }

    /// Reads a token without generating one (clients such as `per loadgen`).
    pub fn read_file(path: &Path) -> Result<Token, TokenError> {
        Token::checked(read(path)?.trim().to_owned(), &path.display().to_string())
    }

    fn checked(value: String, origin: &str) -> Result<Token, TokenError> {
        if value.len() < 16 {
            return Err(TokenError::TooShort(origin.to_owned()));
        }
        Ok(Token(value))
    }

    fn generate() -> Token {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Token(hex::encode(bytes))
    }
}

fn read(path: &Path) -> Result<String, TokenError> {
    std::fs::read_to_string(path).map_err(|source| TokenError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_private(path: &Path, value: &str) -> Result<(), TokenError> {
    let io = |source| TokenError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(value.as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_is_private_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, source) =
            Token::resolve(None, "PER_X", None, dir.path(), "x.token").expect("generate");
        assert!(matches!(source, TokenSource::Generated(_)));
        let mode = std::fs::metadata(dir.path().join("x.token"))
            .expect("file")
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
        let (second, source) =
            Token::resolve(None, "PER_X", None, dir.path(), "x.token").expect("read back");
        assert!(matches!(source, TokenSource::DataDir(_)));
        assert_eq!(first.expose(), second.expose());
    }

    #[test]
    fn header_matching() {
        let token = Token::new("0123456789abcdef0123");
        assert!(token.matches_header(Some("Bearer 0123456789abcdef0123")));
        assert!(!token.matches_header(Some("Bearer 0123456789abcdef012")));
        assert!(!token.matches_header(Some("0123456789abcdef0123")));
        assert!(!token.matches_header(None));
        assert!(format!("{token:?}").contains("redacted"));
    }
}
