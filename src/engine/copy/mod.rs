//! Copying tables into the output through SQLite: the whole database at once, table by table,
//! damaged tables repaired in the page view SQLite reads through.

pub(crate) mod repair;
pub(crate) mod tables;
pub(crate) mod transfer;
pub(crate) mod vacuum;
pub(crate) mod vfs;
