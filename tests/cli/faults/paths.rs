//! Symlinks where the tool writes; names with spaces and non-ASCII characters.

use super::*;

#[test]
fn symlinks_in_the_incident_folder_or_at_out_are_not_followed() {
    let root = tempfile::tempdir().unwrap();
    let db = wal_db(&root.path().join("src"), 200);
    let guard = SourceGuard::new(&db);
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let target = elsewhere.join("victim.sqlite3");

    // An incident folder holding only a link (to a folder, or dangling to a file we would
    // create) is not empty: refused, and nothing is written through the link.
    let cases: [(&str, &Path); 2] = [("snapshot", &elsewhere), ("recovered.sqlite3", &target)];
    for (n, (entry, points_to)) in cases.into_iter().enumerate() {
        let incident = root.path().join(format!("incident-{n}"));
        std::fs::create_dir(&incident).unwrap();
        std::os::unix::fs::symlink(points_to, incident.join(entry)).unwrap();
        let res = bin()
            .args(["recover", "-q", "--incident-dir"])
            .arg(&incident)
            .arg(&db)
            .output()
            .unwrap();
        assert_eq!(res.status.code(), Some(4), "{entry}: {res:?}");
        assert!(String::from_utf8_lossy(&res.stderr).contains("refused"));
        assert_eq!(tree(&elsewhere), Vec::<PathBuf>::new(), "{entry}");
        assert_eq!(tree(&incident), vec![incident.join(entry)], "{entry}");
    }

    // --out as a dangling link: refused, the file it points to is not created.
    let link = root.path().join("out-link.sqlite3");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let incident = root.path().join("incident-out");
    let res = bin()
        .args(["recover", "-q", "--incident-dir"])
        .arg(&incident)
        .arg("--out")
        .arg(&link)
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(4), "{res:?}");
    assert!(String::from_utf8_lossy(&res.stderr).contains("refused"));
    assert!(!target.exists() && !incident.exists());
    guard.assert_unchanged();
}

#[test]
fn paths_with_spaces_and_non_ascii_names_work_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("my app");
    let built = wal_db(&root.path().join("build here"), 500);
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("ünïcødé 'quoted'.db");
    for suffix in ["", "-wal", "-shm"] {
        std::fs::rename(side(&built, suffix), side(&db, suffix)).unwrap();
    }
    let original: Vec<Vec<u8>> = ["", "-wal", "-shm"]
        .iter()
        .map(|s| std::fs::read(side(&db, s)).unwrap())
        .collect();
    let guard = SourceGuard::new(&db);
    let incident = dir.join("incident é ü");
    let res = bin()
        .args(["recover", "-q", "--json", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(0), "{res:?}");
    let report: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let recovered = incident.join("recovered.sqlite3");
    assert_eq!(report["recovered"].as_str(), recovered.to_str());
    let rows: Vec<(String, u64)> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let name = t["table"].as_str().unwrap().to_string();
            (name, t["recovered_rows"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(rows, [("t".to_string(), 500), ("u".to_string(), 500)]);
    guard.assert_unchanged();

    let backup = dir.join("backup ø");
    let res = bin()
        .args(["restore", "-q", "--json"])
        .arg(&db)
        .arg("--from")
        .arg(&recovered)
        .arg("--backup-dir")
        .arg(&backup)
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(0), "{res:?}");
    assert_eq!(sha256_file(&db), sha256_file(&recovered));
    let restored: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let conn = Connection::open(&db).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM u)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    assert_eq!(rows, 1000);

    // The undo line, quoted for the shell, puts the originals back byte for byte.
    let undo = restored["undo_command"].as_str().unwrap();
    let status = Command::new("sh").arg("-c").arg(undo).status().unwrap();
    assert!(status.success(), "{undo}");
    for (s, bytes) in ["", "-wal", "-shm"].iter().zip(&original) {
        assert_eq!(&std::fs::read(side(&db, s)).unwrap(), bytes, "{s}");
    }
}
