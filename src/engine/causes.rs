//! The likely cause of the damage, from the evidence the file carries, and what to change so
//! that it does not happen again. Every cause is worded as a likelihood and names the
//! evidence that points to it; none is ever stated as certain.
//!
//! The signatures come from SQLite's own list of ways a database gets corrupted: the WAL-reset
//! race fixed in SQLite 3.51.3 (spread by memory-mapped I/O), truncation, writes the storage
//! lost or misdirected, and a WAL or journal separated from its database.

use serde::Serialize;

/// The first SQLite without the WAL-reset race: 3.51.3.
const RACE_FIXED_IN: u32 = 3_051_003;

/// What the tool read that may say how the damage came about. Filled by `check` from the
/// header, the WAL and `integrity_check`, and by `recover` from the engine's walk.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The header says WAL mode (read and write versions 2).
    pub wal_mode: bool,
    /// The SQLite version number that last wrote the file (e.g. 3040001), when the header's
    /// version-valid-for number matches its change counter.
    pub last_writer: Option<u32>,
    /// The header's last-writer version, present but not vouched for by the change counter.
    pub last_writer_unconfirmed: Option<u32>,
    /// Messages showing b-tree structure damage: a page referenced twice, child pages at
    /// different depths, pages of one tree inside another.
    pub structural: Vec<String>,
    /// How the file is short: fewer pages than the header says, or a partial last page.
    pub truncated: Option<String>,
    /// Pages a b-tree points at that hold only zeros.
    pub zeroed_pages: Vec<u32>,
    /// Pages holding an older copy of rows that are elsewhere too (stale copies).
    pub stale_copies: u64,
    /// Pages referenced beyond the end of the main file.
    pub pages_past_end: Vec<u32>,
    /// Whether a `-wal` was beside the database.
    pub wal_present: bool,
    /// Whether a `-journal` was beside the database.
    pub journal_present: bool,
    /// Committed transactions the `-wal` holds past a broken checksum or a damaged header,
    /// and where its damage is.
    pub wal_commits_ignored: u64,
    pub wal_damage: Option<String>,
    /// Committed frames the `-shm` records that neither the `-wal` nor the main file holds.
    pub wal_index_frames_missing: u64,
    /// Whether the tool found any damage at all.
    pub damaged: bool,
}

/// A cause the evidence is consistent with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Cause {
    pub id: CauseId,
    pub likelihood: Likelihood,
    /// What the damage is consistent with, in words.
    pub summary: String,
    /// What in this file points there.
    pub evidence: Vec<String>,
    /// What to change so that it does not happen again.
    pub prevention: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CauseId {
    WalResetRace,
    Truncation,
    LostWrites,
    SeparatedSidecar,
    DamagedWal,
    Unrecognised,
}

/// How strongly the evidence points to a cause: never certainty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Likelihood {
    /// Several independent facts point there.
    Likely,
    /// The damage fits, but other causes would leave the same marks.
    Possible,
    /// Nothing recognised: the evidence is listed for whoever looks next.
    Unknown,
}

/// Every cause the evidence is consistent with, most telling first; empty when nothing is
/// damaged.
pub fn likely_causes(e: &Evidence) -> Vec<Cause> {
    if !e.damaged {
        return Vec::new();
    }
    let mut out: Vec<Cause> = [
        wal_reset_race(e),
        truncation(e),
        separated_sidecar(e),
        damaged_wal(e),
    ]
    .into_iter()
    .flatten()
    .collect();
    out.extend(lost_writes(e, &out));
    if out.is_empty() {
        out.push(unrecognised(e));
    }
    out
}

/// "3.40.1" from 3040001.
fn version(n: u32) -> String {
    format!("{}.{}.{}", n / 1_000_000, (n / 1000) % 1000, n % 1000)
}

fn first_few(messages: &[String]) -> Vec<String> {
    messages.iter().take(3).cloned().collect()
}

fn pages(list: &[u32]) -> String {
    let shown: Vec<String> = list.iter().take(8).map(u32::to_string).collect();
    let more = list.len().saturating_sub(8);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn wal_reset_race(e: &Evidence) -> Option<Cause> {
    if !e.wal_mode || e.structural.is_empty() {
        return None;
    }
    let (writer, likelihood) = match (e.last_writer, e.last_writer_unconfirmed) {
        (Some(v), _) if v < RACE_FIXED_IN => (v, Likelihood::Likely),
        (None, Some(v)) if v < RACE_FIXED_IN => (v, Likelihood::Possible),
        _ => return None,
    };
    let mut evidence = vec![
        "the header says WAL mode".to_string(),
        format!(
            "last written by SQLite {}{}, older than 3.51.3",
            version(writer),
            if likelihood == Likelihood::Likely {
                ""
            } else {
                " (the header does not vouch for this number)"
            }
        ),
    ];
    evidence.extend(first_few(&e.structural));
    Some(Cause {
        id: CauseId::WalResetRace,
        likelihood,
        summary: "consistent with SQLite's WAL-reset race (SQLite 3.7.0 to 3.51.2), which \
                  corrupts a WAL database when two or more connections write or checkpoint it \
                  at once; memory-mapped I/O (PRAGMA mmap_size) then spreads the torn pages"
            .to_string(),
        evidence,
        prevention: "upgrade the SQLite the application links to 3.51.3 or newer (Python: \
                     python3 -c 'import sqlite3; print(sqlite3.sqlite_version)'; Django: the \
                     same, from the app's virtualenv; the system: sqlite3 --version), and until \
                     then remove PRAGMA mmap_size wherever several processes write. A single \
                     writer (one process, one connection writing) is not affected."
            .to_string(),
    })
}

fn truncation(e: &Evidence) -> Option<Cause> {
    let how = e.truncated.as_ref()?;
    Some(Cause {
        id: CauseId::Truncation,
        likelihood: Likelihood::Likely,
        summary: "consistent with a truncated file: a copy taken while the application wrote, \
                  a disk that filled up, or a restore from an incomplete backup"
            .to_string(),
        evidence: vec![how.clone()],
        prevention: "copy a live database with sqlite3's .backup or VACUUM INTO, never cp; \
                     watch the free space of the disk the database is on"
            .to_string(),
    })
}

fn separated_sidecar(e: &Evidence) -> Option<Cause> {
    let shm_says = e.wal_index_frames_missing > 0;
    if !e.wal_mode || e.wal_present || (e.pages_past_end.is_empty() && !shm_says) {
        return None;
    }
    let mut evidence =
        vec!["the header says WAL mode and no -wal is beside the database".to_string()];
    if !e.pages_past_end.is_empty() {
        evidence.push(format!(
            "b-trees point at pages past the end of the main file ({}): their newest \
             versions were in the -wal",
            pages(&e.pages_past_end)
        ));
    }
    if shm_says {
        evidence.push(format!(
            "the -shm records {} committed frame(s) no checkpoint copied into the main file: \
             the -wal held them",
            e.wal_index_frames_missing
        ));
    }
    Some(Cause {
        id: CauseId::SeparatedSidecar,
        likelihood: Likelihood::Likely,
        summary: "consistent with a database separated from its -wal: the -wal was deleted, or \
                  the database copied without it, while it held the newest pages"
            .to_string(),
        evidence,
        prevention: "move, copy and back up the database together with its -wal and -shm, or \
                     with sqlite3's .backup; never delete a -wal by hand"
            .to_string(),
    })
}

fn damaged_wal(e: &Evidence) -> Option<Cause> {
    let cut = e.wal_present && e.wal_index_frames_missing > 0;
    if e.wal_commits_ignored == 0 && !cut {
        return None;
    }
    let mut evidence = Vec::new();
    if e.wal_commits_ignored > 0 {
        evidence.push(format!(
            "the -wal holds {} committed transaction(s) past its damage, which SQLite no \
             longer applies",
            e.wal_commits_ignored
        ));
        evidence.extend(e.wal_damage.clone());
    }
    if cut {
        evidence.push(format!(
            "the -shm records {} committed frame(s) past the last one the -wal holds: the -wal \
             was cut short or replaced after SQLite wrote it",
            e.wal_index_frames_missing
        ));
    }
    Some(Cause {
        id: CauseId::DamagedWal,
        likelihood: Likelihood::Likely,
        summary: "consistent with a -wal changed after SQLite wrote it: a copy of its file taken \
                  while the application wrote, files of two moments restored together, or \
                  storage that lost or misplaced writes"
            .to_string(),
        evidence,
        prevention: "copy or back up a live database with sqlite3's .backup or VACUUM INTO, \
                     never its files with cp while the application runs; keep the database, \
                     its -wal and -shm together on a local disk, and never edit, replace or \
                     delete a -wal by hand"
            .to_string(),
    })
}

/// Lost or misdirected writes: only where nothing above already explains the pages.
fn lost_writes(e: &Evidence, found: &[Cause]) -> Option<Cause> {
    let explained = found
        .iter()
        .any(|c| matches!(c.id, CauseId::Truncation | CauseId::SeparatedSidecar));
    if explained || (e.zeroed_pages.is_empty() && e.stale_copies == 0) {
        return None;
    }
    let mut evidence = Vec::new();
    if !e.zeroed_pages.is_empty() {
        evidence.push(format!(
            "pages a b-tree points at hold only zeros: {}",
            pages(&e.zeroed_pages)
        ));
    }
    if e.stale_copies > 0 {
        evidence.push(format!(
            "{} {} older copies of rows that are also elsewhere",
            e.stale_copies,
            if e.stale_copies == 1 {
                "page holds"
            } else {
                "pages hold"
            }
        ));
    }
    Some(Cause {
        id: CauseId::LostWrites,
        likelihood: Likelihood::Possible,
        summary: "consistent with writes the storage lost or put in the wrong place: a disk or \
                  file system that does not honour fsync, a power loss with a volatile write \
                  cache, or a network file system"
            .to_string(),
        evidence,
        prevention: "keep live databases on local disks (no NFS or SMB), use PRAGMA \
                     synchronous=FULL where durability matters, and make sure the disk's write \
                     cache is flushed on fsync"
            .to_string(),
    })
}

fn unrecognised(e: &Evidence) -> Cause {
    let mut evidence = vec![format!(
        "journal mode {}; -wal {}; -journal {}",
        if e.wal_mode { "WAL" } else { "rollback" },
        if e.wal_present { "present" } else { "absent" },
        if e.journal_present {
            "present"
        } else {
            "absent"
        }
    )];
    if let Some(v) = e.last_writer.or(e.last_writer_unconfirmed) {
        evidence.push(format!("last written by SQLite {}", version(v)));
    }
    evidence.extend(first_few(&e.structural));
    Cause {
        id: CauseId::Unrecognised,
        likelihood: Likelihood::Unknown,
        summary: "no known cause matches this damage".to_string(),
        evidence,
        prevention: "keep the incident folder: the snapshot is the evidence for whoever looks \
                     next"
            .to_string(),
    }
}

/// The evidence an engine run holds: the header, the sidecars, and what the walks met
/// (pages referenced twice or where another tree's belong, pages past the end, zeroed pages
/// a tree points at, stray copies). Reads the hole pages again from the snapshot the run read.
pub(crate) fn evidence_of(report: &crate::engine::Report) -> Evidence {
    let g = &report.geometry;
    let header = g.header.as_ref();
    let vouched = header.is_some_and(|h| h.change_counter == h.version_valid_for);
    let writer = header.map(|h| h.sqlite_version_number).filter(|n| *n != 0);
    let holes = report.walk_damage.iter();
    let structural: Vec<String> = holes
        .clone()
        .filter(|h| {
            h.reason.contains("referenced a second time")
                || h.reason.contains("not part of this tree")
                || h.reason.contains("do not belong here")
        })
        .map(|h| format!("walk: page {}: {}", h.page, h.reason))
        .collect();
    let past_end: Vec<u32> = holes
        .clone()
        .filter(|h| h.reason.contains("past the end"))
        .map(|h| h.page)
        .collect();
    let pf = crate::source::pagefile::PageFile::open(&report.source).ok();
    let mut buf = Vec::new();
    let zeroed_pages = holes
        .filter(|h| h.page != 0 && h.page <= g.file_pages)
        .map(|h| h.page)
        .filter(|&p| {
            pf.as_ref()
                .is_some_and(|pf| pf.read(p, &mut buf).is_some() && buf.iter().all(|b| *b == 0))
        })
        .collect();
    let truncated = header
        .filter(|h| h.page_count_is_valid() && h.page_count > g.file_pages)
        .map(|h| {
            format!(
                "the header says {} pages but the file holds {}",
                h.page_count, g.file_pages
            )
        });
    let lost = report.tables.iter().any(|t| t.rows_may_be_missing);
    Evidence {
        wal_mode: header.is_some_and(|h| h.write_version == 2 && h.read_version == 2),
        last_writer: writer.filter(|_| vouched),
        last_writer_unconfirmed: writer.filter(|_| !vouched),
        structural,
        truncated,
        zeroed_pages,
        stale_copies: report
            .orphans
            .iter()
            .filter(|o| o.outcome == crate::engine::GroupOutcome::Duplicate)
            .map(|o| o.pages as u64)
            .sum(),
        pages_past_end: past_end,
        wal_present: report.wal.is_some(),
        journal_present: report.journal.is_some(),
        wal_commits_ignored: report.wal.as_ref().map_or(0, |w| w.commits_ignored),
        wal_damage: report.wal.as_ref().and_then(wal_damage),
        wal_index_frames_missing: report
            .wal_index_gap
            .as_ref()
            .map_or(0, |l| l.frames_missing),
        damaged: lost
            || report.wal.as_ref().is_some_and(|w| w.commits_ignored > 0)
            || report
                .wal_index_gap
                .as_ref()
                .is_some_and(crate::source::pagefile::WalIndexGap::is_loss)
            || report.lost_and_found_rows > 0
            || report.unexplained_pages > 0
            || report.schema_damaged
            || !report.walk_damage.is_empty(),
    }
}

/// Where a `-wal`'s damage is, when it holds commits past it.
pub(crate) fn wal_damage(w: &crate::source::pagefile::WalInfo) -> Option<String> {
    (w.commits_ignored > 0).then(|| match &w.unusable {
        Some(why) => format!("its header is damaged ({why})"),
        None => format!("frame {} does not match its checksum", w.valid_frames + 1),
    })
}

/// Whether an integrity_check message shows b-tree structure damage of the kind the WAL-reset
/// race and memory-mapped I/O leave.
pub fn is_structural(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("2nd reference to page")
        || m.contains("child page depth differs")
        || m.contains("multiple uses for byte")
        || m.contains("fragmentation of")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn racy() -> Evidence {
        Evidence {
            wal_mode: true,
            last_writer: Some(3_040_001),
            structural: vec!["Tree 5 page 9: 2nd reference to page 12".into()],
            wal_present: true,
            damaged: true,
            ..Evidence::default()
        }
    }

    /// Commits past a damaged -wal name the damaged -wal, and only they do.
    #[test]
    fn commits_past_wal_damage_name_a_damaged_wal() {
        let wal = Evidence {
            wal_mode: true,
            wal_present: true,
            wal_commits_ignored: 3,
            wal_damage: Some("frame 2 does not match its checksum".into()),
            damaged: true,
            ..Evidence::default()
        };
        let causes = likely_causes(&wal);
        assert_eq!(causes[0].id, CauseId::DamagedWal);
        assert!(causes[0].evidence.iter().any(|e| e.contains("frame 2")));
        assert!(likely_causes(&racy())
            .iter()
            .all(|c| c.id != CauseId::DamagedWal));
    }

    #[test]
    fn a_healthy_file_names_no_cause() {
        assert!(likely_causes(&Evidence::default()).is_empty());
    }

    #[test]
    fn the_race_needs_wal_mode_an_old_writer_and_structural_damage() {
        let causes = likely_causes(&racy());
        assert_eq!(causes[0].id, CauseId::WalResetRace);
        assert_eq!(causes[0].likelihood, Likelihood::Likely);
        assert!(causes[0].evidence.iter().any(|e| e.contains("3.40.1")));
        let fixed = Evidence {
            last_writer: Some(RACE_FIXED_IN),
            ..racy()
        };
        assert!(likely_causes(&fixed)
            .iter()
            .all(|c| c.id != CauseId::WalResetRace));
        let rollback = Evidence {
            wal_mode: false,
            ..racy()
        };
        assert!(likely_causes(&rollback)
            .iter()
            .all(|c| c.id != CauseId::WalResetRace));
        let unvouched = Evidence {
            last_writer: None,
            last_writer_unconfirmed: Some(3_040_001),
            ..racy()
        };
        assert_eq!(
            likely_causes(&unvouched)[0].likelihood,
            Likelihood::Possible
        );
    }

    #[test]
    fn truncation_explains_zeroed_pages() {
        let e = Evidence {
            truncated: Some("header says 40 pages, the file holds 31".into()),
            zeroed_pages: vec![3],
            damaged: true,
            ..Evidence::default()
        };
        let ids: Vec<CauseId> = likely_causes(&e).iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![CauseId::Truncation]);
    }

    #[test]
    fn a_missing_wal_is_named_only_with_pages_past_the_end() {
        let e = Evidence {
            wal_mode: true,
            pages_past_end: vec![41, 42],
            damaged: true,
            ..Evidence::default()
        };
        assert_eq!(likely_causes(&e)[0].id, CauseId::SeparatedSidecar);
        let clean_close = Evidence {
            pages_past_end: Vec::new(),
            ..e.clone()
        };
        assert_eq!(likely_causes(&clean_close)[0].id, CauseId::Unrecognised);
        let with_wal = Evidence {
            wal_present: true,
            ..e
        };
        assert!(likely_causes(&with_wal)
            .iter()
            .all(|c| c.id != CauseId::SeparatedSidecar));
    }

    #[test]
    fn nothing_recognised_still_lists_the_evidence() {
        let e = Evidence {
            last_writer: Some(3_045_000),
            damaged: true,
            ..Evidence::default()
        };
        let c = &likely_causes(&e)[0];
        assert_eq!(
            (c.id, c.likelihood),
            (CauseId::Unrecognised, Likelihood::Unknown)
        );
        assert!(c.evidence.iter().any(|e| e.contains("3.45.0")));
    }

    #[test]
    fn no_cause_is_worded_as_certain() {
        let all = [
            racy(),
            Evidence {
                truncated: Some("x".into()),
                damaged: true,
                ..Evidence::default()
            },
            Evidence {
                zeroed_pages: vec![7],
                damaged: true,
                ..Evidence::default()
            },
        ];
        for e in &all {
            for c in likely_causes(e) {
                assert!(c.summary.starts_with("consistent with"), "{}", c.summary);
                assert!(!c.evidence.is_empty());
            }
        }
    }
}
