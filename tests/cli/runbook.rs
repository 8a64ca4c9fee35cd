//! docs/runbook.md, run as written: every `sh` block of its numbered steps (and of the sections
//! on the likely cause and the damage map), in order, in one shell, on a copy of a damaged
//! sample, with an app writing to the database until step 4 says to stop it. Each block's
//! outcome is checked against what the runbook says it will be.
//!
//! What only exists on a server is stood in for by shell functions: `cd /srv/myapp` goes to
//! the test's folder, `sudo` runs its command, `systemctl stop|start myapp` stops or starts
//! the app (a Python loop holding the database open and writing to it, as a web app does),
//! `curl` succeeds, and `fuser` and `lsof` name the app while it runs (the real ones need
//! root, and a /proc that shows other processes' files). `jq`, `sqlite3` and `python3` must be
//! installed (.ci/run installs them).

use crate::common::sha256_file;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The sections whose `sh` blocks run; other sections (added by other work) are left alone.
const SECTIONS: [&str; 12] = [
    "## 1. ",
    "## 2. ",
    "## 3. ",
    "## 4. ",
    "## 5. ",
    "## 6. ",
    "## 7. ",
    "## 8. ",
    "## 9. ",
    "## 10. ",
    "### Prevent the next one",
    "### Look at the damage map",
];

/// The `sh` blocks to run, in order: the intro's (before the first `## `) and those of
/// `SECTIONS`.
fn runbook_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut section_runs = true;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("## ") || line.starts_with("### ") {
            section_runs = SECTIONS.iter().any(|s| line.starts_with(s));
        }
        if line.trim_end() == "```sh" {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            if section_runs {
                blocks.push(body.join("\n"));
            }
        }
    }
    blocks
}

/// The app: holds the database open and writes a heartbeat every few milliseconds, noting
/// each write in `beat`; stops cleanly on SIGTERM.
const APP: &str = r#"
import signal, sqlite3, sys, time
db, beat = sys.argv[1], sys.argv[2]
running = True
def stop(*_):
    global running
    running = False
signal.signal(signal.SIGTERM, stop)
conn = sqlite3.connect(db, timeout=10, isolation_level=None)
n = 0
while running:
    n += 1
    try:
        conn.execute("INSERT OR REPLACE INTO kv_setting(key, value) VALUES ('app.heartbeat', ?)", (n,))
        with open(beat, "w") as f:
            f.write(str(n))
    except sqlite3.DatabaseError:
        pass
    time.sleep(0.005)
conn.close()
"#;

/// The stand-ins for the server, and the app started.
fn prelude(work: &Path, bin_dir: &Path, t: &Path) -> String {
    format!(
        r#"
WORK={work:?}; T={t:?}
export PATH={bin_dir:?}:"$PATH" TMPDIR="$T/tmp"
mkdir -p "$TMPDIR"
cd() {{ if [ "$1" = /srv/myapp ]; then builtin cd "$WORK"; else builtin cd "$@"; fi; }}
sudo() {{ "$@"; }}
curl() {{ return 0; }}
# fuser and lsof as the runbook uses them: the app's pid for the database while it runs,
# nothing once it is stopped (a sandbox's /proc may not show other processes' files).
holders() {{
    local f
    for f in "$@"; do
        [ "$f" = -v ] && continue
        [ -e "$f" ] || {{ echo "Specified filename $f does not exist."; continue; }}
        [ "$(basename "$f")" = db.sqlite3 ] && [ -s "$T/app.pid" ] && echo "$f: $(cat "$T/app.pid")"
    done
    return 0
}}
fuser() {{ holders "$@"; }}
lsof() {{ holders "$@"; }}
app_start() {{
    rm -f "$T/beat"
    python3 "$T/app.py" "$WORK/db.sqlite3" "$T/beat" & echo $! > "$T/app.pid"
    # Until its first write (at most 10 s: an app that cannot write fails the undo step).
    for _ in $(seq 500); do [ -s "$T/beat" ] && break; sleep 0.02; done
}}
app_stop() {{
    [ -s "$T/app.pid" ] || return 0
    kill -TERM "$(cat "$T/app.pid")"; wait "$(cat "$T/app.pid")"; rm -f "$T/app.pid"
}}
systemctl() {{ case "$1" in stop) app_stop ;; start) app_start ;; esac; }}
trap app_stop EXIT
app_start
"#
    )
}

/// What one block printed (stdout and stderr together) and its exit code.
struct Ran {
    block: String,
    out: String,
    rc: i32,
}

fn run_runbook(work: &Path, t: &Path) -> Vec<Ran> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docs/runbook.md")).unwrap();
    let blocks = runbook_blocks(&text);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sqlite-rescue"));
    std::fs::write(t.join("app.py"), APP).unwrap();
    let mut script = prelude(work, bin.parent().unwrap(), t);
    for (i, b) in blocks.iter().enumerate() {
        script.push_str(&format!(
            "{{\n{b}\n}} > \"$T/out.{i}\" 2>&1 < /dev/null; echo $? > \"$T/rc.{i}\"\n"
        ));
    }
    std::fs::write(t.join("runbook.sh"), &script).unwrap();
    let status = Command::new("bash")
        .arg(t.join("runbook.sh"))
        .current_dir(t)
        .status()
        .expect("bash runs");
    assert!(status.success(), "the script itself failed");
    blocks
        .into_iter()
        .enumerate()
        .map(|(i, block)| Ran {
            block,
            out: std::fs::read_to_string(t.join(format!("out.{i}"))).unwrap_or_default(),
            rc: std::fs::read_to_string(t.join(format!("rc.{i}")))
                .unwrap()
                .trim()
                .parse()
                .unwrap(),
        })
        .collect()
}

fn tools_present() -> bool {
    ["jq", "sqlite3", "python3"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn the_runbook_runs_as_written_on_a_damaged_database_with_the_app_writing() {
    assert!(
        tools_present(),
        "the runbook needs jq, sqlite3 and python3 (apt-get install jq sqlite3 python3)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (work, t) = (dir.path().join("srv-myapp"), dir.path().join("t"));
    std::fs::create_dir_all(&t).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A zeroed interior page: damaged, and every row comes back in place.
    let sample = corrupt_samples::load_sample(&root.join("corrupt-samples/interior-zeroed"))
        .unwrap()
        .copy_to(&work.join("sample"))
        .unwrap();
    let db = work.join("db.sqlite3");
    std::fs::rename(&sample, &db).unwrap();
    let ran = run_runbook(&work, &t);
    let expected = expectations();
    assert_eq!(
        ran.len(),
        expected.len(),
        "the runbook's sh blocks changed: update the expectations\n{:#?}",
        ran.iter().map(|r| &r.block).collect::<Vec<_>>()
    );
    for (i, (r, (names, check))) in ran.iter().zip(&expected).enumerate() {
        assert!(
            r.block.contains(names),
            "block {i} should run `{names}`:\n{}",
            r.block
        );
        let why = format!(
            "block {i}:\n{}\n--- printed (exit {}):\n{}",
            r.block, r.rc, r.out
        );
        check(r, &work, &why);
        assert!(
            !has_placeholder_db(&r.out),
            "a hint printed a literal DB: {why}"
        );
    }
    // After the forced undo the database is, byte for byte, what the incident snapshotted.
    let incident = std::fs::read_to_string(work.join("recover.txt")).unwrap();
    let incident = PathBuf::from(incident.lines().last().unwrap());
    assert_eq!(
        sha256_file(&db),
        sha256_file(&incident.join("snapshot/db.sqlite3"))
    );
}

/// Whether `out` shows `DB` as a word (a hint that should have named the database).
fn has_placeholder_db(out: &str) -> bool {
    out.split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '$')
        .any(|w| w == "DB")
}

type Check = fn(&Ran, &Path, &str);

/// For each block in order: a command it runs, and what the runbook says will happen.
fn expectations() -> Vec<(&'static str, Check)> {
    vec![
        ("DB=db.sqlite3", |r, _, why| assert_eq!(r.rc, 0, "{why}")),
        // 2. check while the app writes: damaged.
        ("sqlite-rescue check \"$DB\"", |r, _, why| {
            assert!(r.out.contains("exit 1"), "{why}");
            assert!(r.out.contains("A recovery should take about"), "{why}");
        }),
        // 3. the rehearsal while the app writes, allowed to take a changing copy.
        ("--dry-run --allow-changing", |r, _, why| {
            assert!(
                r.out.contains("exit 0") || r.out.contains("exit 1"),
                "{why}"
            );
            assert!(
                r.out.contains("The recovery itself should take about"),
                "{why}"
            );
            assert!(r.out.contains("Dry run: nothing was written"), "{why}");
        }),
        // 4. the app stopped: nothing has the database open.
        ("systemctl stop myapp", |r, _, why| {
            assert_eq!(r.out.trim(), "", "{why}");
        }),
        // 5. recover: every row back, the incident folder found from the last line.
        ("INCIDENT=$(tail -n 1 recover.txt)", |r, _, why| {
            assert!(r.out.starts_with("exit 0"), "{why}");
            for f in ["recovered.sqlite3", "report.json", "snapshot"] {
                assert!(r.out.contains(f), "{why}");
            }
            assert_eq!(r.rc, 0, "{why}");
        }),
        // 6. the report.
        ("jq '{outcome, missing_rows", |r, _, why| {
            assert!(r.out.contains(r#""outcome": "complete""#), "{why}");
            assert!(r.out.contains(r#""integrity_ok": true"#), "{why}");
            assert_eq!(r.rc, 0, "{why}");
        }),
        ("SELECT count(*) FROM auth_user", |r, _, why| {
            assert!(r.out.trim().parse::<u64>().is_ok_and(|n| n > 0), "{why}");
        }),
        // 7. restore: first the dry run, then for real.
        ("--dry-run", |r, work, why| {
            assert_eq!(r.rc, 0, "{why}");
            assert!(!work.join("db.sqlite3.pre-restore").exists(), "{why}");
        }),
        ("sqlite-rescue restore \"$DB\" --from", |r, _, why| {
            assert!(r.out.contains("exit 0"), "{why}");
        }),
        ("jq -r .undo_command", |r, _, why| {
            assert!(r.out.contains("sqlite-rescue undo"), "{why}");
            assert_eq!(r.rc, 0, "{why}");
        }),
        // 8. lost_and_found: nothing went there, and the commands say so.
        ("lost_and_found_rows, conflict_rows", |r, _, why| {
            assert!(r.out.contains(r#""lost_and_found_rows": 0"#), "{why}");
            assert!(r.out.contains("event_log"), "the snapshot's schema: {why}");
            assert_eq!(r.rc, 0, "{why}");
        }),
        // 9. healthy, nothing stale beside it, the app started again.
        ("systemctl start myapp", |r, _, why| {
            assert!(r.out.contains("exit 0"), "{why}");
            assert!(r.out.contains("Verdict: healthy"), "{why}");
            assert!(r.out.lines().any(|l| l.trim() == "db.sqlite3"), "{why}");
            assert!(!r.out.contains("db.sqlite3-"), "no stale sidecar: {why}");
            assert_eq!(r.rc, 0, "{why}");
        }),
        // 10. undo: the app wrote to the restored database, so undo refuses...
        ("sqlite-rescue undo \"$INCIDENT\"\n", |r, _, why| {
            assert!(r.out.contains("exit 4"), "{why}");
        }),
        // ... until told the app's writes can go.
        ("sqlite-rescue undo \"$INCIDENT\" --force", |r, _, why| {
            assert!(r.out.contains("exit 0"), "{why}");
        }),
        ("jq '.causes[]", |r, _, why| assert_eq!(r.rc, 0, "{why}")),
        // The damage map of the original, damaged again after the undo.
        ("--map damage.svg", |r, work, why| {
            assert!(
                r.out.contains("exit 0") || r.out.contains("exit 1"),
                "{why}"
            );
            let svg = std::fs::read_to_string(work.join("damage.svg")).unwrap();
            assert!(svg.contains(r#"data-status="lost""#), "{why}");
        }),
    ]
}

/// Step 6b as written, on `backup-behind` (three leaves lost, a backup four commits older
/// with a column added since): the backup's path stands in for `/backups/app-nightly.db`.
#[test]
fn filling_from_a_backup_runs_as_written() {
    assert!(tools_present(), "the runbook needs jq, sqlite3 and python3");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docs/runbook.md")).unwrap();
    let blocks = section_blocks(&text, "## 6b. ");
    assert_eq!(blocks.len(), 2, "{blocks:#?}");
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("srv-myapp");
    let sample = root.join("corrupt-samples/backup-behind");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(sample.join("db.sqlite3"), work.join("db.sqlite3")).unwrap();
    let backup = dir.path().join("app-nightly.db");
    std::fs::copy(sample.join("backup.sqlite3"), &backup).unwrap();
    let before = (sha256_file(&work.join("db.sqlite3")), sha256_file(&backup));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sqlite-rescue"));
    let script = format!(
        "set -u\nexport PATH={:?}:\"$PATH\"\ncd {:?}\nDB=db.sqlite3\n{}\necho '--- block'\n{}\n",
        bin.parent().unwrap(),
        work,
        blocks[0].replace("/backups/app-nightly.db", &backup.display().to_string()),
        blocks[1]
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let (first, second) = text.split_once("--- block").unwrap();
    // Rows are still lost (the backup cannot bring back what was created since): exit 1.
    assert_eq!(first.matches("exit 1").count(), 2, "{text}");
    assert!(first.contains("filled from"), "{text}");
    let incident = std::fs::read_to_string(work.join("recover.txt")).unwrap();
    let incident = PathBuf::from(incident.lines().last().unwrap());
    assert!(incident.join("report.json").exists(), "{text}");
    // rescue_filled lists the rows, the report the backup and the column added since.
    assert!(second.contains("schema_differences"), "{text}");
    assert!(second.contains(&format!("{}", backup.display())), "{text}");
    assert!(out.status.success(), "{text}");
    assert_eq!(
        (sha256_file(&work.join("db.sqlite3")), sha256_file(&backup)),
        before,
        "the database and its backup are only read"
    );
}

/// The `sh` blocks of the section whose heading starts with `heading`.
fn section_blocks(text: &str, heading: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut inside = false;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("## ") || line.starts_with("### ") {
            inside = line.starts_with(heading);
        }
        if inside && line.trim_end() == "```sh" {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            blocks.push(body.join("\n"));
        }
    }
    blocks
}
