//! How `restore` and `restore --dry-run` read on a terminal.

use super::{RestorePlan, RestoreReport};
use crate::output::report::Outcome;

impl Outcome for RestoreReport {
    fn render_text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "Restored {} from {}\n  {} bytes, sha256 {}, mode {}, owner {}:{}\n",
            self.db.display(),
            self.restored.from.display(),
            self.restored.size,
            self.restored.sha256,
            self.restored.mode,
            self.restored.uid,
            self.restored.gid,
        ));
        s.push_str(&format!(
            "  integrity_check of the restored file: {}\n",
            if self.integrity_ok {
                "ok".to_string()
            } else {
                format!(
                    "FAILED (restored anyway, --force): {}",
                    self.integrity_check.join("; ")
                )
            }
        ));
        s.push_str(&format!(
            "\nOriginals moved to {}\n",
            self.backup_dir.display()
        ));
        let rows: Vec<Vec<String>> = self
            .moved
            .iter()
            .map(|m| {
                vec![
                    m.role.clone(),
                    m.original_path.display().to_string(),
                    m.backup_path.display().to_string(),
                    m.size.to_string(),
                    m.sha256.clone(),
                ]
            })
            .collect();
        let table =
            crate::output::report::text_table(&["role", "from", "to", "bytes", "sha256"], &rows);
        for line in table.lines() {
            s.push_str("  ");
            s.push_str(line);
            s.push('\n');
        }
        s.push_str(&format!("  manifest: {}\n", self.manifest.display()));
        if !self.locks_held.is_empty() {
            s.push_str("\nLocks held by other processes when restoring (--force):\n");
            for lock in &self.locks_held {
                s.push_str(&format!("  {lock}\n"));
            }
        }
        for w in &self.warnings {
            s.push_str(&format!("\nwarning: {w}\n"));
        }
        if !self.accepted_loss.is_empty() {
            s.push_str("\nPut in place knowing these rows are gone (--accept-loss):\n");
            for short in &self.accepted_loss {
                s.push_str(&format!("  {short}\n"));
            }
        }
        s.push_str(
            "\nTo undo (puts the originals back byte for byte; what is in place then is kept \
             in the backup folder):\n  ",
        );
        s.push_str(&self.undo_command);
        s.push('\n');
        s
    }

    fn exit_code(&self) -> i32 {
        crate::error::exit::OK
    }
}

impl Outcome for RestorePlan {
    fn render_text(&self) -> String {
        let mut s = format!(
            "Dry run: nothing was changed. restore {} --from {} would, in this order:\n",
            self.db.display(),
            self.from.display()
        );
        for (n, step) in self.steps.iter().enumerate() {
            let what = match (&step.from, step.action.as_str()) {
                (Some(from), "copy") => format!(
                    "copy   {} ({} bytes) to {}, fsync it, give it the database's mode and owner",
                    from.display(),
                    step.size.unwrap_or(0),
                    step.to.display()
                ),
                (Some(from), "move") => format!(
                    "move   {} ({} bytes) to {}{}",
                    from.display(),
                    step.size.unwrap_or(0),
                    step.to.display(),
                    match step.method {
                        Some(super::MoveMethod::Copy) =>
                            " (another filesystem: copy, fsync, verify, remove)",
                        _ => " (rename)",
                    }
                ),
                (Some(from), _) => format!(
                    "rename {} to {}, fsync the folder",
                    from.display(),
                    step.to.display()
                ),
                (None, _) => format!(
                    "write  {} (the originals' sizes and SHA-256s)",
                    step.to.display()
                ),
            };
            s.push_str(&format!("  {}. {what}\n", n + 1));
        }
        if let Some(i) = &self.incident {
            s.push_str(&format!(
                "\nChecked against incident {}: the same database, unchanged since its snapshot\n",
                i.display()
            ));
        }
        s.push_str(&format!(
            "integrity_check of {}: {}\n",
            self.from.display(),
            if self.integrity_ok {
                "ok".to_string()
            } else {
                format!("FAILED (--force): {}", self.integrity_check.join("; "))
            }
        ));
        for short in &self.accepted_loss {
            s.push_str(&format!("rows it lacks (--accept-loss): {short}\n"));
        }
        for lock in &self.locks_held {
            s.push_str(&format!("lock held (--force): {lock}\n"));
        }
        for w in &self.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        s.push_str("To do it, run the same command without --dry-run.\n");
        s
    }

    fn exit_code(&self) -> i32 {
        crate::error::exit::OK
    }
}
