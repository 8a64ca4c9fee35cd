//! Faults and interruptions, through the real binary: a full disk while the recovered
//! database is written, SIGINT/SIGTERM in the middle of `recover` and `restore`, symlinks
//! planted where the tool writes, and paths with spaces and non-ASCII names. Every test
//! proves the source was not touched. (A read error in the middle of `snapshot` is tested at
//! the library level, in `src/source/snapshot.rs`: no test can make a real disk fail on demand.)

use crate::common;

use common::{sha256_file, tree, SourceGuard};
use rusqlite::Connection;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Past this, a child that has not exited counts as hung.
const HANG: Duration = Duration::from_secs(60);

fn bin() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("sqlite-rescue"))
}

fn side(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Fills `table` with `rows` rows, in one transaction.
fn fill(conn: &Connection, table: &str, first: i64, rows: i64) {
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut ins = conn
            .prepare(&format!(
                "INSERT INTO {table}(id, name, v) VALUES (?1, ?2, ?3)"
            ))
            .unwrap();
        for i in first..first + rows {
            ins.execute(rusqlite::params![
                i,
                format!("name-{:07}-{}", (i * 7919) % 1_000_003, i % 97),
                i as f64 * 0.5
            ])
            .unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
}

fn create_table(conn: &Connection) {
    conn.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, v REAL);
         CREATE INDEX t_name ON t(name);
         CREATE TABLE u(id INTEGER PRIMARY KEY, name TEXT NOT NULL, v REAL);",
    )
    .unwrap();
}

/// A rollback-journal database big enough that recovering it takes a second or more in a
/// debug build (200 000 rows and an index, about 13 MB). Built once, in Cargo's scratch
/// folder for integration tests, and copied by each test that needs it.
fn big_db() -> &'static Path {
    static BIG: OnceLock<PathBuf> = OnceLock::new();
    BIG.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults-big-v2.db");
        if !path.exists() {
            let tmp = path.with_extension(format!("building-{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            let conn = Connection::open(&tmp).unwrap();
            create_table(&conn);
            fill(&conn, "t", 1, 200_000);
            drop(conn);
            std::fs::rename(&tmp, &path).unwrap();
        }
        path
    })
}

fn copy_big(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join(name);
    std::fs::copy(big_db(), &db).unwrap();
    db
}

/// A WAL-mode database whose main file holds `rows` rows of `t` (with its index) and whose
/// `-wal` holds as many rows of `u`, committed but never checkpointed: the recovered
/// database holds both, so it is much bigger than either file the snapshot copies.
fn wal_db(dir: &Path, rows: i64) -> PathBuf {
    let build = dir.join("build");
    std::fs::create_dir_all(&build).unwrap();
    let tmp_db = build.join("app.db");
    let conn = Connection::open(&tmp_db).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch("PRAGMA wal_autocheckpoint=0;").unwrap();
    create_table(&conn);
    fill(&conn, "t", 1, rows);
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    fill(&conn, "u", 1, rows);
    let db = dir.join("app.db");
    // Copied while the connection is open, so the -wal is not checkpointed away on close.
    for suffix in ["", "-wal", "-shm"] {
        std::fs::copy(side(&tmp_db, suffix), side(&db, suffix)).unwrap();
    }
    drop(conn);
    std::fs::remove_dir_all(&build).unwrap();
    db
}

/// Waits for `child`, killing it (and failing the test) if it takes longer than [`HANG`].
fn wait_or_hang(child: &mut Child, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {HANG:?}: hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn send(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) takes plain integers; the pid is our own child, not yet reaped (we
    // have not waited on it), so it cannot have been reused by another process.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// Files whose names say they are ours and unfinished.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    tree(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.contains(".partial") || name.ends_with(".tmp") || name.contains(".restore-")
        })
        .collect()
}

/// The one-line error on stderr: present, ours, no panic.
fn assert_clean_error(stderr: &str) {
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("sqlite-rescue: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected, got: {stderr}");
}

// ---------------------------------------------------------------------------------------
// Disk full
// ---------------------------------------------------------------------------------------

/// Runs `cmd` with every file it writes limited to `limit` bytes: a write past the limit
/// fails with EFBIG, as on a full disk, instead of killing the process with SIGXFSZ.
fn with_file_size_limit(cmd: &mut Command, limit: u64) -> &mut Command {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe functions may be called: setrlimit and signal are, and it touches
    // no memory of the parent's except the copied `limit`. SIG_IGN survives exec.
    unsafe {
        cmd.pre_exec(move || {
            let rl = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &raw const rl) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// The limit: every file the snapshot copies fits, the recovered database does not.
fn limit_for(db: &Path) -> u64 {
    let biggest = ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(side(db, s)).ok())
        .map(|m| m.len())
        .max()
        .unwrap();
    biggest + 64 * 1024
}

#[test]
fn disk_full_while_writing_the_recovered_database() {
    let root = tempfile::tempdir().unwrap();
    let db = wal_db(&root.path().join("src"), 16_000);
    let guard = SourceGuard::new(&db);
    let limit = limit_for(&db);

    // Without the limit the recovered database is bigger than the limit, so the test below
    // really fills the "disk" while writing it.
    let check = root.path().join("check");
    let out = bin()
        .args(["recover", "-q", "--incident-dir"])
        .arg(&check)
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let full_size = std::fs::metadata(check.join("recovered.sqlite3"))
        .unwrap()
        .len();
    assert!(
        full_size > limit + 128 * 1024,
        "recovered {full_size} bytes, limit {limit}: the fixture does not fill the limit"
    );

    // Into the incident folder, and with --out into a folder of its own.
    let incident = root.path().join("incident");
    let out_dir = root.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out_file = out_dir.join("recovered.sqlite3");
    let runs: [(&str, Option<&Path>); 2] = [("incident", None), ("--out", Some(&out_file))];
    for (n, (label, out_path)) in runs.into_iter().enumerate() {
        let incident = incident.with_extension(n.to_string());
        let mut cmd = bin();
        cmd.args(["recover", "-q", "--incident-dir"])
            .arg(&incident)
            .arg(&db);
        if let Some(o) = out_path {
            cmd.arg("--out").arg(o);
        }
        let res = with_file_size_limit(&mut cmd, limit).output().unwrap();
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(4), "{label}: {res:?}");
        assert_clean_error(&stderr);
        assert!(
            stderr.contains("writing the recovered database failed"),
            "{label}: {stderr}"
        );
        // The snapshot fitted (it is complete, with its manifest); nothing else was left.
        assert!(incident.join("snapshot/manifest.json").is_file(), "{label}");
        assert!(!incident.join("recovered.sqlite3").exists(), "{label}");
        assert!(!incident.join("report.json").exists(), "{label}");
        assert!(!out_file.exists(), "{label}");
        assert_eq!(leftovers(&incident), Vec::<PathBuf>::new(), "{label}");
        assert_eq!(tree(&out_dir), Vec::<PathBuf>::new(), "{label}");
        guard.assert_unchanged();
    }
}

#[test]
fn disk_full_while_taking_the_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let db = wal_db(&root.path().join("src"), 3_000);
    let guard = SourceGuard::new(&db);
    let size = std::fs::metadata(&db).unwrap().len();
    let incident = root.path().join("incident");
    let mut cmd = bin();
    cmd.args(["recover", "-q", "--incident-dir"])
        .arg(&incident)
        .arg(&db);
    let res = with_file_size_limit(&mut cmd, size / 2).output().unwrap();
    assert_eq!(res.status.code(), Some(4), "{res:?}");
    assert_clean_error(&String::from_utf8_lossy(&res.stderr));
    // The folder was ours: it is removed with the half copy in it.
    assert!(!incident.exists(), "{:?}", tree(&incident));
    let snap = root.path().join("snap");
    let mut cmd = bin();
    cmd.args(["snapshot", "-q"])
        .arg(&db)
        .arg("--into")
        .arg(&snap);
    let res = with_file_size_limit(&mut cmd, size / 2).output().unwrap();
    assert_eq!(res.status.code(), Some(4), "{res:?}");
    assert!(!snap.exists(), "{:?}", tree(&snap));
    guard.assert_unchanged();
}

// ---------------------------------------------------------------------------------------
// Signals during recover
// ---------------------------------------------------------------------------------------

/// When to send the signal: once the snapshot folder appears (so during the copy or just
/// after), or some time after the snapshot is complete (during the page walk).
#[derive(Debug, Clone, Copy)]
enum When {
    SnapshotStarted,
    AfterSnapshot(u64),
}

fn wait_for(path: &Path, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the command ended before {} appeared",
            path.display()
        );
        assert!(start.elapsed() < HANG, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn interrupt_recover(sig: libc::c_int, when: When) {
    let root = tempfile::tempdir().unwrap();
    let db = copy_big(&root.path().join("src"), "app.db");
    let guard = SourceGuard::new(&db);
    let incident = root.path().join("incident");
    let err_path = root.path().join("stderr");
    let mut child = bin()
        .args(["recover", "-q", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    match when {
        When::SnapshotStarted => wait_for(&incident.join("snapshot"), &mut child),
        When::AfterSnapshot(ms) => {
            wait_for(&incident.join("snapshot/manifest.json"), &mut child);
            // The times are for a debug build; an optimised one recovers the fixture about
            // ten times faster (0.15 s).
            let ms = if cfg!(debug_assertions) { ms } else { ms / 10 };
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "{when:?}: recovery ended before the signal; the fixture is too small"
    );
    send(&child, sig);
    let status = wait_or_hang(&mut child, &format!("recover, signal {sig} {when:?}"));
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert_eq!(status.code(), Some(4), "{when:?}: {status:?} {stderr}");
    assert_clean_error(&stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!incident.join("recovered.sqlite3").exists(), "{when:?}");
    assert!(!incident.join("report.json").exists(), "{when:?}");
    assert_eq!(leftovers(root.path()), Vec::<PathBuf>::new(), "{when:?}");
    // Whatever snapshot is left is whole: a manifest only beside a complete copy.
    let manifest = incident.join("snapshot/manifest.json");
    if manifest.exists() {
        assert_eq!(
            sha256_file(&incident.join("snapshot/app.db")),
            sha256_file(&db),
            "{when:?}"
        );
    } else {
        assert!(!incident.exists(), "{when:?}: {:?}", tree(&incident));
    }
    guard.assert_unchanged();
}

#[test]
fn sigint_during_recover_leaves_nothing_that_looks_complete() {
    interrupt_recover(libc::SIGINT, When::SnapshotStarted);
    interrupt_recover(libc::SIGINT, When::AfterSnapshot(0));
    interrupt_recover(libc::SIGINT, When::AfterSnapshot(300));
}

#[test]
fn sigterm_during_recover_leaves_nothing_that_looks_complete() {
    interrupt_recover(libc::SIGTERM, When::SnapshotStarted);
    interrupt_recover(libc::SIGTERM, When::AfterSnapshot(150));
}

// ---------------------------------------------------------------------------------------
// Signals during restore
// ---------------------------------------------------------------------------------------

#[test]
fn sigint_during_restore_never_leaves_the_database_missing_or_half_written() {
    let root = tempfile::tempdir().unwrap();
    // The damaged database, in WAL mode with its sidecars, and the recovered one.
    let original_dir = root.path().join("original");
    let original = wal_db(&original_dir, 4_000);
    // What `recover` writes: a rollback-journal database (the WAL is folded in here).
    let recovered = wal_db(&root.path().join("recovered"), 20_000);
    Connection::open(&recovered)
        .unwrap()
        .query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(()))
        .unwrap();
    assert!(!side(&recovered, "-wal").exists());
    let from_guard = SourceGuard::new(&recovered);
    let recovered_sha = sha256_file(&recovered);

    // How long a whole restore takes here, so the signals are spread over all of it.
    let calibrate = root.path().join("calibrate");
    std::fs::create_dir(&calibrate).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        std::fs::copy(
            side(&original, suffix),
            side(&calibrate.join("app.db"), suffix),
        )
        .unwrap();
    }
    let start = Instant::now();
    let res = bin()
        .args(["restore", "-q"])
        .arg(calibrate.join("app.db"))
        .arg("--from")
        .arg(&recovered)
        .arg("--backup-dir")
        .arg(root.path().join("backup-calibrate"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(0), "{res:?}");
    let whole = start.elapsed().as_millis() as u64;

    let runs = 12u64;
    let delays: Vec<u64> = (0..runs).map(|i| whole * 5 * i / (4 * runs)).collect();
    let mut outcomes = Vec::new();
    for (n, &delay) in delays.iter().enumerate() {
        let dir = root.path().join(format!("run-{n}"));
        std::fs::create_dir(&dir).unwrap();
        let db = dir.join("app.db");
        for suffix in ["", "-wal", "-shm"] {
            std::fs::copy(side(&original, suffix), side(&db, suffix)).unwrap();
        }
        let guard = SourceGuard::new(&db);
        let backup = root.path().join(format!("backup-{n}"));
        let mut child = bin()
            .args(["restore", "-q", "--json"])
            .arg(&db)
            .arg("--from")
            .arg(&recovered)
            .arg("--backup-dir")
            .arg(&backup)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let sent = child.try_wait().unwrap().is_none();
        if sent {
            send(&child, libc::SIGINT);
        }
        let status = wait_or_hang(&mut child, &format!("restore, SIGINT after {delay} ms"));
        let ctx = format!("SIGINT after {delay} ms: {status:?}");
        // The database path is there and whole: the original, or the recovered file.
        assert!(db.is_file(), "{ctx}: the database path is missing");
        let now = sha256_file(&db);
        if now == recovered_sha {
            assert_eq!(status.code(), Some(0), "{ctx}: restored but not reported");
            // The originals are whole in the backup folder.
            for suffix in ["", "-wal", "-shm"] {
                assert_eq!(
                    sha256_file(&side(&backup.join("app.db"), suffix)),
                    sha256_file(&side(&original, suffix)),
                    "{ctx}: backup of app.db{suffix}"
                );
            }
            assert!(backup.join("manifest.json").is_file(), "{ctx}");
            outcomes.push("restored");
        } else {
            // Not restored: everything as it was, nothing of ours beside it.
            guard.assert_unchanged();
            let interrupted = status.code() == Some(4) || status.signal() == Some(libc::SIGINT);
            assert!(interrupted, "{ctx}: neither restored nor interrupted");
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, ["app.db", "app.db-shm", "app.db-wal"], "{ctx}");
            assert!(
                !backup.exists() || tree(&backup).is_empty(),
                "{ctx}: {:?}",
                tree(&backup)
            );
            outcomes.push(if sent { "interrupted" } else { "ended early" });
        }
        from_guard.assert_unchanged();
    }
    // The signals were spread over the whole run (up to 125 % of it): the early ones must
    // have interrupted it.
    let seen: Vec<_> = delays.iter().zip(&outcomes).collect();
    eprintln!("restore takes {whole} ms; outcome by delay: {seen:?}");
    assert!(outcomes.contains(&"interrupted"), "{seen:?}");
}

mod paths;
