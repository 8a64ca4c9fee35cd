//! The schema phase: `sqlite_schema` read from page 1's tree with the engine's own decoder,
//! entries from `--schema-from` added, and what the entries mean as tables.

use crate::engine::pages::{Claims, PageStatus};
use crate::engine::report::Options;
use crate::engine::salvage::rebuilt::{rebuild_tables, RebuiltTable};
use crate::engine::schema::{self, SchemaEntry, SchemaKind, Table};
use crate::engine::stand_ins;
use crate::engine::walk::{RowRef, TreeKind, Walker};
use crate::engine::writer;
use crate::error::{Error, Result};
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use crate::util::interrupt::interrupted;
use std::collections::BTreeMap;
use std::path::Path;

/// The schema as read from page 1's tree (and `--schema-from`), and what it means.
pub(crate) struct Catalog {
    pub(crate) entries: Vec<SchemaEntry>,
    pub(crate) tables: Vec<Table>,
    /// Tables whose CREATE TABLE SQLite refuses, with why.
    pub(crate) refused: Vec<(SchemaEntry, String)>,
    /// The schema's tree read whole.
    pub(crate) whole: bool,
    /// Tables whose schema row was lost, given back their name by their indexes' rows.
    pub(crate) rebuilt: Vec<RebuiltTable>,
}

/// Schema phase: `sqlite_schema` read from page 1's tree, entries from `--schema-from` added
/// for tables whose rows were lost, and the text encoding settled.
pub(crate) fn read_catalog(
    pf: &mut PageFile,
    map: &mut Claims,
    options: &Options,
    bar: &indicatif::ProgressBar,
) -> Result<(Catalog, TextEncoding, Vec<String>)> {
    let (mut entries, encoding, whole) = read_schema(pf, map, bar.clone())?;
    if let Some(reference) = &options.schema_from {
        let extra = schema::reference_entries(reference, &entries)
            .map_err(|e| Error::unusable(reference, format!("cannot read its schema: {e}")))?;
        entries.extend(extra);
    }
    // After --schema-from: a table it gives back needs no rebuilding.
    let (extra, rebuilt) = rebuild_tables(pf, &entries);
    entries.extend(extra);
    if pf.geometry().encoding.is_none() {
        pf.set_encoding(encoding, true);
    }
    // Stand-ins for the application's collations and functions before SQLite reads the
    // tables' SQL (see stand_ins).
    stand_ins::install();
    let app_functions = stand_ins::functions_for(&entries);
    let (tables, refused) = schema::interpret(&entries, &app_functions.stand_ins);
    let catalog = Catalog {
        entries,
        tables,
        refused,
        whole,
        rebuilt,
    };
    Ok((catalog, encoding, app_functions.all))
}

/// Reads `sqlite_schema` from page 1's tree, skipping cells that do not decode.
pub(crate) fn read_schema(
    pf: &PageFile,
    map: &mut Claims,
    bar: indicatif::ProgressBar,
) -> Result<(Vec<SchemaEntry>, TextEncoding, bool)> {
    let owner = map.owner_named("sqlite_schema");
    let mut encoding = pf.geometry().encoding;
    let mut entries = Vec::new();
    let mut walker = Walker::new(pf, bar, &interrupted);
    let fits = |_: Option<i64>, types: &[u64]| types.len() == 5;
    let mut undecoded = 0u64;
    let stats = walker.walk(
        map,
        owner,
        1,
        TreeKind::Table,
        PageStatus::Tree,
        &fits,
        &mut |row: &RowRef<'_>| {
            let enc = *encoding.get_or_insert_with(|| match row.fields.first() {
                Some(f) => match f.value(row.payload) {
                    crate::format::record::Value::Text(t) => schema::sniff_encoding(t),
                    _ => TextEncoding::Utf8,
                },
                None => TextEncoding::Utf8,
            });
            match schema::entry_from_record(row.payload, row.fields, enc) {
                Some(e) => entries.push(e),
                None => undecoded += 1,
            }
            Ok(())
        },
    )?;
    let whole = stats.holes.is_empty() && stats.bad_cells == 0 && undecoded == 0;
    Ok((entries, encoding.unwrap_or(TextEncoding::Utf8), whole))
}

/// The names the engine gives its own tables when it recovers `db` (see
/// [`writer::SideNames`]): decided by the source's schema alone.
pub(crate) fn side_table_names(db: &Path) -> Result<writer::SideNames> {
    let pf = PageFile::open(db)?;
    let mut map = Claims::new(pf.page_count());
    let (entries, _, _) = read_schema(&pf, &mut map, indicatif::ProgressBar::hidden())?;
    Ok(writer::SideNames::free_in(
        entries.iter().map(|e| e.name.as_str()),
    ))
}

/// Root page → table name, from the schema as the engine reads it (SQLite need not agree).
pub(crate) fn schema_roots(db: &Path) -> Result<BTreeMap<i64, String>> {
    let pf = PageFile::open(db)?;
    let mut map = Claims::new(pf.page_count());
    let (entries, _, _) = read_schema(&pf, &mut map, indicatif::ProgressBar::hidden())?;
    Ok(entries
        .into_iter()
        .filter(|e| e.kind == SchemaKind::Table)
        .map(|e| (e.rootpage, e.name))
        .collect())
}
