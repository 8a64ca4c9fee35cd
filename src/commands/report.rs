//! `sqlite-rescue report INCIDENT`: the recovery report of an incident folder, printed again
//! from its `report.json` (nothing is recovered again), and the one reader of an incident
//! folder that `lost`, `diff` and `incidents` share.
//!
//! An incident is trusted only once it is proved whole: every file of its snapshot has the
//! size and SHA-256 its manifest recorded, and the report names that same snapshot. A report
//! written in a newer layout (a higher `schema_version`) is refused rather than misread.

use crate::commands::recover::{IncidentReport, REPORT_SCHEMA_VERSION};
use crate::error::{Error, Result};
use crate::format::header::{Header, HEADER_SIZE};
use crate::source::snapshot::{Manifest, MANIFEST_NAME};
use crate::util::paths::resolved;
use crate::util::progress::Progress;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The report's name in an incident folder.
pub(crate) const REPORT_NAME: &str = "report.json";
/// The snapshot's folder in an incident folder.
const SNAPSHOT_DIR: &str = "snapshot";

/// An incident folder, read back and checked.
#[derive(Debug, Clone)]
pub struct Incident {
    /// The folder (links resolved).
    pub dir: PathBuf,
    /// Its report, with the folder's own paths where the folder was moved since.
    pub report: IncidentReport,
}

/// Whether `path` is an incident folder (what `recover` writes: `snapshot/manifest.json`,
/// and `report.json` once the recovery finished) rather than a database.
pub fn is_incident(path: &Path) -> bool {
    path.is_dir()
        && (path.join(REPORT_NAME).is_file()
            || path.join(SNAPSHOT_DIR).join(MANIFEST_NAME).is_file())
}

/// `sqlite-rescue report INCIDENT`: the incident's report, checked, as recover printed it.
pub fn report(dir: &Path, progress: Progress) -> Result<IncidentReport> {
    Ok(open(dir, progress)?.report)
}

/// Reads the incident in `dir` once its snapshot is proved to be the one its manifest and its
/// report name, byte for byte.
pub fn open(dir: &Path, progress: Progress) -> Result<Incident> {
    if !dir.exists() {
        return Err(Error::unusable(dir, "no such incident folder"));
    }
    if !is_incident(dir) {
        return Err(Error::unusable(
            dir,
            "not an incident folder (recover writes one, with snapshot/manifest.json and \
             report.json in it)",
        ));
    }
    let dir = resolved(dir);
    let manifest = read_manifest(&dir)?;
    let mut report = read_report(&dir)?;
    same_snapshot(&dir, &manifest, &report)?;
    verify_snapshot(&dir, &manifest, progress)?;
    report.engine.geometry.header = read_header(&snapshot_db(&dir, &manifest));
    Ok(Incident {
        report: rebased(report, &dir),
        dir,
    })
}

/// The snapshot's manifest, as `snapshot` wrote it.
pub(crate) fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(SNAPSHOT_DIR).join(MANIFEST_NAME);
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::unusable(
            dir,
            "has no snapshot/manifest.json: not an incident folder recover wrote, or its \
             snapshot was removed",
        ),
        _ => Error::io(&path, e),
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::unusable(&path, format!("not a snapshot manifest ({e})")))
}

/// The report, when its layout is one this tool reads: its `schema_version` is checked first,
/// so a newer report is refused by its version rather than by whatever field it changed.
/// The snapshot is not checked here (see [`open`]).
pub(crate) fn read_report(dir: &Path) -> Result<IncidentReport> {
    /// What every version of the report keeps: enough to say which one it is.
    #[derive(serde::Deserialize)]
    struct Version {
        schema_version: Option<u64>,
        tool_version: Option<String>,
    }
    let path = dir.join(REPORT_NAME);
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::unusable(
            dir,
            "has no report.json: the recovery did not finish (an interrupted recover keeps \
             only its snapshot); run recover again",
        ),
        _ => Error::io(&path, e),
    })?;
    let version: Version = serde_json::from_slice(&bytes)
        .map_err(|e| Error::unusable(&path, format!("not a recovery report ({e})")))?;
    let found = version.schema_version.ok_or_else(|| {
        Error::unusable(
            &path,
            "has no schema_version: not a report sqlite-rescue wrote",
        )
    })?;
    if found > u64::from(REPORT_SCHEMA_VERSION) {
        return Err(Error::TooNew {
            path,
            found,
            supported: REPORT_SCHEMA_VERSION,
            tool: crate::VERSION,
            writer: version
                .tool_version
                .map_or_else(|| "unknown version".to_string(), |v| format!("version {v}")),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::unusable(
            &path,
            format!("does not read as a report of schema_version {found} ({e}): it was altered"),
        )
    })
}

/// The report must name the snapshot the folder holds: the same files, taken at the same time.
fn same_snapshot(dir: &Path, manifest: &Manifest, report: &IncidentReport) -> Result<()> {
    let named = &report.snapshot;
    let difference = if named.taken_at != manifest.taken_at {
        format!(
            "a snapshot taken at {} in one, at {} in the other",
            named.taken_at, manifest.taken_at
        )
    } else if let Some((a, b)) = named
        .files
        .iter()
        .zip(&manifest.files)
        .find(|(a, b)| a != b)
    {
        format!(
            "{}: {} bytes, SHA-256 {} in one, {} bytes, SHA-256 {} in the other",
            b.name, a.size, a.sha256, b.size, b.sha256
        )
    } else if named.files.len() != manifest.files.len() {
        format!(
            "{} snapshot files in one, {} in the other",
            named.files.len(),
            manifest.files.len()
        )
    } else {
        return Ok(());
    };
    Err(Error::Refused(format!(
        "{} and {} do not name the same snapshot ({difference}): one of them was altered or \
         replaced, so this incident cannot be trusted; run recover again on the database",
        dir.join(REPORT_NAME).display(),
        dir.join(SNAPSHOT_DIR).join(MANIFEST_NAME).display(),
    )))
}

/// Every file of the snapshot has the size and SHA-256 the manifest recorded.
fn verify_snapshot(dir: &Path, manifest: &Manifest, progress: Progress) -> Result<()> {
    let total = manifest.files.iter().map(|f| f.size).sum();
    let bar = progress.bytes("checking the snapshot", total);
    let checked = verify_files(dir, manifest, &bar);
    bar.finish_and_clear();
    checked
}

/// [`verify_snapshot`], counting the bytes hashed on `bar`.
fn verify_files(dir: &Path, manifest: &Manifest, bar: &indicatif::ProgressBar) -> Result<()> {
    let untrusted = |what: String| {
        Error::Refused(format!(
            "{what}: the snapshot was altered since recover took it, so nothing read from \
             incident {} can be trusted; run recover again on the database",
            dir.display()
        ))
    };
    for f in &manifest.files {
        // The manifest names files inside the snapshot folder, never a path elsewhere.
        if Path::new(&f.name).file_name() != Some(std::ffi::OsStr::new(&f.name)) {
            return Err(untrusted(format!(
                "the manifest names {:?}, which is not a file of the snapshot",
                f.name
            )));
        }
        let path = dir.join(SNAPSHOT_DIR).join(&f.name);
        if !path.is_file() {
            return Err(untrusted(format!("{} is missing", path.display())));
        }
        let (size, sha256) = crate::commands::restore::swap::hash_file(&path, Some(bar))?;
        if size != f.size || sha256 != f.sha256 {
            return Err(untrusted(format!(
                "{} does not match its manifest ({} bytes, SHA-256 {} recorded; {size} bytes, \
                 SHA-256 {sha256} now)",
                path.display(),
                f.size,
                f.sha256
            )));
        }
    }
    Ok(())
}

/// The snapshot's copy of the database.
fn snapshot_db(dir: &Path, manifest: &Manifest) -> PathBuf {
    let name = manifest.file("db").map_or("db", |f| f.name.as_str());
    dir.join(SNAPSHOT_DIR).join(name)
}

/// The header of the snapshot's database, when its magic string is intact: the engine's
/// report leaves it out of the JSON, and the text reads the journal mode from it.
fn read_header(db: &Path) -> Option<Header> {
    let mut head = Vec::with_capacity(HEADER_SIZE);
    std::fs::File::open(db)
        .ok()?
        .take(HEADER_SIZE as u64)
        .read_to_end(&mut head)
        .ok()?;
    Header::parse(&head).ok()
}

/// The report with the paths inside the incident folder moved to where the folder is now,
/// when it was moved since recover wrote it (the copy is still the file it names, by name).
fn rebased(mut report: IncidentReport, dir: &Path) -> IncidentReport {
    let Some(old) = report.incident_dir.clone() else {
        return report;
    };
    if resolved(&old) == dir {
        return report;
    }
    report.recovered = report.recovered.map(|p| match p.strip_prefix(&old) {
        Ok(inside) => dir.join(inside),
        Err(_) => p,
    });
    report.report_file = Some(dir.join(REPORT_NAME));
    report.incident_dir = Some(dir.to_path_buf());
    report
}
