//! Helpers every layer uses, each written once: paths, quoting, working copies, the interrupt
//! flag, progress bars, a stopwatch.

pub(crate) mod interrupt;
pub(crate) mod paths;
pub mod progress;
pub(crate) mod quote;
pub(crate) mod stopwatch;
