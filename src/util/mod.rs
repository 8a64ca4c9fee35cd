//! Helpers every layer uses, each written once: paths, quoting, working copies, the interrupt
//! flag.

pub(crate) mod interrupt;
pub(crate) mod paths;
pub(crate) mod quote;
