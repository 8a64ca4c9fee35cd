//! Progress bars for long steps. Shown only on a terminal, never with --quiet or --json,
//! so scripts and CI logs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Whether progress may be drawn at all for this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Never draws anything: the default for library callers and tests.
    pub(crate) const HIDDEN: Progress = Progress { enabled: false };

    /// Draws when stderr is a terminal and the user did not ask for quiet or JSON output.
    pub fn for_terminal(quiet: bool, json: bool) -> Progress {
        Progress {
            enabled: !quiet && !json && std::io::stderr().is_terminal(),
        }
    }

    /// Whether anything is drawn (stderr is a terminal, no --quiet, no --json).
    pub(crate) fn shown(self) -> bool {
        self.enabled
    }

    /// A bar counting bytes, with rate and ETA.
    pub(crate) fn bytes(self, label: &str, total: u64) -> ProgressBar {
        self.bar(
            total,
            label,
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
    }

    /// A spinner with elapsed time, for steps whose length is not known in advance
    /// (building indexes, integrity_check, counting rows).
    pub(crate) fn spinner(self, label: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(label.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }

    /// A bar counting pages, with ETA.
    pub(crate) fn pages(self, label: &str, total: u64) -> ProgressBar {
        self.bar(
            total,
            label,
            "{msg:>12} [{bar:30}] {pos}/{len} pages, eta {eta}",
        )
    }

    fn bar(self, total: u64, label: &str, template: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        bar
    }
}
