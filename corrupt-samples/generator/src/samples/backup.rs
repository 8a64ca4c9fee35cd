//! `backup-behind`: a damaged database and a backup of it taken some commits earlier, with a
//! column added in between, for filling lost rows from a backup (`recover --fill-from`).
//!
//! Two tables: `account` (INTEGER PRIMARY KEY, `username` UNIQUE, so an index names every
//! lost row) and `note` (no index: its losses are rowid ranges only). The backup is the
//! file after the first commit; then a column is added to `account`, some accounts are
//! updated, some accounts and notes deleted, new ones inserted. Three leaves are zeroed:
//! the middle and the last of `account` (the last holds rows created after the backup) and
//! one of `note`'s that holds no note deleted since (with no index, a row deleted inside a
//! lost range cannot be told from a lost one). `backup.json` records what changed since the
//! backup.

use super::*;
use crate::Key;
use serde::Serialize;

/// The commits made after the backup was taken.
const COMMITS_BEHIND: u32 = 4;

/// `backup.json`: what happened between the backup and the damage.
#[derive(Serialize)]
struct BackupTruth {
    backup: &'static str,
    commits_behind: u32,
    columns_added_since: Vec<&'static str>,
    /// Rows that did not exist when the backup was taken.
    rows_created_since: BTreeMap<&'static str, Vec<i64>>,
    /// Rows in the backup deleted since.
    rows_deleted_since: BTreeMap<&'static str, Vec<i64>>,
    /// Rows whose values changed since (the backup holds older values).
    rows_updated_since: BTreeMap<&'static str, Vec<i64>>,
}

pub(super) fn write_backup_sample(ctx: &mut Ctx, name: &str, dir: &Path) -> Result<Sample> {
    let mut rng = ctx.rng(name);
    let (accounts, notes) = match ctx.scale {
        Scale::Small => (400, 300),
        Scale::Large => (4000, 3000),
    };
    let path = ctx.tmp.path().join(format!("{name}.sqlite3"));
    let conn = Connection::open(&path)?;
    conn.execute_batch(
        "PRAGMA page_size = 1024; PRAGMA journal_mode = DELETE;
         CREATE TABLE account(id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE,
                              email TEXT, balance INTEGER);
         CREATE TABLE note(id INTEGER PRIMARY KEY, account_id INTEGER, body TEXT);",
    )?;
    conn.execute_batch("BEGIN")?;
    for id in 1..=accounts {
        add_account(&conn, id, rng.random_range(0..10_000))?;
    }
    for id in 1..=notes {
        add_note(&conn, id, rng.random_range(1..=accounts), &mut rng)?;
    }
    conn.execute_batch("COMMIT")?;
    let backup = std::fs::read(&path)?;
    let mut truth = BackupTruth {
        backup: "backup.sqlite3",
        commits_behind: COMMITS_BEHIND,
        columns_added_since: vec!["account.plan"],
        rows_created_since: BTreeMap::new(),
        rows_deleted_since: BTreeMap::new(),
        rows_updated_since: BTreeMap::new(),
    };
    // 1: a column added; 2: every 7th account updated; 3: some deleted; 4: new rows.
    conn.execute_batch("ALTER TABLE account ADD COLUMN plan TEXT NOT NULL DEFAULT 'free'")?;
    conn.execute_batch(
        "UPDATE account SET balance = balance + 500, plan = 'pro' WHERE id % 7 = 0",
    )?;
    let updated: Vec<i64> = (1..=accounts).filter(|i| i % 7 == 0).collect();
    let gone_accounts: Vec<i64> = (1..=accounts).filter(|i| i % 23 == 5).collect();
    let gone_notes: Vec<i64> = (1..=notes).filter(|i| i % 41 == 3).collect();
    conn.execute_batch(
        "DELETE FROM account WHERE id % 23 = 5; DELETE FROM note WHERE id % 41 = 3;",
    )?;
    conn.execute_batch("BEGIN")?;
    let new_accounts: Vec<i64> = (accounts + 1..=accounts + accounts / 10).collect();
    for &id in &new_accounts {
        add_account(&conn, id, rng.random_range(0..10_000))?;
    }
    let new_notes: Vec<i64> = (notes + 1..=notes + notes / 10).collect();
    for &id in &new_notes {
        add_note(&conn, id, rng.random_range(1..=accounts), &mut rng)?;
    }
    conn.execute_batch("COMMIT")?;
    drop(conn);
    truth.rows_updated_since.insert("account", updated);
    truth.rows_deleted_since.insert("account", gone_accounts);
    truth.rows_deleted_since.insert("note", gone_notes.clone());
    truth.rows_created_since.insert("account", new_accounts);
    truth.rows_created_since.insert("note", new_notes);

    let layout = read_layout(&path)?;
    let bytes = std::fs::read(&path)?;
    let truth_file = format!("{name}.sqlite3");
    ctx.write_truth(&truth_file, &bytes)?;
    let mut db = bytes;
    let ps = layout.page_size;
    let account: Vec<u32> = layout.btree("account").leaves().map(|p| p.pageno).collect();
    let note_tree = layout.btree("note");
    let note: Vec<u32> = note_tree.leaves().map(|p| p.pageno).collect();
    if account.len() < 4 || note.len() < 4 {
        return Err("backup-behind: too few leaves".into());
    }
    // A leaf of note, past the middle and not the last, in whose rowid range (from the
    // previous leaf's last rowid, exclusive, to its own last) no note was deleted.
    let last_key = |p: u32| {
        note_tree
            .keys_on_page(p)
            .iter()
            .rev()
            .find_map(|k| match k {
                Key::Rowid(r) => Some(*r),
                Key::Text(_) => None,
            })
    };
    let clean = |i: usize| {
        let (Some(lo), Some(hi)) = (last_key(note[i - 1]), last_key(note[i])) else {
            return false;
        };
        !gone_notes.iter().any(|g| *g > lo && *g <= hi)
    };
    let note_leaf = note[(note.len() / 2..note.len() - 1)
        .find(|&i| clean(i))
        .ok_or("backup-behind: every note leaf's range holds a deleted note")?];
    let pages = [
        account[account.len() / 2],
        account[account.len() - 1],
        note_leaf,
    ];
    for &p in &pages {
        zero_page(&mut db, p, ps);
    }
    let mut d = Damaged::new(
        format!(
            "Zeroed the middle leaf {} and the last leaf {} of account and leaf {} of note; \
             backup.sqlite3 is the database {COMMITS_BEHIND} commits earlier (before \
             account.plan was added, accounts updated and deleted, and new rows inserted; \
             backup.json lists them).",
            pages[0], pages[1], pages[2]
        ),
        db,
    );
    d.damaged.extend(pages);
    d.target = Some("account".into());
    std::fs::write(dir.join("backup.sqlite3"), &backup)?;
    let mut json = serde_json::to_string_pretty(&truth)?;
    json.push('\n');
    std::fs::write(dir.join("backup.json"), json)?;
    let mut sample = finish(
        ctx,
        name,
        dir,
        d,
        &layout,
        Some(format!("../_truth/{truth_file}")),
        true,
    )?;
    sample
        .expected
        .files
        .extend(["backup.sqlite3".into(), "backup.json".into()]);
    files::write_expected(dir, &sample.expected)?;
    Ok(sample)
}

fn add_account(conn: &Connection, id: i64, balance: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO account(id, username, email, balance) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![
            id,
            format!("user{id:05}"),
            format!("user{id:05}@example.com"),
            balance
        ],
    )?;
    Ok(())
}

fn add_note(conn: &Connection, id: i64, account: i64, rng: &mut ChaCha8Rng) -> Result<()> {
    let words = [
        "ticket",
        "refund",
        "call back",
        "escalated",
        "resolved",
        "waiting",
    ];
    let body: Vec<&str> = (0..8)
        .map(|_| words[rng.random_range(0..words.len())])
        .collect();
    conn.execute(
        "INSERT INTO note(id, account_id, body) VALUES (?1, ?2, ?3)",
        rusqlite::params![id, account, body.join(" ")],
    )?;
    Ok(())
}
