//! The `-wal`: commits past damage in it, and pages it holds past a main file cut short.

use super::*;

/// A database whose last `commits` transactions are only in its `-wal` (each adding `rows`
/// rows), its files copied while the writer holds them.
fn wal_only_commits(dir: &Path, commits: u32, rows: u32) -> std::path::PathBuf {
    let (live, conn) = live_wal(dir);
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint=0; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);",
    )
    .unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    for c in 0..commits {
        conn.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?2)
             INSERT INTO t(v) SELECT printf('commit %d row %d', ?1, x) FROM n",
            [c, rows],
        )
        .unwrap();
    }
    let db = copied_live(&live, dir);
    drop(conn);
    db
}

/// How many rows table `t` of the database at `db` has.
fn rows_of_t(db: &Path) -> i64 {
    rows_of_t_on(&Connection::open(db).unwrap())
}

fn rows_of_t_on(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// A database in WAL mode at `dir/live.db`, and the writer's connection to it.
fn live_wal(dir: &Path) -> (std::path::PathBuf, Connection) {
    let live = dir.join("live.db");
    let conn = Connection::open(&live).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    (live, conn)
}

/// The files of the database at `live`, copied while its writer holds them to `dir/app.db`.
fn copied_live(live: &Path, dir: &Path) -> std::path::PathBuf {
    let db = dir.join("app.db");
    let to = crate::common::source_files(&db);
    for (from, to) in crate::common::source_files(live).iter().zip(&to) {
        if from.exists() {
            std::fs::copy(from, to).unwrap();
        }
    }
    db
}

/// Committed transactions past a damaged frame, or behind a damaged header, are rows SQLite
/// no longer shows: the run says so and is not complete; an intact `-wal` comes back whole.
#[test]
fn commits_past_damage_in_the_wal_are_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = wal_only_commits(&new_dir(dir.path(), "a"), 5, 100);
    let (code, report, out_db) = recover(&healthy);
    assert_eq!(
        (code, report["engine"]["wal"]["commits_ignored"].as_u64()),
        (0, Some(0))
    );
    assert_eq!(rows_of_t(&out_db), 500);

    let page = 4096u64;
    // Inside the page of the second frame; and in the header's checkpoint sequence number.
    for (name, at, ignored) in [
        ("frame", 32 + (24 + page) + 24 + 100, 5),
        ("header", 13, 5),
        ("magic", 1, 5),
        ("salt", 17, 5),
    ] {
        let db = wal_only_commits(&new_dir(dir.path(), name), 5, 100);
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        flip_byte(Path::new(&wal), at);
        let (code, report, _) = recover(&db);
        assert_eq!(code, 1, "{name}: {}", report["outcome"]);
        let got = report["engine"]["wal"]["commits_ignored"].as_u64().unwrap();
        assert!(got >= 1 && got <= ignored, "{name}: {got}");
        // The table those transactions wrote to may miss any number of rows.
        assert!(report["tables"][0]["missing_rows_max"].is_null(), "{name}");
        assert_eq!(report["causes"][0]["id"], "damaged-wal", "{name}");
    }
}

/// Damage in the last transaction's first frame of a new page: from the break on, its frames
/// write only new pages no table owns yet, so the pages its earlier frames wrote are what
/// name the table.
#[test]
fn the_transaction_a_wal_break_falls_in_names_its_tables() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_only_commits(dir.path(), 5, 1000);
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    let wal = std::path::PathBuf::from(wal);
    let bytes = std::fs::read(&wal).unwrap();
    let frame = 24 + 4096;
    let field = |k: usize, at: usize| {
        let at = 32 + k * frame + at;
        u64::from(u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()))
    };
    let frames = (bytes.len() - 32) / frame;
    let commits: Vec<usize> = (0..frames).filter(|&k| field(k, 4) != 0).collect();
    assert_eq!(commits.len(), 5);
    // The database's size in pages as the fourth commit left it. Frames go in page order:
    // the last transaction's old pages first, its new pages after.
    let had = field(commits[3], 4);
    let last = (commits[3] + 1..commits[4])
        .filter(|&k| field(k, 0) <= had)
        .max()
        .expect("the last transaction rewrites a page the database had");
    assert!((last + 1..=commits[4]).all(|k| field(k, 0) > had));
    flip_byte(&wal, (32 + (last + 1) * frame + 24 + 200) as u64);

    let (code, report, _) = recover(&db);
    assert_eq!(code, 1, "{}", report["outcome"]);
    assert_eq!(report["engine"]["wal"]["commits_ignored"], 1);
    let t = &report["engine"]["tables"][0];
    assert_eq!(t["rows_lost_in_wal"], true, "{t}");
    assert!(report["tables"][0]["missing_rows_max"].is_null());
}

/// A main file cut short under a `-wal` that holds the newest pages, among them pages past
/// what is left of the main file: those pages are read from the `-wal` by their numbers, so
/// every row they hold comes back.
#[test]
fn wal_pages_past_a_cut_main_file_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let (live, conn) = live_wal(dir.path());
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint=0; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 4000)
         INSERT INTO t(id, v) SELECT x, printf('main row %06d', x) FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);
         WITH RECURSIVE n(x) AS (SELECT 4001 UNION ALL SELECT x + 1 FROM n WHERE x < 6000)
         INSERT INTO t(id, v) SELECT x, printf('wal row %06d', x) FROM n;",
    )
    .unwrap();
    let db = copied_live(&live, dir.path());
    drop(conn);
    let main = std::fs::read(&db).unwrap();
    std::fs::write(&db, &main[..main.len() / 2 / 4096 * 4096]).unwrap();

    let (code, report, out_db) = recover(&db);
    assert_eq!(code, 1, "{}", report["outcome"]);
    let from_wal: i64 = Connection::open(&out_db)
        .unwrap()
        .query_row("SELECT count(*) FROM t WHERE v LIKE 'wal row %'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        from_wal, 2000,
        "{}",
        report["engine"]["geometry"]["inferred"]
    );
}

/// Rows deleted after the last checkpoint: the freelist that holds their pages starts in
/// the -wal's page 1, not the main file's. Those pages are free space, as SQLite reads them,
/// not orphans: nothing goes to lost_and_found.
#[test]
fn a_freelist_only_the_wal_knows_is_free_space() {
    let dir = tempfile::tempdir().unwrap();
    let (live, conn) = live_wal(dir.path());
    conn.execute_batch(
        "PRAGMA secure_delete = OFF; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200)
         INSERT INTO t SELECT x, printf('row %d %.300c', x, 'x') FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);
         DELETE FROM t WHERE id > 10;",
    )
    .unwrap();
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert!(free > 10);
    let db = copied_live(&live, dir.path());
    drop(conn);

    let (code, report, out_db) = recover(&db);
    assert_eq!(code, 0, "{}", report["outcome"]);
    assert_eq!(
        report["engine"]["pages"]["free"], free,
        "{}",
        report["engine"]["pages"]
    );
    assert!(report["engine"]["orphans"].as_array().unwrap().is_empty());
    let tables: i64 = Connection::open(&out_db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'lost_and_found'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

/// The commit frames of the `-wal` at `wal` (pages of 4096 bytes), counted from 0.
fn commit_frames(wal: &Path) -> Vec<usize> {
    let bytes = std::fs::read(wal).unwrap();
    let frame = 24 + 4096;
    (0..(bytes.len() - 32) / frame)
        .filter(|k| {
            let at = 32 + k * frame + 4;
            u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) != 0
        })
        .collect()
}

/// The `-shm` records how far the `-wal`'s commits reached. A `-wal` cut at a frame boundary
/// (no checksum breaks) or emptied loses commits SQLite would never show: the run names the
/// table, says so, and is not complete, and `check` calls it damage. A `-wal` gone is said
/// and not counted. The same files whole come back exact.
#[test]
fn commits_the_shm_records_and_no_file_holds_are_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let whole = wal_only_commits(&new_dir(dir.path(), "whole"), 5, 100);
    let (code, report, _) = recover(&whole);
    assert_eq!(code, 0, "{}", report["outcome"]);
    assert!(report["engine"]["wal_index_gap"].is_null());

    let cut = wal_only_commits(&new_dir(dir.path(), "cut"), 5, 100);
    let wal = crate::common::source_files(&cut)[1].clone();
    let commits = commit_frames(&wal);
    assert_eq!(commits.len(), 5);
    let keep = commits[3] + 1;
    let file = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    file.set_len(32 + (keep * (24 + 4096)) as u64).unwrap();
    drop(file);
    let (code, report, out_db) = recover(&cut);
    assert_eq!(code, 1, "{}", report["outcome"]);
    let gap = &report["engine"]["wal_index_gap"];
    assert_eq!(
        gap["frames_missing"],
        (commits[4] + 1 - keep) as u64,
        "{gap}"
    );
    assert_eq!(gap["frames_applied"], keep as u64);
    assert_eq!(gap["wal_beside"], true);
    assert_eq!(report["engine"]["tables"][0]["rows_lost_in_wal"], true);
    assert_eq!(rows_of_t(&out_db), 400);
    let out = cmd().args(["check", "--json"]).arg(&cut).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        check["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "wal-lost-commits"),
        "{}",
        check["findings"]
    );

    // Emptied: SQLite empties a -wal only after resetting its -shm.
    let emptied = wal_only_commits(&new_dir(dir.path(), "emptied"), 5, 100);
    let wal = crate::common::source_files(&emptied)[1].clone();
    let frames = commit_frames(&wal)[4] + 1;
    std::fs::write(&wal, b"").unwrap();
    let (code, report, _) = recover(&emptied);
    assert_eq!(code, 1, "{}", report["outcome"]);
    let gap = &report["engine"]["wal_index_gap"];
    assert_eq!(gap["frames_missing"], frames as u64, "{gap}");
    assert_eq!(gap["wal_beside"], true);

    // Gone: the -wal may be elsewhere, or the -shm stale (a connection in exclusive locking
    // mode leaves an older one behind): said, and not counted as a loss.
    let gone = wal_only_commits(&new_dir(dir.path(), "gone"), 5, 100);
    std::fs::remove_file(&crate::common::source_files(&gone)[1]).unwrap();
    let (code, report, _) = recover(&gone);
    assert_eq!(code, 0, "{}", report["outcome"]);
    let gap = &report["engine"]["wal_index_gap"];
    assert_eq!(gap["frames_missing"], frames as u64, "{gap}");
    assert_eq!(gap["wal_beside"], false);
    let out = cmd()
        .args(["recover", "--dry-run"])
        .arg(&gone)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("note: no -wal is beside the database, yet its -shm records"),
        "{text}"
    );
    let out = cmd().args(["check", "--json"]).arg(&gone).output().unwrap();
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{check}");
    assert_eq!(check["findings"], serde_json::json!([]));
    let warned = check["warnings"].as_array().unwrap();
    assert!(
        warned
            .iter()
            .any(|w| w.as_str().unwrap().contains("its -shm records")),
        "{check}"
    );
}

/// Five commits of 100 rows, all of them checkpointed into the main file, the `-wal` not yet
/// restarted, copied while the writer holds the files.
fn checkpointed_wal(dir: &Path) -> std::path::PathBuf {
    let (live, conn) = live_wal(dir);
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint=0; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    for c in 0..5 {
        conn.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100)
             INSERT INTO t(v) SELECT printf('commit %d row %d %.80c', ?1, x, '*') FROM n",
            [c],
        )
        .unwrap();
    }
    let (busy, frames, copied): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((busy, frames), (0, copied), "a whole checkpoint");
    copied_live(&live, dir)
}

/// A `-wal` cut short below what a checkpoint already copied into the main file holds only
/// older images of its pages: laid over the main file, they would take back rows the
/// checkpoint had made permanent (SQLite itself, rebuilding its `-shm` from such a `-wal`,
/// shows 200 of these 500 rows). The `-shm` records the checkpoint, so the main file is read
/// alone and every row comes back, on both sides of the count. So with a frame damaged
/// among those checkpointed: the commits past it are in the main file, not lost.
#[test]
fn a_wal_older_than_its_checkpoint_is_not_read_over_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = checkpointed_wal(&new_dir(dir.path(), "cut"));
    let wal = crate::common::source_files(&db)[1].clone();
    let commits = commit_frames(&wal);
    let file = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    file.set_len(32 + ((commits[1] + 1) * (24 + 4096)) as u64)
        .unwrap();
    drop(file);

    let (code, report, out_db) = recover(&db);
    assert_eq!(code, 0, "{}", report["outcome"]);
    assert_eq!(report["engine"]["wal"]["older_than_main_file"], true);
    assert!(report["engine"]["wal_index_gap"].is_null());
    assert_eq!(
        report["tables"][0]["source_rows"], 500,
        "{}",
        report["tables"]
    );
    let text = cmd()
        .args(["recover", "--dry-run"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(text.status.code(), Some(0));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("-wal not read: the -shm records a checkpoint"),
        "{text}"
    );
    let out = cmd().args(["check", "--json"]).arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        check["findings"][0]["kind"], "wal-older-than-database",
        "{check}"
    );
    assert_eq!(rows_of_t(&out_db), 500);

    let damaged = checkpointed_wal(&new_dir(dir.path(), "damaged"));
    let wal = crate::common::source_files(&damaged)[1].clone();
    let commits = commit_frames(&wal);
    flip_byte(
        &wal,
        (32 + (commits[1] + 1) * (24 + 4096) + 24 + 100) as u64,
    );
    let (code, report, out_db) = recover(&damaged);
    assert_eq!(code, 0, "{}", report["outcome"]);
    let w = &report["engine"]["wal"];
    assert_eq!(
        (&w["older_than_main_file"], &w["commits_ignored"]),
        (&true.into(), &0.into()),
        "{w}"
    );
    assert_eq!(rows_of_t(&out_db), 500);
}

/// A writer and a reader that pins an older snapshot, so that the checkpoint stops part way.
fn pinned_checkpoint(
    dir: &Path,
    before: &str,
    after: &str,
) -> (std::path::PathBuf, Connection, Connection) {
    let (live, conn) = live_wal(dir);
    conn.execute_batch("PRAGMA wal_autocheckpoint=0;").unwrap();
    conn.execute_batch(before).unwrap();
    let reader = Connection::open(&live).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    rows_of_t_on(&reader);
    conn.execute_batch(after).unwrap();
    let (_, frames, copied): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert!(0 < copied && copied < frames, "{copied} of {frames} frames");
    (live, conn, reader)
}

/// After a checkpoint that stopped part way, the main file may be shorter than its header
/// counts while the `-wal` holds the rest: `check` calls that healthy, as SQLite reads it.
#[test]
fn a_checkpoint_part_way_is_no_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let (live, conn, reader) = pinned_checkpoint(
        dir.path(),
        "BEGIN; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 60)
         INSERT INTO t(v) SELECT printf('%.300c', 'x') FROM n; COMMIT;",
        "UPDATE t SET v = 'y';",
    );
    let db = copied_live(&live, dir.path());
    drop((reader, conn));
    let out = cmd().args(["check", "--json"]).arg(&db).output().unwrap();
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", check["findings"]);
    let (code, report, _) = recover(&db);
    assert_eq!(code, 0, "{}", report["outcome"]);
}

/// A checkpoint that stopped before page 1, then the `-wal` deleted: the main file holds
/// pages of committed rows its stale page 1 no longer reaches. The `-shm` says a checkpoint
/// wrote them, so the gap is a loss, and their rows are live ones in lost_and_found, not
/// stale copies.
#[test]
fn pages_a_checkpoint_wrote_past_a_stale_header_are_live() {
    let dir = tempfile::tempdir().unwrap();
    let insert = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100)
                  INSERT INTO t(v) SELECT printf('%.300c', 'x') FROM n;";
    let (live, conn, reader) = pinned_checkpoint(
        dir.path(),
        &format!("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); {insert}"),
        insert,
    );
    let db = copied_live(&live, dir.path());
    drop((reader, conn));
    std::fs::remove_file(&crate::common::source_files(&db)[1]).unwrap();
    let (code, report, _) = recover(&db);
    assert_eq!(code, 1, "{}", report["outcome"]);
    let gap = &report["engine"]["wal_index_gap"];
    assert!(gap["pages_past_header"].as_u64().unwrap() > 0, "{gap}");
    let live_rows = report["engine"]["lost_and_found_rows"].as_u64().unwrap();
    assert!(live_rows > 0, "{}", report["engine"]["orphans"]);
    assert_eq!(report["engine"]["stale_rows"], 0);
}

/// Frames the `-shm` records that are still in the `-wal` with their page numbers are there,
/// whatever their checksums: a break in those is judged by the `-wal`'s own frames (SQLite
/// writes some frames with their checksums still to come). Zeroed ones are gone.
#[test]
fn recorded_frames_still_in_the_wal_are_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let broken = wal_only_commits(&new_dir(dir.path(), "broken"), 5, 100);
    let wal = crate::common::source_files(&broken)[1].clone();
    let commits = commit_frames(&wal);
    flip_byte(&wal, (32 + commits[4] * (24 + 4096) + 24 + 100) as u64);
    let (code, report, _) = recover(&broken);
    assert_eq!(code, 1, "{}", report["outcome"]);
    assert!(
        report["engine"]["wal_index_gap"].is_null(),
        "{}",
        report["engine"]["wal_index_gap"]
    );
    assert_eq!(report["engine"]["wal"]["commits_ignored"], 1);

    let zeroed = wal_only_commits(&new_dir(dir.path(), "zeroed"), 5, 100);
    let wal = crate::common::source_files(&zeroed)[1].clone();
    let commits = commit_frames(&wal);
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[32 + (commits[3] + 1) * (24 + 4096)..].fill(0);
    std::fs::write(&wal, bytes).unwrap();
    let (code, report, _) = recover(&zeroed);
    assert_eq!(code, 1, "{}", report["outcome"]);
    let gap = &report["engine"]["wal_index_gap"];
    assert_eq!(
        gap["frames_missing"],
        (commits[4] - commits[3]) as u64,
        "{gap}"
    );
}
