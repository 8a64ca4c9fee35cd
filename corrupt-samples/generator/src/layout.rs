//! Where every row lives, read from a healthy database through the `dbstat` virtual
//! table, so damage to a set of pages can be translated into the rows it destroys.
//!
//! `dbstat` lists each b-tree page with a path: `/` for the root, `/000/` for the root's
//! first child, `/000/01a/` below that, and `/000/01a/003+000001` for the second overflow
//! page of cell 3 on page `/000/01a/`. Walking a table b-tree in order visits its rows
//! in key order; for index b-trees (and so WITHOUT ROWID tables) interior cells hold
//! entries too, between the subtrees on either side of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::Result;

/// A row's key: the rowid, or the PRIMARY KEY text of a WITHOUT ROWID table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Key {
    Rowid(i64),
    Text(String),
}

/// One page as `dbstat` reports it.
#[derive(Debug, Clone)]
pub struct PageInfo {
    pub path: String,
    pub pageno: u32,
    /// `internal`, `leaf` or `overflow`.
    pub pagetype: String,
    pub ncell: u32,
}

/// One b-tree (table or index) of the database.
#[derive(Debug, Clone)]
pub struct BTree {
    /// `name` from sqlite_schema (the index name for indexes).
    pub name: String,
    /// The table this b-tree belongs to.
    pub tbl_name: String,
    /// `table` or `index`.
    pub kind: String,
    pub without_rowid: bool,
    pub root: u32,
    /// Pages in `dbstat` path order.
    pub pages: Vec<PageInfo>,
    /// Number of levels (1 = the root is a leaf).
    pub depth: usize,
    /// For user tables: the row keys in b-tree order, and for each row the page that
    /// holds its cell plus any overflow pages.
    pub rows: Vec<RowPlace>,
}

/// Where one row is stored.
#[derive(Debug, Clone)]
pub struct RowPlace {
    pub key: Key,
    pub page: u32,
    pub overflow: Vec<u32>,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Rowid(r) => write!(f, "{r}"),
            Key::Text(t) => write!(f, "{t:?}"),
        }
    }
}

impl BTree {
    pub fn leaves(&self) -> impl Iterator<Item = &PageInfo> {
        self.pages.iter().filter(|p| p.pagetype == "leaf")
    }
    pub fn interiors(&self) -> impl Iterator<Item = &PageInfo> {
        self.pages.iter().filter(|p| p.pagetype == "internal")
    }
    pub fn overflows(&self) -> impl Iterator<Item = &PageInfo> {
        self.pages.iter().filter(|p| p.pagetype == "overflow")
    }
    /// Keys of rows with a cell on `page` (not counting overflow).
    pub fn keys_on_page(&self, page: u32) -> Vec<Key> {
        self.rows
            .iter()
            .filter(|r| r.page == page)
            .map(|r| r.key.clone())
            .collect()
    }
}

/// The layout of a whole database file.
#[derive(Debug, Clone)]
pub struct Layout {
    pub page_size: u32,
    pub page_count: u32,
    pub encoding: String,
    pub btrees: Vec<BTree>,
    /// Free pages (trunks and leaves), from the header's freelist.
    pub freelist_trunk: u32,
    pub freelist_count: u32,
}

impl Layout {
    pub fn btree(&self, name: &str) -> &BTree {
        self.btrees
            .iter()
            .find(|b| b.name == name)
            .unwrap_or_else(|| panic!("no b-tree named {name}"))
    }

    /// User tables (not views, not `sqlite_*`).
    pub fn tables(&self) -> impl Iterator<Item = &BTree> {
        self.btrees
            .iter()
            .filter(|b| b.kind == "table" && !b.name.starts_with("sqlite_"))
    }

    /// Which b-tree a page belongs to, if any.
    pub fn owner(&self, page: u32) -> Option<&BTree> {
        self.btrees
            .iter()
            .find(|b| b.pages.iter().any(|p| p.pageno == page))
    }

    /// Per user table: the keys of rows whose cell or overflow chain touches `damaged`.
    pub fn destroyed(&self, damaged: &BTreeSet<u32>) -> BTreeMap<String, Vec<Key>> {
        self.tables()
            .map(|t| {
                let keys = t
                    .rows
                    .iter()
                    .filter(|r| {
                        damaged.contains(&r.page) || r.overflow.iter().any(|p| damaged.contains(p))
                    })
                    .map(|r| r.key.clone())
                    .collect();
                (t.name.clone(), keys)
            })
            .collect()
    }
}

fn open_ro(path: &Path) -> Result<Connection> {
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

/// Quote an identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Read the layout of the healthy database at `path`.
pub fn read_layout(path: &Path) -> Result<Layout> {
    let conn = open_ro(path)?;
    let page_size: u32 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let page_count: u32 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let encoding: String = conn.query_row("PRAGMA encoding", [], |r| r.get(0))?;
    let freelist_count: u32 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let header = std::fs::read(path)?;
    let freelist_trunk = u32::from_be_bytes(header[32..36].try_into().unwrap());

    let mut schema: Vec<(String, String, String, u32, bool)> = Vec::new();
    {
        let mut st = conn.prepare(
            "SELECT type, name, tbl_name, rootpage, coalesce(sql, '') FROM sqlite_schema \
             WHERE type IN ('table', 'index') AND rootpage > 0 ORDER BY rootpage",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let sql: String = r.get(4)?;
            let without_rowid = sql.to_ascii_uppercase().contains("WITHOUT ROWID");
            schema.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, without_rowid));
        }
    }
    schema.push((
        "table".into(),
        "sqlite_schema".into(),
        "sqlite_schema".into(),
        1,
        false,
    ));

    let mut by_name: HashMap<String, Vec<PageInfo>> = HashMap::new();
    {
        let mut st =
            conn.prepare("SELECT name, path, pageno, pagetype, ncell FROM dbstat ORDER BY path")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let mut name: String = r.get(0)?;
            if name == "sqlite_master" {
                name = "sqlite_schema".into();
            }
            by_name.entry(name).or_default().push(PageInfo {
                path: r.get(1)?,
                pageno: r.get(2)?,
                pagetype: r.get(3)?,
                ncell: r.get(4)?,
            });
        }
    }

    let mut btrees = Vec::new();
    for (kind, name, tbl_name, root, without_rowid) in schema {
        let mut pages = by_name.remove(&name).unwrap_or_default();
        pages.sort_by(|a, b| a.path.cmp(&b.path));
        let depth = pages
            .iter()
            .filter(|p| p.pagetype != "overflow")
            .map(|p| p.path.matches('/').count())
            .max()
            .unwrap_or(1);
        let mut bt = BTree {
            name: name.clone(),
            tbl_name,
            kind,
            without_rowid,
            root,
            pages,
            depth,
            rows: Vec::new(),
        };
        if bt.kind == "table" && !name.starts_with("sqlite_") {
            bt.rows = place_rows(&conn, &bt)?;
        }
        btrees.push(bt);
    }
    Ok(Layout {
        page_size,
        page_count,
        encoding,
        btrees,
        freelist_trunk,
        freelist_count,
    })
}

/// The cells of a b-tree in key order, as (page, cell index).
fn cells_in_order(bt: &BTree) -> Result<Vec<(u32, u32)>> {
    let by_path: HashMap<&str, &PageInfo> = bt.pages.iter().map(|p| (p.path.as_str(), p)).collect();
    let index_tree = bt.without_rowid || bt.kind == "index";
    let mut out = Vec::new();
    fn walk(
        path: &str,
        by_path: &HashMap<&str, &PageInfo>,
        index_tree: bool,
        out: &mut Vec<(u32, u32)>,
    ) -> Result<()> {
        let page = by_path
            .get(path)
            .ok_or_else(|| format!("dbstat has no page at path {path}"))?;
        if page.pagetype == "leaf" {
            out.extend((0..page.ncell).map(|c| (page.pageno, c)));
            return Ok(());
        }
        for child in 0..=page.ncell {
            walk(&format!("{path}{child:03x}/"), by_path, index_tree, out)?;
            if index_tree && child < page.ncell {
                out.push((page.pageno, child));
            }
        }
        Ok(())
    }
    walk("/", &by_path, index_tree, &mut out)?;
    Ok(out)
}

fn place_rows(conn: &Connection, bt: &BTree) -> Result<Vec<RowPlace>> {
    let cells = cells_in_order(bt)?;
    // Overflow pages per (page, cell) of the cell that links them.
    let by_path: HashMap<&str, u32> = bt
        .pages
        .iter()
        .map(|p| (p.path.as_str(), p.pageno))
        .collect();
    let mut overflow: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
    for p in bt.overflows() {
        let (cell_path, _) = p
            .path
            .split_once('+')
            .ok_or_else(|| format!("odd overflow path {}", p.path))?;
        let slash = cell_path.rfind('/').unwrap();
        let owner_path = &cell_path[..=slash];
        let cell = u32::from_str_radix(&cell_path[slash + 1..], 16)?;
        let owner = *by_path
            .get(owner_path)
            .ok_or_else(|| format!("no owner page for {}", p.path))?;
        overflow.entry((owner, cell)).or_default().push(p.pageno);
    }

    let q = quote_ident(&bt.name);
    let keys: Vec<Key> = if bt.without_rowid {
        let pk: Vec<String> = {
            let mut st = conn.prepare(&format!(
                "SELECT name FROM pragma_table_info({}) WHERE pk > 0 ORDER BY pk",
                quote_literal(&bt.name)
            ))?;
            let v = st
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<std::result::Result<Vec<_>, _>>()?;
            v
        };
        let cols: Vec<String> = pk.iter().map(|c| quote_ident(c)).collect();
        let sel = if cols.len() == 1 {
            format!("CAST({} AS TEXT)", cols[0])
        } else {
            format!("json_array({})", cols.join(", "))
        };
        let mut st = conn.prepare(&format!(
            "SELECT {sel} FROM {q} ORDER BY {}",
            cols.join(", ")
        ))?;
        let v = st
            .query_map([], |r| r.get::<_, String>(0).map(Key::Text))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        v
    } else {
        // A column may be named rowid (or oid): take a name of the rowid none shadows.
        let columns: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_xinfo({})",
                quote_literal(&bt.name)
            ))?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<_, _>>()?;
        let rowid = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|a| !columns.iter().any(|c| c.eq_ignore_ascii_case(a)))
            .ok_or_else(|| format!("{}: every name of the rowid is a column", bt.name))?;
        let mut st = conn.prepare(&format!("SELECT {rowid} FROM {q} ORDER BY {rowid}"))?;
        let v = st
            .query_map([], |r| r.get::<_, i64>(0).map(Key::Rowid))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        v
    };
    if keys.len() != cells.len() {
        return Err(format!(
            "{}: {} rows but {} cells in dbstat",
            bt.name,
            keys.len(),
            cells.len()
        )
        .into());
    }
    Ok(keys
        .into_iter()
        .zip(cells)
        .map(|(key, (page, cell))| RowPlace {
            key,
            page,
            overflow: overflow.remove(&(page, cell)).unwrap_or_default(),
        })
        .collect())
}

/// Quote a string literal for SQL.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Offset of the b-tree page header within page `pageno` (page 1 starts after the
/// 100-byte database header).
pub fn btree_header_offset(pageno: u32) -> usize {
    if pageno == 1 {
        100
    } else {
        0
    }
}

/// Byte range of page `pageno` (1-based) in a file with `page_size` pages.
pub fn page_range(pageno: u32, page_size: u32) -> std::ops::Range<usize> {
    let start = (pageno as usize - 1) * page_size as usize;
    start..start + page_size as usize
}

/// Read a SQLite varint at `buf[at..]`: (value, length).
pub fn read_varint(buf: &[u8], at: usize) -> (u64, usize) {
    let mut v: u64 = 0;
    for i in 0..8 {
        let b = buf[at + i];
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    ((v << 8) | u64::from(buf[at + 8]), 9)
}

/// The cell pointers of the b-tree page `page` (a full page image).
pub fn cell_pointers(page: &[u8], pageno: u32) -> Vec<usize> {
    let h = btree_header_offset(pageno);
    let kind = page[h];
    let ncell = u16::from_be_bytes([page[h + 3], page[h + 4]]) as usize;
    let array = h + if kind == 0x02 || kind == 0x05 { 12 } else { 8 };
    (0..ncell)
        .map(|i| u16::from_be_bytes([page[array + 2 * i], page[array + 2 * i + 1]]) as usize)
        .collect()
}
