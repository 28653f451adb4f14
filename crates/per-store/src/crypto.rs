//! Encryption at rest, shared by snapshots and the WAL.
//!
//! One symmetric key, loaded from the file named by `PER_ENCRYPTION_KEY_FILE` (the `*_FILE`
//! convention: the key never appears in the environment, the command line or a config file).
//!
//! # Key file
//! Either exactly 32 raw bytes, or 64 hexadecimal digits (either case) optionally followed by one
//! `\n` or `\r\n`. Anything else is [`CryptoError::KeyFormat`]. Generate one with
//! `head -c 32 /dev/urandom | xxd -p -c 64 > per.key && chmod 600 per.key`.
//!
//! # Key id (stable; version 1)
//! `key_id = SHA-256(b"per/key-id/v1" || key)[..8]`. It is written into file headers so that a
//! wrong key is reported as such ("written with key 0123…, configured key 4567…") instead of as an
//! authentication failure. It identifies a key without revealing it (a hash with a domain-separation
//! prefix, truncated; the key is 256 random bits, so the id cannot be brute-forced back).
//!
//! # Sealed format (stable; version 1)
//! [`EncryptionKey::seal`] uses XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`) and returns
//! `nonce (24 bytes) || ciphertext (len(plaintext) bytes) || tag (16 bytes)`, so a sealed blob is
//! exactly [`SEAL_OVERHEAD`] bytes longer than its plaintext. The nonce is drawn from the operating
//! system's CSPRNG (`OsRng`) for every call: with 192-bit nonces random nonces never collide in
//! practice, so callers need no counter state and a restored backup cannot cause nonce reuse.
//!
//! The associated data is authenticated but not stored: the caller passes the same bytes to
//! [`EncryptionKey::open`] (typically the file header that carries the key id, so a header cannot be
//! swapped onto another body). Wrong key, wrong associated data or any modified byte all give
//! [`CryptoError::AuthenticationFailed`], and `open` never returns unauthenticated plaintext.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the XChaCha20 nonce that starts every sealed blob.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that ends every sealed blob.
pub const TAG_LEN: usize = 16;
/// How many bytes [`EncryptionKey::seal`] adds to a plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of a [`EncryptionKey::key_id`].
pub const KEY_ID_LEN: usize = 8;

/// Domain-separation prefix of the key id hash.
const KEY_ID_DOMAIN: &[u8] = b"per/key-id/v1";
/// A key file is never longer than 64 hex digits plus `\r\n`; refuse to read anything much larger.
const KEY_FILE_BYTES_MAX: u64 = 1024;

/// A 32-byte key for encryption at rest.
///
/// `Debug` prints only the key id, never the key.
#[derive(Clone)]
pub struct EncryptionKey {
    key: [u8; KEY_LEN],
    key_id: [u8; KEY_ID_LEN],
}

/// Why a key could not be loaded or a sealed blob could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key file could not be read.
    #[error("cannot read encryption key file {}: {source}", path.display())]
    KeyFile {
        /// The key file (`PER_ENCRYPTION_KEY_FILE`).
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The key file was read but does not hold a key in a supported format.
    #[error(
        "encryption key file {} is not a key: {reason} (expected 32 raw bytes or 64 hex digits)",
        path.display()
    )]
    KeyFormat {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its contents (never the contents themselves).
        reason: String,
    },
    /// Wrong key, wrong associated data, or the sealed bytes were modified.
    #[error("decryption failed: authentication tag mismatch (wrong key, or the data was modified)")]
    AuthenticationFailed,
    /// The sealed blob is shorter than a nonce and a tag, so it cannot have come from `seal`.
    #[error("sealed data is shorter than the {SEAL_OVERHEAD}-byte nonce and tag")]
    TooShort,
}

impl EncryptionKey {
    /// Loads a key from a file: exactly 32 raw bytes, or 64 hex digits plus an optional newline.
    pub fn from_file(path: &Path) -> Result<EncryptionKey, CryptoError> {
        let key_file = |source| CryptoError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        let format = |reason: String| CryptoError::KeyFormat {
            path: path.to_path_buf(),
            reason,
        };
        let len = std::fs::metadata(path).map_err(key_file)?.len();
        if len > KEY_FILE_BYTES_MAX {
            return Err(format(format!("the file is {len} bytes")));
        }
        let contents = std::fs::read(path).map_err(key_file)?;
        if contents.len() == KEY_LEN {
            let mut key = [0u8; KEY_LEN];
            key.copy_from_slice(&contents);
            return Ok(EncryptionKey::from_bytes(key));
        }
        let text = contents
            .strip_suffix(b"\r\n")
            .or_else(|| contents.strip_suffix(b"\n"))
            .unwrap_or(&contents);
        if text.len() != 2 * KEY_LEN {
            return Err(format(format!(
                "the file is {} bytes ({} without a trailing newline)",
                contents.len(),
                text.len()
            )));
        }
        let mut key = [0u8; KEY_LEN];
        hex::decode_to_slice(text, &mut key)
            .map_err(|_| format("64 characters, but not all hex digits".to_string()))?;
        Ok(EncryptionKey::from_bytes(key))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> EncryptionKey {
        let digest = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(bytes)
            .finalize();
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&digest[..KEY_ID_LEN]);
        EncryptionKey { key: bytes, key_id }
    }

    /// First 8 bytes of `SHA-256("per/key-id/v1" || key)`: names the key without revealing it.
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        self.key_id
    }

    /// The key id as 16 lowercase hex digits (for messages and logs).
    pub fn key_id_hex(&self) -> String {
        hex::encode(self.key_id)
    }

    /// Encrypts and authenticates `plaintext`, also authenticating `associated_data` (which is not
    /// included in the output). Returns `nonce || ciphertext || tag`, [`SEAL_OVERHEAD`] bytes longer
    /// than the plaintext, with a fresh random nonce each call.
    pub fn seal(&self, associated_data: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new((&self.key).into());
        let payload = Payload {
            msg: plaintext,
            aad: associated_data,
        };
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        match cipher.encrypt(XNonce::from_slice(&nonce), payload) {
            Ok(ciphertext_and_tag) => out.extend_from_slice(&ciphertext_and_tag),
            // The RustCrypto AEAD only fails to encrypt beyond its maximum message length (about
            // 256 GiB for XChaCha20), far above anything `per` seals; nothing can be returned then.
            Err(_) => unreachable!(
                "XChaCha20-Poly1305 refused a {}-byte plaintext",
                plaintext.len()
            ),
        }
        out
    }

    /// Checks and decrypts a blob produced by [`EncryptionKey::seal`] with the same key and
    /// associated data. Returns the plaintext, or an error; never unauthenticated bytes.
    pub fn open(&self, associated_data: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort);
        }
        let (nonce, ciphertext_and_tag) = sealed.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new((&self.key).into());
        let payload = Payload {
            msg: ciphertext_and_tag,
            aad: associated_data,
        };
        cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| CryptoError::AuthenticationFailed)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("key_id", &self.key_id_hex())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes([byte; KEY_LEN])
    }

    #[test]
    fn seal_open_round_trip_and_overhead() {
        let k = key(7);
        for len in [0usize, 1, 100, 70_000] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = k.seal(b"ad", &plain);
            assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
            assert_eq!(k.open(b"ad", &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let k = key(7);
        let a = k.seal(b"", b"same");
        let b = k.seal(b"", b"same");
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_key_ad_or_tamper_fail_authentication() {
        let k = key(7);
        let sealed = k.seal(b"ad", b"secret state");
        assert!(matches!(
            key(8).open(b"ad", &sealed),
            Err(CryptoError::AuthenticationFailed)
        ));
        assert!(matches!(
            k.open(b"other", &sealed),
            Err(CryptoError::AuthenticationFailed)
        ));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(k.open(b"ad", &bad), Err(CryptoError::AuthenticationFailed)),
                "flip at {i} was accepted"
            );
        }
        assert!(matches!(
            k.open(b"ad", &sealed[..SEAL_OVERHEAD - 1]),
            Err(CryptoError::TooShort)
        ));
        assert!(matches!(
            k.open(b"ad", &sealed[..sealed.len() - 1]),
            Err(CryptoError::AuthenticationFailed)
        ));
    }

    #[test]
    fn key_id_is_stable_and_distinct() {
        // Pinned: the id is part of the on-disk formats.
        let expected = {
            let d = Sha256::digest([KEY_ID_DOMAIN, &[0u8; 32][..]].concat());
            hex::encode(&d[..8])
        };
        assert_eq!(key(0).key_id_hex(), expected);
        assert_ne!(key(0).key_id(), key(1).key_id());
        assert_ne!(&key(0).key_id()[..], &[0u8; 32][..8]);
    }

    #[test]
    fn debug_shows_only_the_key_id() {
        let text = format!("{:?}", key(0xab));
        assert!(text.contains(&key(0xab).key_id_hex()));
        assert!(!text.contains("abab"), "{text}");
        assert!(!text.contains("171, 171"), "{text}");
    }

    #[test]
    fn key_file_formats() {
        let dir = tempfile::tempdir().unwrap();
        let raw = [0x5au8; 32];
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::File::create(&path)
                .unwrap()
                .write_all(bytes)
                .unwrap();
            path
        };
        let expected = EncryptionKey::from_bytes(raw).key_id();
        let hex_text = hex::encode(raw);
        for (name, bytes) in [
            ("raw", raw.to_vec()),
            ("hex", hex_text.clone().into_bytes()),
            ("hex-nl", format!("{hex_text}\n").into_bytes()),
            ("hex-crlf", format!("{hex_text}\r\n").into_bytes()),
            (
                "hex-upper",
                format!("{}\n", hex_text.to_uppercase()).into_bytes(),
            ),
        ] {
            let k = EncryptionKey::from_file(&write(name, &bytes)).unwrap();
            assert_eq!(k.key_id(), expected, "{name}");
        }
        for (name, bytes) in [
            ("short", vec![1u8; 31]),
            ("long", vec![1u8; 33]),
            ("two-newlines", format!("{hex_text}\n\n").into_bytes()),
            ("not-hex", "z".repeat(64).into_bytes()),
            ("empty", Vec::new()),
        ] {
            let path = write(name, &bytes);
            match EncryptionKey::from_file(&path) {
                Err(CryptoError::KeyFormat { path: p, reason }) => {
                    assert_eq!(p, path);
                    assert!(!reason.contains(&hex_text), "{reason}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let missing = dir.path().join("missing");
        assert!(matches!(
            EncryptionKey::from_file(&missing),
            Err(CryptoError::KeyFile { path, .. }) if path == missing
        ));
    }
}
