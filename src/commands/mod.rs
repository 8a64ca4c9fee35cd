//! One module per subcommand: each takes the parsed arguments' meaning, runs the engine and
//! returns an outcome for [`crate::output`] to render.

pub mod check;
pub mod diff;
pub mod incidents;
pub mod lost;
pub mod recover;
pub mod report;
pub mod restore;
pub mod snapshot;
pub mod undo;
