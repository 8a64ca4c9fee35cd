//! The wal-* samples: a base database with WAL transactions on top, torn or healed.

use super::*;

/// Leaf of monitor_check whose first row is updated in WAL transaction A.
fn wal_target(l: &Layout) -> (u32, i64) {
    let bt = l.btree("monitor_check");
    let leaves: Vec<u32> = bt.leaves().map(|p| p.pageno).collect();
    let page = leaves[leaves.len() / 2];
    let key = match &bt.keys_on_page(page)[0] {
        crate::Key::Rowid(r) => *r,
        crate::Key::Text(_) => unreachable!(),
    };
    (page, key)
}

/// The truth of every wal-* sample: the base after WAL transaction A, checkpointed.
fn wal_truth(ctx: &mut Ctx) -> Result<Rc<Base>> {
    if let Some(t) = &ctx.wal_truth {
        return Ok(t.clone());
    }
    let base = ctx.default_base()?;
    let (_, check_id) = wal_target(&base.layout);
    let dir = ctx.tmp.path().join("wal-truth");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("db.sqlite3");
    std::fs::write(&path, &base.bytes)?;
    {
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        data::wal_transaction_a(&conn, ctx.scale, check_id)?;
        conn.pragma_update(None, "journal_mode", "DELETE")?;
    }
    let layout = read_layout(&path)?;
    let t = Rc::new(Base {
        spec: base.spec,
        bytes: std::fs::read(&path)?,
        layout,
        truth_file: format!("{}-wal.sqlite3", base.spec.id()),
    });
    ctx.wal_truth = Some(t.clone());
    Ok(t)
}

/// Page numbers of the frames in a WAL file image.
pub(crate) fn wal_frame_pages(wal: &[u8], page_size: u32) -> Vec<u32> {
    let frame = 24 + page_size as usize;
    let mut out = Vec::new();
    let mut at = 32;
    while at + frame <= wal.len() {
        out.push(u32::from_be_bytes(wal[at..at + 4].try_into().unwrap()));
        at += frame;
    }
    out
}

pub(super) fn write_wal_sample(ctx: &mut Ctx, name: &str, dir: &Path) -> Result<Sample> {
    let base = ctx.default_base()?;
    let truth = wal_truth(ctx)?;
    let (page, check_id) = wal_target(&base.layout);
    let ps = base.layout.page_size;
    let work = ctx.tmp.path().join(format!("work-{name}"));
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let path = work.join("db.sqlite3");
    std::fs::write(&path, &base.bytes)?;
    let conn = Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    data::wal_transaction_a(&conn, ctx.scale, check_id)?;
    let read = |suffix: &str| std::fs::read(work.join(format!("db.sqlite3{suffix}")));
    let d = match name {
        "healthy-wal" => {
            conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))?;
            let mut d = Damaged::new(
                "None: a WAL-mode database whose committed transaction has been checkpointed; \
                 the -wal and -shm are still present (copied while the writer was open) and \
                 agree with the main file."
                    .into(),
                read("")?,
            );
            d.wal = Some(read("-wal")?);
            d.shm = Some(read("-shm")?);
            d
        }
        "wal-uncheckpointed" => {
            let mut d = Damaged::new(
                "None: a WAL-mode database copied while its writer was open with \
                 wal_autocheckpoint=0; the last committed transaction (new event_log rows, \
                 auth_user and monitor_check updates, audit_note rows from the trigger, a \
                 kv_setting row) exists only in the -wal."
                    .into(),
                read("")?,
            );
            d.wal = Some(read("-wal")?);
            d.shm = Some(read("-shm")?);
            d
        }
        "wal-healed" => {
            let wal = read("-wal")?;
            if !wal_frame_pages(&wal, ps).contains(&page) {
                return Err(format!("page {page} has no frame in the WAL").into());
            }
            let mut db = read("")?;
            zero_page(&mut db, page, ps);
            let mut d = Damaged::new(
                format!(
                    "Zeroed leaf page {page} of monitor_check in the main file of a WAL-mode \
                     database whose -wal holds a newer committed image of that page, so \
                     reading through the WAL loses nothing."
                ),
                db,
            );
            d.wal = Some(wal);
            d.shm = Some(read("-shm")?);
            d.damaged.insert(page);
            d.target = Some("monitor_check".into());
            d
        }
        "wal-torn-tail" => {
            let before = read("-wal")?.len();
            data::wal_transaction_b(&conn)?;
            let mut wal = read("-wal")?;
            let frames = (wal.len() - before) / (24 + ps as usize);
            let cut = wal.len() - ps as usize / 2;
            wal.truncate(cut);
            let mut d = Damaged::new(
                format!(
                    "A second transaction of {frames} frames was appended to the -wal and the \
                     file cut at byte {cut}, mid-way through its commit frame; the truth is the \
                     state at the last complete commit. No -shm is shipped."
                ),
                read("")?,
            );
            d.wal = Some(wal);
            d
        }
        _ => unreachable!(),
    };
    drop(conn);
    ctx.write_truth(&truth.truth_file.clone(), &truth.bytes)?;
    // Destroyed rows are measured against the truth: with the WAL applied nothing
    // committed is lost, whatever was done to the main file.
    finish_with(
        ctx,
        name,
        dir,
        d,
        &truth.layout,
        Some(format!("../_truth/{}", truth.truth_file)),
        true,
        &BTreeSet::new(),
    )
}
