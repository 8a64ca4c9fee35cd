//! The snapshot and how its pages are read: the main file overlaid by committed WAL frames,
//! a hot journal rolled back.

pub mod pagefile;
pub mod snapshot;
