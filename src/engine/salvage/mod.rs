//! Rows found outside every table's tree: orphan pages.

pub(crate) mod freelist;
pub(crate) mod holes;
pub(crate) mod membership;
pub(crate) mod orphans;
pub(crate) mod rebuilt;
