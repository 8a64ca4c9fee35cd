//! `check`: what is wrong with a database, from a private snapshot.

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::report::Outcome;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub max_errors: u32,
    pub progress: Progress,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {}

impl Outcome for CheckReport {
    fn render_text(&self) -> String {
        String::new()
    }
    fn exit_code(&self) -> i32 {
        0
    }
}

pub fn check(_db: &Path, _opts: &CheckOptions) -> Result<CheckReport> {
    Err(Error::Usage("check: not yet available".into()))
}
