//! The integration tests: one binary, one module per area, as the tree reads.

// The tests build fixtures from known small values, and some tests are long scripts.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::too_many_lines
)]

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod harness;

mod altered;
mod causes;
mod check;
mod edges;
mod engine_healthy;
mod estimate;
mod exact;
mod faults;
mod fill;
mod fuzz_regressions;
mod honesty;
mod hostile;
mod hot_journal;
mod incidents;
mod install;
mod look_alike;
mod lost;
mod map;
mod pagefile;
mod partial_index;
mod rebuilt_interior;
mod recover_cli;
mod restore;
mod runbook;
mod samples;
mod schema_row;
mod snapshot;
mod soundness;
mod verify;
mod whole_copy;
