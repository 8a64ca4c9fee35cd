//! `sqlite-rescue snapshot DB --into DIR`: byte-exact copies with their SHA-256s, and the
//! manifest as the user reads it.

use crate::output::report::{text_table, Outcome};
use crate::source::snapshot::Manifest;

impl Outcome for Manifest {
    fn render_text(&self) -> String {
        let mut out = format!(
            "Snapshot of {}\n        into {}\n\n",
            self.source.display(),
            self.dir.display()
        );
        let rows: Vec<Vec<String>> = self
            .files
            .iter()
            .map(|f| {
                vec![
                    f.name.clone(),
                    f.role.clone(),
                    f.size.to_string(),
                    f.sha256.clone(),
                    f.mtime.clone(),
                ]
            })
            .collect();
        out.push_str(&text_table(
            &["file", "role", "bytes", "sha256", "mtime"],
            &rows,
        ));
        out.push('\n');
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out.push_str(&format!("manifest: {}\n", self.manifest_path().display()));
        out.push_str(&format!(
            "taken at {} on {} by sqlite-rescue {} (SQLite {})\n",
            self.taken_at, self.host, self.tool_version, self.sqlite_version
        ));
        out
    }

    fn exit_code(&self) -> i32 {
        crate::error::exit::OK
    }
}
