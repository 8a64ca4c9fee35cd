//! What every command hands back: a value that renders as text for a person, as JSON for a
//! script, and knows the exit code it means.

/// The result of a command.
pub trait Outcome: serde::Serialize {
    /// The text shown on a terminal (stdout).
    fn render_text(&self) -> String;
    /// The process exit code this outcome means (see `error::exit`).
    fn exit_code(&self) -> i32;
}

/// Renders rows as a left-aligned text table with a header line.
pub(crate) fn text_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            s.push_str(cell);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// "Likely cause", for the end of `check` and `recover`: each cause with its likelihood, its
/// evidence and how to prevent it; nothing when there is none.
pub(crate) fn causes_text(causes: &[crate::engine::causes::Cause]) -> String {
    use crate::engine::causes::Likelihood;
    if causes.is_empty() {
        return String::new();
    }
    let mut o = String::from("Likely cause\n");
    for c in causes {
        let likelihood = match c.likelihood {
            Likelihood::Likely => "likely",
            Likelihood::Possible => "possible",
            Likelihood::Unknown => "unknown",
        };
        o.push_str(&format!("  - ({likelihood}) {}\n", c.summary));
        for e in &c.evidence {
            o.push_str(&format!("      evidence: {e}\n"));
        }
        o.push_str(&format!("      to prevent it: {}\n", c.prevention));
    }
    o.push('\n');
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_columns_line_up() {
        let t = super::text_table(
            &["table", "rows"],
            &[
                vec!["event_log".into(), "10".into()],
                vec!["a".into(), "2".into()],
            ],
        );
        assert_eq!(t, "table      rows\nevent_log  10\na          2\n");
    }
}
