//! Samples where the surviving indexes are the evidence (issue 20): look-alike tables told
//! apart by their UNIQUE indexes, values altered by changed serial types, an index with a
//! zeroed leaf beside a table that lost one, and a table whose schema row is destroyed
//! while its index's row survives.

use super::schema_cells::overwrite_schema_cells;
use super::*;

/// The samples made here, in the order they are listed in [`SAMPLE_NAMES`].
pub(super) const NAMES: [&str; 4] = [
    "look-alike-swapped",
    "serial-types-altered",
    "index-and-table-leaf-zeroed",
    "schema-row-destroyed",
];

pub(super) fn write(ctx: &mut Ctx, name: &str, dir: &Path) -> Result<Sample> {
    if name == "look-alike-swapped" {
        return look_alike(ctx, name, dir);
    }
    let mut rng = ctx.rng(name);
    let base = if name == "schema-row-destroyed" {
        // 4 KiB pages so the whole schema is on page 1, as in schema-cells-damaged.
        let spec = ctx.spec(Some(4096), Encoding::Utf8, false);
        ctx.base(spec)?
    } else {
        ctx.default_base()?
    };
    let db = base.bytes.clone();
    let d = match name {
        "serial-types-altered" => serial_types(&base, db)?,
        "index-and-table-leaf-zeroed" => index_and_table_leaf(&base, db)?,
        "schema-row-destroyed" => schema_row(&base, db, &mut rng)?,
        other => return Err(format!("unknown sample {other:?}").into()),
    };
    ctx.write_truth(&base.truth_file.clone(), &base.bytes)?;
    let truth = format!("../_truth/{}", base.truth_file);
    finish(ctx, name, dir, d, &base.layout, Some(truth), true)
}

/// Two tables of the same shape (`customer`, `supplier`: id, a UNIQUE email, a score), the
/// same rowids, and the child pointers of their roots swapped at different key ranges: each
/// root now points to a leaf of the other table, which its walk rejects as a stray, so two
/// leaves are orphans whose records fit either table.
fn look_alike(ctx: &mut Ctx, name: &str, dir: &Path) -> Result<Sample> {
    let file = format!("{}-look-alike.sqlite3", ctx.scale.name());
    let path = ctx.tmp.path().join(&file);
    if !path.exists() {
        build_look_alike(
            &path,
            ctx.default_page_size(),
            ctx.scale,
            &mut ctx.rng(name),
        )?;
    }
    let layout = read_layout(&path)?;
    let bytes = std::fs::read(&path)?;
    ctx.write_truth(&file, &bytes)?;
    let ps = layout.page_size;
    let mut db = bytes.clone();
    let (a, b) = (layout.btree("customer"), layout.btree("supplier"));
    let (pa, i, la) = root_child(&db, a.root, ps, 1, 3)?;
    let (pb, j, lb) = root_child(&db, b.root, ps, 2, 3)?;
    db[page_range(a.root, ps).start + pa..][..4].copy_from_slice(&lb.to_be_bytes());
    db[page_range(b.root, ps).start + pb..][..4].copy_from_slice(&la.to_be_bytes());
    let mut d = Damaged::new(
        format!(
            "Two tables of the same shape, customer and supplier (id, a UNIQUE email, a score; \
             the same rowids): the child pointer of cell {i} in customer's root page {} and of \
             cell {j} in supplier's root page {} were swapped, so leaf {la} of customer and \
             leaf {lb} of supplier are intact but unreachable (each root now points to a leaf \
             of the other table, out of its key range), and their records fit either table.",
            a.root, b.root
        ),
        db,
    );
    d.damaged.extend([a.root, b.root]);
    d.target = Some("customer".into());
    finish(
        ctx,
        name,
        dir,
        d,
        &layout,
        Some(format!("../_truth/{file}")),
        true,
    )
}

fn build_look_alike(path: &Path, page_size: u32, scale: Scale, rng: &mut ChaCha8Rng) -> Result<()> {
    let rows = match scale {
        Scale::Small => 600,
        Scale::Large => 6000,
    };
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "page_size", page_size)?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    conn.execute_batch(
        "CREATE TABLE customer(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, score INT);
         CREATE TABLE supplier(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, score INT);",
    )?;
    let tx = conn.transaction()?;
    for table in ["customer", "supplier"] {
        let mut st = tx.prepare(&format!(
            "INSERT INTO {table}(id, email, score) VALUES (?1, ?2, ?3)"
        ))?;
        for id in 1..=rows {
            let host: String = (0..6)
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect();
            let email = format!("{table}{id:05}@{host}.example");
            st.execute(rusqlite::params![id, email, rng.random_range(0..1000)])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The cell at `num/den` of the way through root page `root` (a table interior page): its
/// offset in the page, its number, and the child it points to.
fn root_child(
    db: &[u8],
    root: u32,
    ps: u32,
    num: usize,
    den: usize,
) -> Result<(usize, usize, u32)> {
    let page = &db[page_range(root, ps)];
    if page[layout::btree_header_offset(root)] != 0x05 {
        return Err(format!("root page {root} is not a table interior page").into());
    }
    let ptrs = layout::cell_pointers(page, root);
    let i = ptrs.len() * num / den;
    let at = ptrs[i];
    Ok((at, i, u32::from_be_bytes(page[at..at + 4].try_into()?)))
}

/// Changes serial-type bytes in the records of three auth_user rows (username UNIQUE, so
/// `sqlite_autoindex_auth_user_1` keeps every username as written). Two keep the record's
/// length (username one byte shorter, email one longer: both read shifted, and nothing in
/// the page shows it); the third only shortens the username, so its header no longer
/// accounts for the payload's length.
fn serial_types(base: &Base, mut db: Vec<u8>) -> Result<Damaged> {
    let ps = base.layout.page_size;
    let bt = base.layout.btree("auth_user");
    let leaves: Vec<u32> = bt.leaves().map(|p| p.pageno).collect();
    if leaves.len() < 4 {
        return Err("auth_user has fewer than 4 leaves".into());
    }
    let picks = [
        (leaves[1], true),
        (leaves[leaves.len() / 2], true),
        (leaves[leaves.len() - 2], false),
    ];
    let mut d = Damaged::new(String::new(), Vec::new());
    let mut rowids = Vec::new();
    for (leaf, keep_length) in picks {
        let page = &mut db[page_range(leaf, ps)];
        let cell = layout::cell_pointers(page, leaf)[0];
        let (_, a) = layout::read_varint(page, cell);
        let (rowid, b) = layout::read_varint(page, cell + a);
        let header = cell + a + b;
        // Header: its length, then id, password, last_login, is_superuser, username, email.
        let mut at = header + layout::read_varint(page, header).1;
        for _ in 0..4 {
            at += layout::read_varint(page, at).1;
        }
        let (username, email) = (page[at], page[at + 1]);
        if username >= 0x80 || email >= 0x7e || username < 15 || username % 2 == 0 {
            return Err(format!("auth_user row {rowid}: serial types not one-byte text").into());
        }
        page[at] = username - 2;
        if keep_length {
            page[at + 1] = email + 2;
        }
        d.damaged.insert(leaf);
        rowids.push(rowid.to_string());
    }
    d.description = format!(
        "Changed serial-type bytes in the records of auth_user rows {} (the first cell of \
         three leaves): in the first two the username's type says one byte less and the \
         email's one byte more (the record's length unchanged, both values read shifted); in \
         the third only the username's, so the header accounts for one byte less than the \
         payload. Every record still decodes; the UNIQUE index on username holds the values \
         as written.",
        rowids.join(", ")
    );
    d.db = db;
    d.values_unknowable = true;
    d.target = Some("auth_user".into());
    Ok(d)
}

/// Zeroes a leaf in the middle of event_log and the first leaf of its index
/// event_log_kind: the index's other leaves still list rows the table lost.
fn index_and_table_leaf(base: &Base, mut db: Vec<u8>) -> Result<Damaged> {
    let l = &base.layout;
    let ps = l.page_size;
    let table: Vec<u32> = l.btree("event_log").leaves().map(|p| p.pageno).collect();
    let index: Vec<u32> = l
        .btree("event_log_kind")
        .leaves()
        .map(|p| p.pageno)
        .collect();
    if table.len() < 3 || index.len() < 3 {
        return Err("event_log or event_log_kind has fewer than 3 leaves".into());
    }
    let (t, i) = (table[table.len() / 2], index[0]);
    zero_page(&mut db, t, ps);
    zero_page(&mut db, i, ps);
    let mut d = Damaged::new(
        format!(
            "Zeroed leaf page {t} of event_log ({} of its {} leaves) and leaf page {i} of its \
             index event_log_kind (the first of {}): the index's other leaves still hold \
             (kind, created) of rows the table lost.",
            table.len() / 2 + 1,
            table.len(),
            index.len()
        ),
        db,
    );
    d.damaged.extend([t, i]);
    d.target = Some("event_log".into());
    Ok(d)
}

/// Overwrites event_log's row of sqlite_schema with random bytes; the row of its index
/// event_log_kind (whose SQL names the table and two of its columns) survives.
fn schema_row(base: &Base, mut db: Vec<u8>, rng: &mut ChaCha8Rng) -> Result<Damaged> {
    overwrite_schema_cells(base, &mut db, rng, &["event_log"])?;
    let mut d = Damaged::new(
        "Overwrote the sqlite_schema cell of table event_log (on page 1) with random bytes: \
         its name, root page and CREATE statement are lost; its data pages are intact, and \
         so is the row of its index event_log_kind (CREATE INDEX event_log_kind ON \
         event_log(kind, created))."
            .into(),
        db,
    );
    d.damaged.insert(1);
    d.target = Some("sqlite_schema".into());
    Ok(d)
}
