//! What the user sees: outcomes as text, JSON and an exit code, and the damage map.

pub mod map;
pub mod report;
