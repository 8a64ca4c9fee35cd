//! What the user sees: outcomes as text, JSON and an exit code, the damage map, progress.

pub mod map;
pub mod progress;
pub mod report;
