//! The status every feature writes into and `/health`, `/readyz` and metrics read. A leaf layer:
//! these modules import nothing of the node above them (only the clock and the config's
//! defaults), so the shared context (`node::shared`) can hold them without importing the features.

pub mod attestation;
pub mod backups;
pub mod ha;
pub mod settlement;
pub mod snapshots;
pub mod writes;
