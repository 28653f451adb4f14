//! Settlement-test helpers: the kit's local Solana RPC and endpoint proxy
//! (`per_testkit::localnet`), and an authority keypair file made with `per_l1`'s types.

#![allow(dead_code)]

pub use per_testkit::localnet::{EndpointProxy, Localnet, localnet_bin, rpc};
use std::path::PathBuf;

/// A fresh authority keypair file (Solana CLI JSON: the 64 keypair bytes) and its base58 pubkey.
pub fn authority(dir: &std::path::Path) -> (PathBuf, String) {
    use per_l1::Signer;
    let keypair = per_l1::Keypair::new();
    let path = dir.join("authority.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&keypair.to_bytes().to_vec()).expect("json"),
    )
    .expect("write keypair");
    (path, keypair.pubkey().to_string())
}
