//! The `recover` command: snapshot, recover, verify, diff, report.

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report::Outcome;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct RecoverCommand {
    pub db: PathBuf,
    pub out: Option<PathBuf>,
    pub incident_dir: Option<PathBuf>,
    pub dry_run: bool,
    pub allow_changing: bool,
    pub include_freelist: bool,
    pub progress: Progress,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IncidentReport {}

impl Outcome for IncidentReport {
    fn render_text(&self) -> String {
        String::new()
    }
    fn exit_code(&self) -> i32 {
        0
    }
}

pub fn run(_cmd: &RecoverCommand) -> Result<IncidentReport> {
    Err(Error::Usage("recover: not yet available".into()))
}
