//! The damage recipes: one function per sample, each taking a healthy base database,
//! choosing pages from its `dbstat` layout and breaking them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::Connection;

use crate::data::{self, BaseSpec, Encoding};
use crate::layout::{self, page_range, read_layout, Layout};
use crate::{Expect, Expected, Result, Sample, Scale, TableExpected, SAMPLE_NAMES};

mod backup;
mod evidence;
mod files;
mod schema_cells;
mod wal;

use files::{finish, finish_with};
use schema_cells::schema_cells;
use wal::write_wal_sample;

/// A built base database, kept in memory while samples are cut from it.
struct Base {
    spec: BaseSpec,
    bytes: Vec<u8>,
    layout: Layout,
    /// File name under `_truth/`.
    truth_file: String,
}

/// What a recipe produced.
struct Damaged {
    description: String,
    /// Main file bytes.
    db: Vec<u8>,
    wal: Option<Vec<u8>>,
    shm: Option<Vec<u8>>,
    damaged: BTreeSet<u32>,
    target: Option<String>,
    values_unknowable: bool,
}

impl Damaged {
    fn new(description: String, db: Vec<u8>) -> Damaged {
        Damaged {
            description,
            db,
            wal: None,
            shm: None,
            damaged: BTreeSet::new(),
            target: None,
            values_unknowable: false,
        }
    }
}

struct Ctx {
    out: PathBuf,
    scale: Scale,
    seed: u64,
    tmp: tempfile::TempDir,
    bases: HashMap<BaseSpec, Rc<Base>>,
    wal_truth: Option<Rc<Base>>,
    written_truths: BTreeSet<String>,
}

impl Ctx {
    fn new(out: &Path, scale: Scale, seed: u64) -> Result<Ctx> {
        std::fs::create_dir_all(out)?;
        Ok(Ctx {
            out: out.to_path_buf(),
            scale,
            seed,
            tmp: tempfile::tempdir()?,
            bases: HashMap::new(),
            wal_truth: None,
            written_truths: BTreeSet::new(),
        })
    }

    fn default_page_size(&self) -> u32 {
        match self.scale {
            Scale::Small => 1024,
            Scale::Large => 4096,
        }
    }

    fn spec(&self, page_size: Option<u32>, encoding: Encoding, auto_vacuum_full: bool) -> BaseSpec {
        BaseSpec {
            page_size: page_size.unwrap_or_else(|| self.default_page_size()),
            encoding,
            auto_vacuum_full,
            scale: self.scale,
            seed: self.seed,
        }
    }

    fn base(&mut self, spec: BaseSpec) -> Result<Rc<Base>> {
        if let Some(b) = self.bases.get(&spec) {
            return Ok(b.clone());
        }
        let path = self.tmp.path().join(format!("{}.sqlite3", spec.id()));
        data::build_base(&spec, &path)?;
        let layout = read_layout(&path)?;
        let base = Rc::new(Base {
            spec,
            bytes: std::fs::read(&path)?,
            layout,
            truth_file: format!("{}.sqlite3", spec.id()),
        });
        self.bases.insert(spec, base.clone());
        Ok(base)
    }

    fn default_base(&mut self) -> Result<Rc<Base>> {
        let spec = self.spec(None, Encoding::Utf8, false);
        self.base(spec)
    }

    /// Write `bytes` as `_truth/<file>` once per run.
    fn write_truth(&mut self, file: &str, bytes: &[u8]) -> Result<PathBuf> {
        let dir = self.out.join("_truth");
        let path = dir.join(file);
        if self.written_truths.insert(file.to_string()) {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&path, bytes)?;
        }
        Ok(path)
    }

    fn rng(&self, name: &str) -> ChaCha8Rng {
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        ChaCha8Rng::seed_from_u64(self.seed ^ h)
    }
}

/// Generate one sample with an explicit seed.
pub fn generate_with_seed(name: &str, out_dir: &Path, scale: Scale, seed: u64) -> Result<Sample> {
    let mut ctx = Ctx::new(out_dir, scale, seed)?;
    generate_in(&mut ctx, name)
}

/// Generate every sample with an explicit seed.
pub fn generate_all_with_seed(out_dir: &Path, scale: Scale, seed: u64) -> Result<Vec<Sample>> {
    let mut ctx = Ctx::new(out_dir, scale, seed)?;
    SAMPLE_NAMES
        .iter()
        .map(|name| generate_in(&mut ctx, name))
        .collect()
}

fn generate_in(ctx: &mut Ctx, name: &str) -> Result<Sample> {
    let dir = ctx.out.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    match name {
        "not-a-database" | "empty-file" => return write_unusable(ctx, name, &dir),
        "healthy-wal" | "wal-uncheckpointed" | "wal-healed" | "wal-torn-tail" => {
            return write_wal_sample(ctx, name, &dir)
        }
        "healthy-unusual" => return write_unusual(ctx, name, &dir),
        "backup-behind" => return backup::write_backup_sample(ctx, name, &dir),
        n if evidence::NAMES.contains(&n) => return evidence::write(ctx, name, &dir),
        _ => {}
    }
    let mut rng = ctx.rng(name);
    let base = match name {
        "schema-cells-damaged" => {
            // 4 KiB pages so the whole schema fits on page 1.
            let spec = ctx.spec(Some(4096), Encoding::Utf8, false);
            ctx.base(spec)?
        }
        "page-512" => {
            let spec = ctx.spec(Some(512), Encoding::Utf8, false);
            ctx.base(spec)?
        }
        "page-65536" => {
            let spec = ctx.spec(Some(65536), Encoding::Utf8, false);
            ctx.base(spec)?
        }
        "utf16" => {
            let spec = ctx.spec(None, Encoding::Utf16le, false);
            ctx.base(spec)?
        }
        "auto-vacuum" => {
            let spec = ctx.spec(None, Encoding::Utf8, true);
            ctx.base(spec)?
        }
        _ => ctx.default_base()?,
    };
    let l = &base.layout;
    let ps = l.page_size;
    let mut db = base.bytes.clone();
    let d = match name {
        "healthy-rollback" => Damaged::new(
            "None: a healthy rollback-journal database, cleanly closed.".into(),
            db,
        ),
        "page-65536" => Damaged::new(
            "None: a healthy database with 65536-byte pages (header page-size field holds 1)."
                .into(),
            db,
        ),
        "leaf-zeroed" | "page-512" | "utf16" | "auto-vacuum" => {
            let table = match name {
                "utf16" => "auth_user",
                "auto-vacuum" => "event_log",
                _ => "monitor_check",
            };
            let bt = l.btree(table);
            let leaves: Vec<u32> = bt.leaves().map(|p| p.pageno).collect();
            if leaves.len() < 3 {
                return Err(format!("{table} has only {} leaves", leaves.len()).into());
            }
            let page = leaves[leaves.len() / 2];
            zero_page(&mut db, page, ps);
            let mut d = Damaged::new(
                format!(
                    "Zeroed leaf page {page} of {table} ({} of its {} leaves, in the middle); \
                     {}-byte pages, {} encoding{}.",
                    leaves.len() / 2 + 1,
                    leaves.len(),
                    ps,
                    l.encoding,
                    if base.spec.auto_vacuum_full {
                        ", auto_vacuum=FULL (pointer-map pages present)"
                    } else {
                        ""
                    }
                ),
                db,
            );
            d.damaged.insert(page);
            d.target = Some(table.into());
            d
        }
        "interior-zeroed" => {
            let bt = l.btree("event_log");
            if bt.depth < 3 {
                return Err(format!("event_log depth is {} (< 3)", bt.depth).into());
            }
            let p = bt
                .interiors()
                .find(|p| p.path != "/")
                .ok_or("event_log has no non-root interior page")?;
            zero_page(&mut db, p.pageno, ps);
            let mut d = Damaged::new(
                format!(
                    "Zeroed non-root interior page {} (path {}) of event_log (depth {}); \
                     its {} child leaves are intact but unreachable from the root.",
                    p.pageno,
                    p.path,
                    bt.depth,
                    p.ncell + 1
                ),
                db,
            );
            d.damaged.insert(p.pageno);
            d.target = Some("event_log".into());
            d
        }
        "root-zeroed" => {
            let bt = l.btree("monitor_check");
            if bt.depth < 2 {
                return Err("monitor_check root is a leaf".into());
            }
            zero_page(&mut db, bt.root, ps);
            let mut d = Damaged::new(
                format!(
                    "Zeroed the root page {} of monitor_check (an interior page, depth {}); \
                     all its leaves are intact.",
                    bt.root, bt.depth
                ),
                db,
            );
            d.damaged.insert(bt.root);
            d.target = Some("monitor_check".into());
            d
        }
        "duplicate-child-pointer" | "wal-reset-race" | "wal-reset-race-fixed" => {
            let bt = l.btree("monitor_check");
            let root = bt.root;
            let r = page_range(root, ps);
            let page = &mut db[r.clone()];
            let h = layout::btree_header_offset(root);
            if page[h] != 0x05 {
                return Err("monitor_check root is not a table interior page".into());
            }
            let ptrs = layout::cell_pointers(page, root);
            let i = ptrs.len() / 2 - 1;
            let child = |page: &[u8], off: usize| {
                u32::from_be_bytes(page[off..off + 4].try_into().unwrap())
            };
            let orphan = child(page, ptrs[i]);
            let dup = child(page, ptrs[i + 1]);
            page[ptrs[i]..ptrs[i] + 4].copy_from_slice(&dup.to_be_bytes());
            let mut d = Damaged::new(
                format!(
                    "In root page {root} of monitor_check, cell {i}'s child pointer was changed \
                     from leaf {orphan} to {dup} (the same child as cell {}), so leaf {orphan} \
                     is intact but unreachable and leaf {dup} is reachable twice.",
                    i + 1
                ),
                db,
            );
            d.damaged.insert(root);
            d.target = Some("monitor_check".into());
            d
        }
        "stray-page" => {
            let src_bt = l.btree("auth_user");
            let dst_bt = l.btree("monitor_check");
            let src: Vec<u32> = src_bt.leaves().map(|p| p.pageno).collect();
            let dst: Vec<u32> = dst_bt.leaves().map(|p| p.pageno).collect();
            let (s, t) = (src[src.len() / 2], dst[dst.len() / 3]);
            let bytes = db[page_range(s, ps)].to_vec();
            db[page_range(t, ps)].copy_from_slice(&bytes);
            let mut d = Damaged::new(
                format!(
                    "Copied leaf page {s} of auth_user over leaf page {t} of monitor_check: \
                     monitor_check's rows on page {t} are gone and auth_user rows appear \
                     twice, once inside monitor_check's tree."
                ),
                db,
            );
            d.damaged.insert(t);
            d.target = Some("monitor_check".into());
            d
        }
        "header-garbage" => {
            rng.fill_bytes(&mut db[..100]);
            let mut d = Damaged::new(
                "Overwrote the 100-byte database header with random bytes (magic, page size, \
                 encoding, counts all lost); the schema b-tree on page 1 is intact."
                    .into(),
                db,
            );
            d.damaged.insert(1);
            d
        }
        "schema-cells-damaged" => schema_cells(&base, db, &mut rng)?,
        "truncated" => {
            let len = db.len();
            let cut = (len * 6 / 10) / ps as usize * ps as usize + ps as usize / 2 + 3;
            db.truncate(cut);
            let first = (cut / ps as usize) as u32 + 1;
            let mut d = Damaged::new(
                format!(
                    "Cut the file at byte {cut} of {len} (~60%, mid-page): page {first} is \
                     partial and pages {} to {} are gone.",
                    first + 1,
                    l.page_count
                ),
                db,
            );
            d.damaged.extend(first..=l.page_count);
            d
        }
        "bit-flips" => {
            let pages: Vec<u32> = l
                .btrees
                .iter()
                .filter(|b| !b.name.starts_with("sqlite_"))
                .flat_map(|b| b.pages.iter().map(|p| p.pageno))
                .filter(|&p| p != 1)
                .collect();
            let mut d = Damaged::new(String::new(), Vec::new());
            let flips = 40;
            for _ in 0..flips {
                let page = pages[rng.random_range(0..pages.len())];
                let off = rng.random_range(0..ps as usize);
                let bit = rng.random_range(0..8);
                db[page_range(page, ps).start + off] ^= 1 << bit;
                d.damaged.insert(page);
            }
            d.description = format!(
                "Flipped {flips} random bits (seeded) in {} pages of tables and indexes; every \
                 row with a cell or overflow page on a touched page counts as destroyed.",
                d.damaged.len()
            );
            d.db = db;
            d.values_unknowable = true;
            d
        }
        "overflow-zeroed" => {
            let bt = l.btree("attachment");
            let row = bt
                .rows
                .iter()
                .max_by_key(|r| r.overflow.len())
                .filter(|r| r.overflow.len() >= 3)
                .ok_or("no attachment with 3 overflow pages")?;
            let page = row.overflow[1];
            zero_page(&mut db, page, ps);
            let mut d = Damaged::new(
                format!(
                    "Zeroed overflow page {page}, the 2nd of {} in the chain of attachment \
                     row {}: the chain is cut and the rest of the blob is unreachable.",
                    row.overflow.len(),
                    row.key
                ),
                db,
            );
            d.damaged.insert(page);
            d.target = Some("attachment".into());
            d
        }
        "index-zeroed" => {
            let ix = l.btree("event_log_kind");
            let auto = l.btree("sqlite_autoindex_auth_user_1");
            let mut d = Damaged::new(String::new(), Vec::new());
            d.damaged.insert(ix.root);
            if let Some(leaf) = ix.leaves().next() {
                d.damaged.insert(leaf.pageno);
            }
            d.damaged.extend(auto.pages.iter().map(|p| p.pageno));
            for &p in &d.damaged {
                zero_page(&mut db, p, ps);
            }
            d.description = format!(
                "Zeroed the root and first leaf of index event_log_kind and all {} pages of \
                 sqlite_autoindex_auth_user_1 (the UNIQUE index on username); table data is \
                 intact.",
                auto.pages.len()
            );
            d.db = db;
            d.target = Some("event_log_kind".into());
            d
        }
        "freelist-garbage" => {
            let trunk = l.freelist_trunk;
            if trunk == 0 || l.freelist_count < 2 {
                return Err("base has no freelist".into());
            }
            let r = page_range(trunk, ps);
            let page = &mut db[r];
            let n = u32::from_be_bytes(page[4..8].try_into().unwrap()) as usize;
            let garbled = n.min(4);
            rng.fill_bytes(&mut page[..8 + 4 * garbled]);
            let mut d = Damaged::new(
                format!(
                    "Overwrote the next-trunk pointer, the leaf count and the first {garbled} of \
                     {n} leaf pointers of freelist trunk page {trunk} with random bytes; the \
                     header still counts {} free pages, several of which hold deleted event_log \
                     rows.",
                    l.freelist_count
                ),
                db,
            );
            d.damaged.insert(trunk);
            d
        }
        "wal-missing" => {
            let bt = l.btree("monitor_check");
            let root = bt.root;
            let r = page_range(root, ps);
            let page = &mut db[r];
            let ptrs = layout::cell_pointers(page, root);
            let i = ptrs.len() / 2;
            let pages = l.page_count;
            let past = pages + 3;
            let leaf = u32::from_be_bytes(page[ptrs[i]..ptrs[i] + 4].try_into().unwrap());
            page[ptrs[i]..ptrs[i] + 4].copy_from_slice(&past.to_be_bytes());
            set_wal_mode(&mut db);
            let mut d = Damaged::new(
                format!(
                    "A WAL-mode database whose -wal is gone: in root page {root} of \
                     monitor_check, cell {i}'s child pointer was changed from leaf {leaf} to \
                     page {past}, past the end of the {pages}-page main file, as a checkpoint \
                     that copied an interior page but not its new children leaves it. No -wal \
                     beside it; leaf {leaf} is intact but unreachable."
                ),
                db,
            );
            d.damaged.insert(root);
            d.target = Some("monitor_check".into());
            d
        }
        other => return Err(format!("unknown sample {other:?}").into()),
    };
    let d = match name {
        // The WAL-reset race's signature: WAL mode, a last writer older than 3.51.3, and a
        // page referenced twice. The control is the same damage written by 3.51.3.
        "wal-reset-race" => last_written_by(d, 3_040_001),
        "wal-reset-race-fixed" => last_written_by(d, 3_051_003),
        _ => d,
    };
    let truth = if name == "page-65536" {
        // Healthy and large: the sample is its own truth (saves ~1 MB in the repo).
        "db.sqlite3".to_string()
    } else {
        ctx.write_truth(&base.truth_file.clone(), &base.bytes)?;
        format!("../_truth/{}", base.truth_file)
    };
    finish(ctx, name, &dir, d, &base.layout, Some(truth), true)
}

/// Marks a database as in WAL mode (file format versions 2), as a cleanly closed WAL database
/// is: no -wal beside it.
fn set_wal_mode(db: &mut [u8]) {
    db[18] = 2;
    db[19] = 2;
}

/// Sets the header's last-writer version (offset 96), vouched for by setting
/// version-valid-for (offset 92) to the change counter (offset 24), and WAL mode.
fn last_written_by(mut d: Damaged, version: u32) -> Damaged {
    set_wal_mode(&mut d.db);
    let counter: [u8; 4] = d.db[24..28].try_into().unwrap();
    d.db[92..96].copy_from_slice(&counter);
    d.db[96..100].copy_from_slice(&version.to_be_bytes());
    let (major, minor, patch) = (version / 1_000_000, version / 1000 % 1000, version % 1000);
    d.description = format!(
        "{} Then marked as a WAL-mode database last written by SQLite {major}.{minor}.{patch} \
         (no -wal beside it).",
        d.description
    );
    d
}

fn zero_page(db: &mut [u8], page: u32, ps: u32) {
    db[page_range(page, ps)].fill(0);
}

fn write_unusable(ctx: &mut Ctx, name: &str, dir: &Path) -> Result<Sample> {
    let mut rng = ctx.rng(name);
    let d = if name == "empty-file" {
        Damaged::new(
            "A zero-byte file (SQLite opens it as an empty database with no tables).".into(),
            Vec::new(),
        )
    } else {
        let mut bytes = vec![0u8; 16 * 1024];
        rng.fill_bytes(&mut bytes);
        Damaged::new(
            "16 KiB of random bytes: no SQLite header, no pages.".into(),
            bytes,
        )
    };
    let empty = Layout {
        page_size: 0,
        page_count: 0,
        encoding: String::new(),
        btrees: Vec::new(),
        freelist_trunk: 0,
        freelist_count: 0,
    };
    finish(ctx, name, dir, d, &empty, None, false)
}

/// `healthy-unusual` ([`crate::unusual`]): nothing damaged; the truth is the file itself.
fn write_unusual(ctx: &mut Ctx, name: &str, dir: &Path) -> Result<Sample> {
    let path = ctx.tmp.path().join("healthy-unusual.sqlite3");
    if !path.exists() {
        crate::unusual::build(&path, ctx.seed)?;
    }
    let layout = read_layout(&path)?;
    let bytes = std::fs::read(&path)?;
    let truth = "healthy-unusual.sqlite3";
    ctx.write_truth(truth, &bytes)?;
    let d = Damaged::new(
        "None: a healthy database whose schema and data are unusual but valid (INTEGER \
         PRIMARY KEY DESC, repeated and collated WITHOUT ROWID keys, a CHECK table with \
         extreme rowids, columns named rowid/oid, tables named like the tool's own, invalid \
         UTF-8, generated columns): every row must come back exactly."
            .into(),
        bytes,
    );
    finish(
        ctx,
        name,
        dir,
        d,
        &layout,
        Some(format!("../_truth/{truth}")),
        true,
    )
}
