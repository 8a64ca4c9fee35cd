//! Incidents read back: `lost`, `diff` and `report` on an incident folder answer as they do on
//! the database, from its report.json, without recovering again (and once the database is
//! gone); an altered incident is refused; what `lost --csv` writes imports back value for
//! value; `incidents` lists a database's incident folders with their verdicts and restores.

use crate::common::{self, file_state, FileState, SourceGuard};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// What one run of the binary printed, and its exit code.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs `sqlite-rescue -q ARGS` in `cwd`.
fn run<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Run {
    let out = common::cmd()
        .current_dir(cwd)
        .arg("-q")
        .args(args)
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The committed `utf16` sample (a zeroed leaf of auth_user, whose UNIQUE index survives)
/// copied to `dir/db.sqlite3`.
fn utf16_copy(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = corrupt_samples::load_sample(&root.join("corrupt-samples").join("utf16")).unwrap();
    sample.copy_to(dir).unwrap()
}

/// `recover DB` run in `cwd`, where it makes its incident folder by default: the folder (the
/// last line printed) and the whole text, with the exit code it must have.
fn recover(cwd: &Path, db: &Path, code: i32) -> (PathBuf, String) {
    let r = run(cwd, &[OsStr::new("recover"), db.as_os_str()]);
    assert_eq!(r.code, Some(code), "{}{}", r.stdout, r.stderr);
    let dir = PathBuf::from(r.stdout.lines().last().unwrap());
    assert!(dir.join("report.json").is_file(), "{}", r.stdout);
    (dir, r.stdout)
}

/// Every file under `dir` with what it holds and when it was written.
fn states(dir: &Path) -> Vec<(PathBuf, FileState)> {
    let mut files: Vec<PathBuf> = common::tree(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let s = file_state(&p);
            (p, s)
        })
        .collect()
}

/// What `lost`, `diff` and `report` say of an incident, as JSON and as text.
fn read_back(cwd: &Path, incident: &Path) -> Vec<(Option<i32>, String)> {
    let inc = incident.as_os_str();
    [
        vec![OsStr::new("--json"), OsStr::new("lost"), inc],
        vec![OsStr::new("--json"), OsStr::new("diff"), inc],
        vec![OsStr::new("--json"), OsStr::new("report"), inc],
        vec![OsStr::new("lost"), inc],
        vec![OsStr::new("report"), inc],
    ]
    .iter()
    .map(|args| {
        let r = run(cwd, args);
        (r.code, r.stdout)
    })
    .collect()
}

#[test]
fn lost_diff_and_report_read_an_incident_as_the_database_answers() {
    let work = tempfile::tempdir().unwrap();
    let db = utf16_copy(&work.path().join("app"));
    let guard = SourceGuard::new(&db);
    let (incident, recover_text) = recover(work.path(), &db, 1);
    let recovered = incident.join("recovered.sqlite3");
    let before = states(&incident);

    // lost: the same tables and values, with schema_version, and the incident named.
    let on_db = run(
        work.path(),
        &[OsStr::new("--json"), OsStr::new("lost"), db.as_os_str()],
    );
    let on_incident = run(
        work.path(),
        &[
            OsStr::new("--json"),
            OsStr::new("lost"),
            incident.as_os_str(),
        ],
    );
    assert_eq!((on_db.code, on_incident.code), (Some(1), Some(1)));
    let (on_db, on_incident) = (on_db.json(), on_incident.json());
    assert_eq!(on_db["schema_version"], 2, "{on_db}");
    assert_eq!(on_incident["schema_version"], 2, "{on_incident}");
    assert_eq!(on_db["tables"], on_incident["tables"]);
    let users = on_incident["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "auth_user")
        .unwrap();
    assert_eq!(users["lost_values"]["rows"][1]["rowid"], 64, "{users}");
    assert_eq!(on_incident["incident"].as_str(), incident.to_str());
    assert!(on_db.get("incident").is_none());

    // diff: the counts of both sides, table by table.
    let on_db = run(
        work.path(),
        &[
            OsStr::new("--json"),
            OsStr::new("diff"),
            db.as_os_str(),
            recovered.as_os_str(),
        ],
    );
    let on_incident = run(
        work.path(),
        &[
            OsStr::new("--json"),
            OsStr::new("diff"),
            incident.as_os_str(),
        ],
    );
    assert_eq!((on_db.code, on_incident.code), (Some(1), Some(1)));
    let (on_db, on_incident) = (on_db.json(), on_incident.json());
    assert_eq!(on_db["tables"], on_incident["tables"]);
    assert_eq!(on_incident["missing_rows"], 2);
    assert_eq!(on_incident["recovered"].as_str(), recovered.to_str());

    // report: recover's text again, and its report.json.
    let text = run(work.path(), &[OsStr::new("report"), incident.as_os_str()]);
    assert_eq!(text.code, Some(1), "{}", text.stderr);
    assert_eq!(text.stdout, recover_text);
    let json = run(
        work.path(),
        &[
            OsStr::new("--json"),
            OsStr::new("report"),
            incident.as_os_str(),
        ],
    );
    let written: Value =
        serde_json::from_slice(&std::fs::read(incident.join("report.json")).unwrap()).unwrap();
    assert_eq!(json.json(), written);
    guard.assert_unchanged();

    // Without the database, the incident answers the same, and nothing in it was written:
    // the recovered database keeps its bytes and its mtime (nothing was recovered again).
    let answers = read_back(work.path(), &incident);
    for f in common::source_files(&db) {
        let _ = std::fs::remove_file(f);
    }
    assert_eq!(read_back(work.path(), &incident), answers);
    assert_eq!(answers[4].1, recover_text);
    assert_eq!(states(&incident), before);
    assert!(matches!(file_state(&recovered), FileState::Present { .. }));
}

/// Runs `report INCIDENT --json`: its exit code and the one line it printed on stderr (stdout
/// must stay empty when it fails).
fn refusal(cwd: &Path, incident: &Path) -> (Option<i32>, String) {
    let r = run(
        cwd,
        &[
            OsStr::new("--json"),
            OsStr::new("report"),
            incident.as_os_str(),
        ],
    );
    assert!(r.stdout.is_empty() || r.code == Some(1), "{}", r.stdout);
    (r.code, r.stderr)
}

#[test]
fn an_altered_incident_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let db = utf16_copy(&work.path().join("app"));
    let (incident, _) = recover(work.path(), &db, 1);
    let guard = SourceGuard::new(&db);
    assert_eq!(refusal(work.path(), &incident).0, Some(1));

    // A byte of the snapshot changed: every reader refuses, naming the file.
    let snap = incident.join("snapshot").join("db.sqlite3");
    let original = std::fs::read(&snap).unwrap();
    let mut altered = original.clone();
    altered[5000] ^= 0x01;
    std::fs::set_permissions(&snap, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&snap, &altered).unwrap();
    let (code, err) = refusal(work.path(), &incident);
    assert_eq!(code, Some(4), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("{} does not match its manifest", snap.display())),
        "{err}"
    );
    for command in ["lost", "diff"] {
        let r = run(work.path(), &[OsStr::new(command), incident.as_os_str()]);
        assert_eq!(r.code, Some(4), "{command}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{command}: {}", r.stdout);
    }
    std::fs::write(&snap, &original).unwrap();
    assert_eq!(refusal(work.path(), &incident).0, Some(1));

    // The report names another snapshot than the manifest's.
    let report_path = incident.join("report.json");
    let written = std::fs::read_to_string(&report_path).unwrap();
    let mut report: Value = serde_json::from_str(&written).unwrap();
    report["snapshot"]["files"][0]["sha256"] = Value::from("0".repeat(64));
    std::fs::write(&report_path, report.to_string()).unwrap();
    let (code, err) = refusal(work.path(), &incident);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("do not name the same snapshot"), "{err}");

    // A report in a newer layout: its own exit code, one line that says so.
    let mut report: Value = serde_json::from_str(&written).unwrap();
    report["schema_version"] = Value::from(3);
    std::fs::write(&report_path, report.to_string()).unwrap();
    let (code, err) = refusal(work.path(), &incident);
    assert_eq!(code, Some(6), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("schema_version 3 is newer than"), "{err}");

    // Not a report at all, or none: unusable input.
    std::fs::write(&report_path, "{\"schema_version\": 1, \"tables\": 3}").unwrap();
    assert_eq!(refusal(work.path(), &incident).0, Some(3));
    std::fs::remove_file(&report_path).unwrap();
    let (code, err) = refusal(work.path(), &incident);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("has no report.json"), "{err}");
    guard.assert_unchanged();
}

/// A database whose indexed values need quoting in a CSV (commas, quotes, line breaks,
/// non-ASCII), with REALs, NULLs and BLOBs, and a leaf of its table zeroed. Returns the
/// damaged copy and the intact original.
fn quoting_fixture(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let original = dir.join("original.sqlite3");
    let conn = rusqlite::Connection::open(&original).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024;
         CREATE TABLE contact (id INTEGER PRIMARY KEY, email TEXT UNIQUE, score REAL,
                               tag BLOB, note TEXT);
         CREATE INDEX contact_score_tag ON contact(score, tag);",
    )
    .unwrap();
    for id in 1..=400i64 {
        let email = match id % 4 {
            0 => format!("user{id}@example.com"),
            1 => format!("\"Doe, Jane\" <jane{id}@example.com>"),
            2 => format!("line one {id}\nline two, \"quoted\""),
            _ => format!("zoë{id}@exämple.org"),
        };
        let score = (id % 5 != 0).then(|| id as f64 / 7.0);
        let tag = vec![(id % 256) as u8, 0, 0xff, 0x2c];
        conn.execute(
            "INSERT INTO contact VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![id, email, score, tag, "x".repeat(60)],
        )
        .unwrap();
    }
    drop(conn);
    let damaged = dir.join("app.sqlite3");
    let mut bytes = std::fs::read(&original).unwrap();
    // The table's leaves are the pages of type 0x0D past page 1 (the schema's); the second
    // one is zeroed, under an interior page that survives.
    let leaf = (1..bytes.len() / 1024)
        .filter(|p| bytes[p * 1024] == 0x0D)
        .nth(1)
        .expect("a second table leaf");
    bytes[leaf * 1024..(leaf + 1) * 1024].fill(0);
    std::fs::write(&damaged, bytes).unwrap();
    (damaged, original)
}

/// `SELECT rowid, email, score, hex(tag)` of `contact` for the rowids in `ids`.
fn indexed_rows(db: &Path, ids: &[i64]) -> Vec<Vec<rusqlite::types::Value>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
    common::query_rows(
        &conn,
        &format!(
            "SELECT rowid, email, score, hex(tag) FROM contact WHERE rowid IN ({}) ORDER BY rowid",
            list.join(",")
        ),
    )
}

#[test]
fn lost_csv_values_import_back_as_they_were() {
    let work = tempfile::tempdir().unwrap();
    let (db, original) = quoting_fixture(&work.path().join("app"));
    let guard = SourceGuard::new(&db);
    let (incident, _) = recover(work.path(), &db, 1);
    let out = work.path().join("csv");
    let r = run(
        work.path(),
        &[
            OsStr::new("--json"),
            OsStr::new("lost"),
            incident.as_os_str(),
            OsStr::new("--csv"),
            out.as_os_str(),
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let file = out.join("contact.csv");
    assert_eq!(r.json()["csv"][0]["path"].as_str(), file.to_str());

    // Import as `sqlite3 .import` does into a new table: the header names its columns, every
    // field is text. Then put the rows back into the recovered copy from there.
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, ["rowid", "email", "score", "tag"]);
    let patched = work.path().join("patched.sqlite3");
    std::fs::copy(incident.join("recovered.sqlite3"), &patched).unwrap();
    let conn = rusqlite::Connection::open(&patched).unwrap();
    conn.execute_batch("CREATE TABLE lost_contact (rowid TEXT, email TEXT, score TEXT, tag TEXT)")
        .unwrap();
    let mut ids = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        ids.push(record[0].parse::<i64>().unwrap());
        conn.execute(
            "INSERT INTO lost_contact VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![&record[0], &record[1], &record[2], &record[3]],
        )
        .unwrap();
    }
    // The lost rows hold the values that need care: quoted line breaks, NULLs.
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        written.contains("\nline two, \"\"quoted\"\"\""),
        "{written}"
    );
    assert!(written.lines().any(|l| l.contains(",,")), "{written}");
    assert!(ids.len() > 5, "{ids:?}");
    conn.execute_batch(
        "INSERT INTO contact (rowid, email, score, tag)
         SELECT rowid, email, CAST(NULLIF(score, '') AS REAL), unhex(tag) FROM lost_contact",
    )
    .unwrap();
    drop(conn);
    assert_eq!(indexed_rows(&patched, &ids), indexed_rows(&original, &ids));

    // The database gives the same file; an existing file is never overwritten.
    let again = work.path().join("csv-from-db");
    let r = run(
        work.path(),
        &[
            OsStr::new("lost"),
            db.as_os_str(),
            OsStr::new("--csv"),
            again.as_os_str(),
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stdout.contains(".import --csv"), "{}", r.stdout);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(std::fs::read(again.join("contact.csv")).unwrap(), bytes);
    let r = run(
        work.path(),
        &[
            OsStr::new("lost"),
            incident.as_os_str(),
            OsStr::new("--csv"),
            out.as_os_str(),
        ],
    );
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    guard.assert_unchanged();
}

/// `incidents DB --json`, run in `cwd`; it must exit 0 and leave DB as it was.
fn incidents(cwd: &Path, db: &Path) -> (Value, String) {
    let guard = SourceGuard::new(db);
    let json = run(
        cwd,
        &[
            OsStr::new("--json"),
            OsStr::new("incidents"),
            db.as_os_str(),
        ],
    );
    let text = run(cwd, &[OsStr::new("incidents"), db.as_os_str()]);
    assert_eq!(
        (json.code, text.code),
        (Some(0), Some(0)),
        "{}",
        json.stderr
    );
    guard.assert_unchanged();
    (json.json(), text.stdout)
}

#[test]
fn incidents_lists_each_incident_with_its_verdict_and_restores() {
    let work = tempfile::tempdir().unwrap();
    let db = utf16_copy(&work.path().join("app"));
    let (none, text) = incidents(work.path(), &db);
    assert_eq!(none["incidents"], Value::Array(Vec::new()));
    assert!(text.starts_with("No incident folder of"), "{text}");

    // Rows lost, then restored knowing it; the restored copy recovers whole.
    let (lossy, _) = recover(work.path(), &db, 1);
    let restore = run(
        work.path(),
        &[
            OsStr::new("restore"),
            db.as_os_str(),
            OsStr::new("--from"),
            lossy.join("recovered.sqlite3").as_os_str(),
            OsStr::new("--accept-loss"),
        ],
    );
    assert_eq!(restore.code, Some(0), "{}", restore.stderr);
    let (whole, _) = recover(work.path(), &db, 0);
    // A database of the same name elsewhere: its incident lands beside these, and is not one.
    let other = utf16_copy(&work.path().join("other"));
    recover(work.path(), &other, 1);

    let (listed, text) = incidents(work.path(), &db);
    let list = listed["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{listed}");
    assert_eq!(list[0]["dir"].as_str(), whole.to_str());
    assert_eq!(list[0]["verdict"], "complete");
    assert_eq!(list[0]["restored"], false);
    assert_eq!(list[1]["dir"].as_str(), lossy.to_str());
    assert_eq!(list[1]["verdict"], "rows lost");
    assert_eq!(list[1]["missing_rows"], 2);
    assert_eq!(list[1]["restored"], true);
    assert!(list[1]["restores"][0]["undone_at"].is_null(), "{listed}");
    assert!(list[0]["taken_at"].as_str() > list[1]["taken_at"].as_str());
    assert!(text.contains("rows lost (2 missing)  yes, "), "{text}");
    assert!(text.contains(&format!(
        "{} is restored; to put the originals back: ",
        lossy.display()
    )));

    let undo = run(work.path(), &[OsStr::new("undo"), lossy.as_os_str()]);
    assert_eq!(undo.code, Some(0), "{}", undo.stderr);
    let (listed, text) = incidents(work.path(), &db);
    let list = listed["incidents"].as_array().unwrap();
    assert_eq!(list[1]["restored"], false);
    assert!(list[1]["restores"][0]["undone_at"].is_string(), "{listed}");
    assert!(text.contains("rows lost (2 missing)  undone, "), "{text}");
}

#[test]
fn lost_csv_says_so_when_no_index_holds_a_value_of_the_lost_rows() {
    // leaf-zeroed: monitor_check lost a leaf, and no index of it names its rows.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample =
        corrupt_samples::load_sample(&root.join("corrupt-samples").join("leaf-zeroed")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = sample.copy_to(&work.path().join("app")).unwrap();
    let guard = SourceGuard::new(&db);
    let out = work.path().join("csv");
    let r = run(
        work.path(),
        &[
            OsStr::new("lost"),
            db.as_os_str(),
            OsStr::new("--csv"),
            out.as_os_str(),
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "No CSV written to {}: no surviving index holds values of the lost rows.",
            out.display()
        )),
        "{}",
        r.stdout
    );
    assert!(!out.exists());
    guard.assert_unchanged();
}
