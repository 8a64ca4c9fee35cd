//! Restore and undo guard the live database (issue 19, parts 3 to 5).

use super::*;

// ---------------------------------------------------------------------------------------
// 3. Restore guards the live database
// ---------------------------------------------------------------------------------------

/// The copy of `leaf-zeroed` lacks the rows of one page: restore refuses it (exit 1, naming
/// the table and the counts), `--dry-run --accept-loss` says exactly what would move where
/// and moves nothing, `--accept-loss` restores, and a second restore of the same incident
/// says it was restored already and changes nothing.
#[test]
fn restore_refuses_a_lossy_copy_and_the_same_incident_twice() {
    let root = tempfile::tempdir().unwrap();
    let db = copy_sample("leaf-zeroed", &root.path().join("live"));
    let incident = root.path().join("incident");
    assert_eq!(recover_into(&db, &incident).0, Some(1));
    let recovered = incident.join("recovered.sqlite3");
    let before = fingerprint(&db);
    let restore = |extra: &[&str]| {
        cmd()
            .arg("restore")
            .arg(&db)
            .arg("--from")
            .arg(&recovered)
            .args(extra)
            .output()
            .unwrap()
    };

    let out = restore(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("monitor_check: 581 of at least 582 rows"),
        "{stderr}"
    );
    assert!(stderr.contains("--accept-loss"), "{stderr}");
    assert_eq!(fingerprint(&db), before);

    let out = restore(&["--dry-run", "--accept-loss"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let backup = incident.join("pre-restore");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(
        text.contains(&format!("move   {} ", db.display()))
            && text.contains(&format!("to {}", backup.join("db.sqlite3").display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("copy   {} ", recovered.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("to {}, fsync the folder", db.display())),
        "{text}"
    );
    let plan = json(&restore(&["--dry-run", "--accept-loss", "--json"]));
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["copy", "move", "rename", "write"]);
    assert_eq!(fingerprint(&db), before);
    assert!(!backup.exists(), "a dry run created the backup folder");

    let out = restore(&["--accept-loss", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = json(&out);
    assert_eq!(report["accepted_loss"][0]["table"], "monitor_check");
    assert_eq!(sha256_file(&db), sha256_file(&recovered));

    let after_first = fingerprint(&db);
    let incident_before = every_file(&incident);
    let out = restore(&["--accept-loss"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("already restored"), "{stderr}");
    assert!(stderr.contains(" undo "), "{stderr}");
    assert_eq!(fingerprint(&db), after_first);
    assert_eq!(every_file(&incident), incident_before);
}

/// A copy restores only over the database its incident snapshotted: not over another one
/// (exit 2), and not over the same one once it changed since the snapshot (exit 4).
#[test]
fn restore_refuses_a_database_the_incident_did_not_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    healthy_db(&db, 20);
    let incident = root.path().join("incident");
    assert_eq!(recover_into(&db, &incident).0, Some(0));
    let recovered = incident.join("recovered.sqlite3");

    let other = root.path().join("other.db");
    healthy_db(&other, 20);
    let before = fingerprint(&other);
    let out = cmd()
        .arg("restore")
        .arg(&other)
        .arg("--from")
        .arg(&recovered)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("was recovered from {}", db.display())),
        "{stderr}"
    );
    assert_eq!(fingerprint(&other), before);

    Connection::open(&db)
        .unwrap()
        .execute("INSERT INTO t(v) VALUES ('written after the snapshot')", [])
        .unwrap();
    let before = fingerprint(&db);
    let out = cmd()
        .arg("restore")
        .arg(&db)
        .arg("--from")
        .arg(&recovered)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("changed since the snapshot"), "{stderr}");
    assert_eq!(fingerprint(&db), before);
    assert!(!incident.join("pre-restore").exists());
}

// ---------------------------------------------------------------------------------------
// 4. Undo
// ---------------------------------------------------------------------------------------

/// Recover, restore, and the application writes (leaving a -wal): `undo INCIDENT` refuses
/// and changes nothing; `--force` puts the originals back byte for byte and keeps every file
/// that was in place in the incident folder: no file is gone. Then the incident can be
/// restored again.
#[test]
fn undo_refuses_after_the_app_wrote_and_force_keeps_every_file() {
    let root = tempfile::tempdir().unwrap();
    let db = copy_sample("healthy-wal", &root.path().join("live"));
    let originals = fingerprint(&db);
    assert!(originals.contains_key("-wal"));
    let incident = root.path().join("incident");
    assert_eq!(recover_into(&db, &incident).0, Some(0));
    let recovered = incident.join("recovered.sqlite3");
    cmd()
        .args(["restore", "-q"])
        .arg(&db)
        .arg("--from")
        .arg(&recovered)
        .assert()
        .code(0);

    // The application writes and is killed: its -wal and -shm stay beside the database.
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE written_after(x);")
            .unwrap();
        for s in ["-wal", "-shm"] {
            std::fs::copy(side(&db, s), side(&db, &format!("{s}.keep"))).unwrap();
        }
        drop(conn);
        for s in ["-wal", "-shm"] {
            std::fs::rename(side(&db, &format!("{s}.keep")), side(&db, s)).unwrap();
        }
    }
    let written = fingerprint(&db);
    assert!(written.contains_key("-wal"));
    let files_before = every_file(root.path());
    let files_before_manifest = sha256_file(&incident.join("pre-restore").join("manifest.json"));

    let out = cmd().arg("undo").arg(&incident).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("changed since it was restored"), "{stderr}");
    assert_eq!(
        fingerprint(&db),
        written,
        "a refused undo changed the files"
    );
    assert_eq!(every_file(root.path()), files_before);

    let out = cmd()
        .args(["undo", "--json", "--force"])
        .arg(&incident)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = json(&out);
    assert_eq!(
        fingerprint(&db),
        originals,
        "the originals are back byte for byte"
    );
    let set_aside = PathBuf::from(report["set_aside_dir"].as_str().unwrap());
    assert!(set_aside.starts_with(&incident), "{set_aside:?}");
    assert_eq!(
        fingerprint(&set_aside.join("db.sqlite3")),
        written,
        "what the application wrote is kept"
    );
    // Nothing is gone: every file there was before is still somewhere under root, and
    // nothing else is (only the restore's manifest, which records the undo, was rewritten).
    let manifest = incident.join("pre-restore").join("manifest.json");
    let without = |mut files: BTreeMap<String, usize>, hash: &str| {
        if let Some(n) = files.get_mut(hash) {
            *n -= 1;
        }
        files.retain(|_, n| *n > 0);
        files
    };
    let manifest_then = files_before_manifest;
    assert_eq!(
        without(every_file(root.path()), &sha256_file(&manifest)),
        without(files_before, &manifest_then),
        "files were lost or made rather than moved"
    );

    // Undone: the same incident restores again.
    cmd()
        .args(["restore", "-q"])
        .arg(&db)
        .arg("--from")
        .arg(&recovered)
        .assert()
        .code(0);
    assert_eq!(sha256_file(&db), sha256_file(&recovered));
}

/// An original altered in the backup folder cannot be put back byte for byte: undo refuses
/// and changes nothing.
#[test]
fn undo_refuses_when_an_original_in_the_backup_was_altered() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    healthy_db(&db, 10);
    let incident = root.path().join("incident");
    assert_eq!(recover_into(&db, &incident).0, Some(0));
    cmd()
        .args(["restore", "-q"])
        .arg(&db)
        .arg("--from")
        .arg(incident.join("recovered.sqlite3"))
        .assert()
        .code(0);
    let original = incident.join("pre-restore").join("app.db");
    let mut bytes = std::fs::read(&original).unwrap();
    bytes.push(0);
    std::fs::write(&original, &bytes).unwrap();
    let files = every_file(root.path());
    let out = cmd().arg("undo").arg(&incident).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("not as restore left it"), "{stderr}");
    assert_eq!(every_file(root.path()), files);
}

// ---------------------------------------------------------------------------------------
// 6. Incident folders
// ---------------------------------------------------------------------------------------

/// Runs started together get folders of their own; the last line printed is the folder;
/// the `Next:` line, quoted for the shell, runs as printed from a folder with a space.
#[test]
fn incident_folders_are_unique_and_the_next_line_runs_as_printed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("my app");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("it's.db");
    healthy_db(&db, 50);
    let guard = SourceGuard::new(&db);
    let children: Vec<std::process::Child> = (0..4)
        .map(|_| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("sqlite-rescue"))
                .args(["recover", "-q"])
                .arg(&db)
                .current_dir(&dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut folders = Vec::new();
    let mut next_lines = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let last = PathBuf::from(text.lines().last().unwrap());
        assert!(
            last.is_absolute() && last.join("report.json").is_file(),
            "{text}"
        );
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(last.join("report.json")).unwrap()).unwrap();
        assert_eq!(report["incident_dir"].as_str(), last.to_str());
        let next = text
            .lines()
            .find_map(|l| l.strip_prefix("Next: "))
            .unwrap()
            .to_string();
        assert!(!next.contains(" DB") && !next.contains("DIR"), "{next}");
        folders.push(last);
        next_lines.push(next);
    }
    folders.sort();
    folders.dedup();
    assert_eq!(folders.len(), 4, "two runs shared a folder: {folders:?}");
    guard.assert_unchanged();

    // `recover --json` gives the same path.
    let out = cmd()
        .args(["recover", "-q", "--json"])
        .arg(&db)
        .current_dir(&dir)
        .output()
        .unwrap();
    let report = json(&out);
    assert!(Path::new(report["incident_dir"].as_str().unwrap()).is_dir());

    // The Next: line, pasted into a shell elsewhere, restores.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&next_lines[0])
        .current_dir(root.path())
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}: {status:?}",
        next_lines[0]
    );

    // A dry run's Next: line names the database, quoted, too.
    let out = cmd()
        .args(["recover", "-q", "--dry-run"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let next = text.lines().find(|l| l.starts_with("Next: ")).unwrap();
    assert!(
        next.ends_with(&format!(
            "recover '{}'",
            db.display().to_string().replace('\'', r"'\''")
        )),
        "{next}"
    );
}

/// The runbook finds the incident folder from the command's own output, and reads a field
/// that cannot say 0 when rows were lost.
#[test]
fn the_runbook_uses_the_incident_path_and_missing_rows() {
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md"))
            .unwrap();
    assert!(
        !runbook.contains("ls -d"),
        "the runbook still guesses the folder"
    );
    assert!(
        runbook.contains("tail -n 1"),
        "the runbook reads the last line"
    );
    let jq: Vec<&str> = runbook.lines().filter(|l| l.starts_with("jq ")).collect();
    assert!(
        jq.iter().any(|l| l.contains("missing_rows")),
        "no jq step reads missing_rows: {jq:?}"
    );
    assert!(
        runbook.contains("sqlite-rescue undo"),
        "the runbook undoes with undo"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Interrupts say what is left
// ---------------------------------------------------------------------------------------

/// SIGINT once the snapshot is complete: exit 4, and the one line says the snapshot is kept
/// (whole, with its manifest) and where; nothing else is in the incident folder, and no
/// partial file is anywhere.
#[test]
fn an_interrupt_after_the_snapshot_says_the_snapshot_is_kept() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300000)
             INSERT INTO t SELECT x, printf('name-%07d', (x * 7919) % 1000003), x * 0.5 FROM c;
             CREATE INDEX t_name ON t(name);",
        )
        .unwrap();
    let incident = root.path().join("incident");
    let err_path = root.path().join("stderr");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("sqlite-rescue"))
        .args(["recover", "-q", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let manifest = incident.join("snapshot").join("manifest.json");
    let start = std::time::Instant::now();
    while !manifest.exists() && child.try_wait().unwrap().is_none() {
        assert!(start.elapsed().as_secs() < 60, "no snapshot after a minute");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    if child.try_wait().unwrap().is_some() {
        eprintln!("skipped: the recovery ended before the signal could be sent");
        return;
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) takes plain integers; the pid is our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    if status.code() == Some(0) {
        eprintln!("skipped: the recovery finished before it saw the signal");
        return;
    }
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the snapshot, complete with its manifest, is kept in {}",
            incident.join("snapshot").display()
        )),
        "{stderr}"
    );
    let names: Vec<String> = std::fs::read_dir(&incident)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["snapshot"], "{stderr}");
    let partial: Vec<PathBuf> = tree(root.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
    assert_eq!(
        sha256_file(&incident.join("snapshot").join("app.db")),
        sha256_file(&db)
    );
}
