//! `sha256sum`-format sidecars over bytes in memory: how every object is checked after a download.

use sha2::{Digest, Sha256};

/// SHA-256 of bytes, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A `sha256sum`-format sidecar line for `bytes` stored as `file_name`.
pub fn sidecar_text(bytes: &[u8], file_name: &str) -> String {
    format!("{}  {file_name}\n", sha256_hex(bytes))
}

/// Checks `bytes` (stored as `file_name`) against a `sha256sum` sidecar's text.
pub fn check_sidecar(bytes: &[u8], sidecar: &[u8], file_name: &str) -> Result<(), String> {
    let text = std::str::from_utf8(sidecar).map_err(|_| "sidecar is not UTF-8".to_owned())?;
    let line = text.lines().next().unwrap_or("");
    let (digest, name) = line
        .split_once("  ")
        .ok_or_else(|| format!("sidecar is not a sha256sum line: {line:?}"))?;
    if name != file_name {
        return Err(format!("sidecar names {name:?}, not {file_name:?}"));
    }
    let actual = sha256_hex(bytes);
    if digest != actual {
        return Err(format!(
            "checksum mismatch: sidecar says {digest}, the bytes hash to {actual}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_check_bytes_and_name() {
        let text = sidecar_text(b"abc", "f.wal");
        assert!(check_sidecar(b"abc", text.as_bytes(), "f.wal").is_ok());
        assert!(check_sidecar(b"abd", text.as_bytes(), "f.wal").is_err());
        assert!(check_sidecar(b"abc", text.as_bytes(), "g.wal").is_err());
    }
}
