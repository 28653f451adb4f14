//! Loading the PER authority keypair from a Solana CLI JSON file (`PER_L1_KEYPAIR_FILE`).
//!
//! The file is a JSON array of 64 numbers: the 32-byte ed25519 secret followed by the 32-byte
//! public key, as written by `solana-keygen new`. Every error names the file and what is wrong
//! with it, and never the bytes: an error message ends up in logs, and a key in logs is a key lost.

use std::path::{Path, PathBuf};

use solana_keypair::Keypair;

/// Length of a Solana CLI keypair: secret (32) ‖ public (32). Checked before the bytes are used.
pub const KEYPAIR_FILE_BYTES: usize = 64;

/// Why the authority keypair could not be loaded; each variant says which file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum KeypairError {
    /// The path does not exist: usually a wrong `PER_L1_KEYPAIR_FILE` or an unmounted secret.
    #[error("keypair file {path} does not exist")]
    Missing {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// The file exists but could not be read (permissions, a directory, an I/O error).
    #[error("keypair file {path} cannot be read: {source}")]
    Unreadable {
        /// The file that was read.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file is not a JSON array of numbers 0..=255. Only the position is reported, since
    /// serde's own message may quote a value from the file.
    #[error(
        "keypair file {path} is not a JSON array of bytes (error at line {line}, column {column})"
    )]
    NotJson {
        /// The file that was parsed.
        path: PathBuf,
        /// 1-based line of the first error.
        line: usize,
        /// 1-based column of the first error.
        column: usize,
    },
    /// The array does not hold exactly 64 bytes (a public key alone has 32).
    #[error("keypair file {path} holds {len} bytes; a Solana keypair has {expected}")]
    WrongLength {
        /// The file that was parsed.
        path: PathBuf,
        /// How many bytes it held.
        len: usize,
        /// Always [`KEYPAIR_FILE_BYTES`].
        expected: usize,
    },
    /// The public half does not match the one derived from the secret half.
    #[error(
        "keypair file {path} is not a valid ed25519 keypair (its public key does not match its secret key)"
    )]
    BadKey {
        /// The file that was parsed.
        path: PathBuf,
    },
}

/// Loads the authority keypair from a Solana CLI JSON keypair file, so the node signs with the
/// same key an operator created with `solana-keygen`.
pub fn load_keypair(path: &Path) -> Result<Keypair, KeypairError> {
    let text = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            KeypairError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            KeypairError::Unreadable {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let mut bytes: Vec<u8> = serde_json::from_slice(&text).map_err(|e| KeypairError::NotJson {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
    })?;
    drop(text);
    if bytes.len() != KEYPAIR_FILE_BYTES {
        let len = bytes.len();
        bytes.fill(0);
        return Err(KeypairError::WrongLength {
            path: path.to_path_buf(),
            len,
            expected: KEYPAIR_FILE_BYTES,
        });
    }
    let keypair = Keypair::try_from(bytes.as_slice()).map_err(|_| KeypairError::BadKey {
        path: path.to_path_buf(),
    });
    // Best effort: do not leave a second copy of the secret in freed memory.
    bytes.fill(0);
    keypair
}

#[cfg(test)]
mod tests {
    use super::*;
    use solana_signer::Signer;

    fn write(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn loads_a_cli_keypair_and_errors_never_show_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let keypair = Keypair::new_from_array([7u8; 32]);
        let json = serde_json::to_string(&keypair.to_bytes().to_vec()).unwrap();
        let good = write(&dir, "good.json", &json);
        assert_eq!(load_keypair(&good).unwrap().pubkey(), keypair.pubkey());

        let missing = dir.path().join("nope.json");
        assert!(matches!(
            load_keypair(&missing),
            Err(KeypairError::Missing { .. })
        ));

        let not_json = write(&dir, "bad.json", "[7, 7, 7, 300]");
        let err = load_keypair(&not_json).unwrap_err();
        assert!(matches!(err, KeypairError::NotJson { .. }), "{err}");
        assert!(!err.to_string().contains("300"), "{err}");

        let short = write(&dir, "short.json", "[7, 7, 7]");
        let err = load_keypair(&short).unwrap_err();
        assert!(
            matches!(err, KeypairError::WrongLength { len: 3, .. }),
            "{err}"
        );

        let mut bytes = keypair.to_bytes();
        bytes[63] ^= 1;
        let bad = write(
            &dir,
            "badkey.json",
            &serde_json::to_string(&bytes.to_vec()).unwrap(),
        );
        let err = load_keypair(&bad).unwrap_err();
        assert!(matches!(err, KeypairError::BadKey { .. }), "{err}");
        assert!(!format!("{err} {err:?}").contains("7, 7"), "{err:?}");
    }
}
