//! Copying tables into the output through SQLite: the whole database at once, table by table,
//! damaged tables repaired in the page view SQLite reads through.

pub mod repair;
pub mod transfer;
pub mod vacuum;
pub mod vfs;
