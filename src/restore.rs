//! `restore`: put a recovered database in place, keeping the originals.

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report::Outcome;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub backup_dir: Option<PathBuf>,
    pub force: bool,
    pub progress: Progress,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {}

impl Outcome for RestoreReport {
    fn render_text(&self) -> String {
        String::new()
    }
    fn exit_code(&self) -> i32 {
        0
    }
}

pub fn restore(_db: &Path, _from: &Path, _opts: &RestoreOptions) -> Result<RestoreReport> {
    Err(Error::Usage("restore: not yet available".into()))
}
