//! What a check read that may say how the damage came about, gathered for
//! [`crate::engine::causes`].

use super::{Finding, FindingKind, IntegrityFacts};
use crate::engine::causes::{is_structural, Evidence};
use crate::source::pagefile::PageFile;

/// The evidence of one check: the header and sidecars from the snapshot's page file, the
/// structure messages and the pages they name from integrity_check.
pub(super) fn gather(
    pf: &PageFile,
    sidecars: (bool, bool),
    integrity: &IntegrityFacts,
    findings: &[Finding],
) -> Evidence {
    let header = pf.geometry().header.as_ref();
    let vouched = header.is_some_and(|h| h.change_counter == h.version_valid_for);
    let writer = header.map(|h| h.sqlite_version_number).filter(|n| *n != 0);
    let named = named_pages(&integrity.messages);
    let file_pages = pf.geometry().file_pages;
    let mut buf = Vec::new();
    let zeroed_pages = named
        .iter()
        .copied()
        .filter(|&p| p <= file_pages)
        .filter(|&p| pf.read(p, &mut buf).is_some() && buf.iter().all(|b| *b == 0))
        .collect();
    Evidence {
        wal_mode: header.is_some_and(|h| h.write_version == 2 && h.read_version == 2),
        last_writer: writer.filter(|_| vouched),
        last_writer_unconfirmed: writer.filter(|_| !vouched),
        structural: integrity
            .messages
            .iter()
            .filter(|m| is_structural(m))
            .map(|m| format!("integrity_check: {m}"))
            .collect(),
        truncated: findings
            .iter()
            .find(|f| f.kind == FindingKind::TruncatedFile)
            .map(|f| f.summary.clone()),
        zeroed_pages,
        stale_copies: 0,
        pages_past_end: named.into_iter().filter(|&p| p > file_pages).collect(),
        wal_present: sidecars.0,
        journal_present: sidecars.1,
        wal_commits_ignored: pf.wal().map_or(0, |w| w.commits_ignored),
        wal_damage: pf.wal().and_then(crate::engine::causes::wal_damage),
        wal_index_frames_missing: pf.wal_index_gap().map_or(0, |l| l.frames_missing),
        damaged: findings.iter().any(|f| f.damage),
    }
}

/// The page numbers integrity_check's messages name ("page 12", "invalid page number 40"),
/// each once, in order.
fn named_pages(messages: &[String]) -> Vec<u32> {
    let mut out = std::collections::BTreeSet::new();
    for m in messages {
        let lower = m.to_ascii_lowercase();
        for (i, _) in lower.match_indices("page ") {
            let rest = &lower[i + 5..];
            let rest = rest.strip_prefix("number ").unwrap_or(rest);
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<u32>() {
                if n > 0 {
                    out.insert(n);
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_from_every_message_kind() {
        let messages = vec![
            "Tree 5 page 9 cell 0: 2nd reference to page 12".to_string(),
            "invalid page number 40".to_string(),
            "Page 7: never used".to_string(),
        ];
        assert_eq!(named_pages(&messages), vec![7, 9, 12, 40]);
    }
}
