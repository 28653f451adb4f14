//! Point-in-time restore lives in [`per_ops::restore::point`]; this module keeps the old path
//! (`cli::restore_point`) until `cli/mod.rs` drops it.

pub use per_ops::restore::point::{Cut, Point, cut_wal, parse_time, rfc3339};
