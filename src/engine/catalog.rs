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
    match pf.geometry().encoding {
        None => pf.set_encoding(encoding, Some("text encoding".to_string())),
        Some(stated) if stated != encoding => pf.set_encoding(
            encoding,
            Some(format!(
                "text encoding (the header says {}, the schema's text is {})",
                stated.pragma_name(),
                encoding.pragma_name()
            )),
        ),
        Some(_) => {}
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

/// Reads `sqlite_schema` from page 1's tree, skipping cells that do not decode. The text
/// encoding is the header's unless the schema's own text says otherwise: every schema row
/// starts with its type (`table`, `index`, ...), which reads one way in UTF-8 and another in
/// UTF-16, so a damaged encoding field in the header is caught here.
pub(crate) fn read_schema(
    pf: &PageFile,
    map: &mut Claims,
    bar: indicatif::ProgressBar,
) -> Result<(Vec<SchemaEntry>, TextEncoding, bool)> {
    let owner = map.owner_named("sqlite_schema");
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut walker = Walker::new(pf, bar, &interrupted);
    let fits = |_: Option<i64>, types: &[u64]| types.len() == 5;
    let stats = walker.walk(
        map,
        owner,
        1,
        TreeKind::Table,
        PageStatus::Tree,
        &fits,
        &mut |row: &RowRef<'_>| {
            records.push(row.payload.to_vec());
            Ok(())
        },
    )?;
    let encoding = schema_encoding(pf.geometry().encoding, &records);
    let mut fields = Vec::new();
    let mut entries = Vec::new();
    let mut undecoded = 0u64;
    for record in &records {
        let entry = crate::format::record::decode_fields(record, &mut fields)
            .ok()
            .and_then(|_| schema::entry_from_record(record, &fields, encoding));
        match entry {
            Some(e) => entries.push(e),
            None => undecoded += 1,
        }
    }
    let whole = stats.holes.is_empty() && stats.bad_cells == 0 && undecoded == 0;
    Ok((entries, encoding, whole))
}

/// The encoding the schema's rows are written in: what most of their type fields read as,
/// unless the header states one that none of them contradicts (or there are none).
fn schema_encoding(stated: Option<TextEncoding>, records: &[Vec<u8>]) -> TextEncoding {
    let mut fields = Vec::new();
    let mut votes: Vec<(TextEncoding, usize)> = Vec::new();
    for record in records {
        if crate::format::record::decode_fields(record, &mut fields).is_err() {
            continue;
        }
        let Some(crate::format::record::Value::Text(t)) = fields.first().map(|f| f.value(record))
        else {
            continue;
        };
        let sniffed = schema::sniff_encoding(t);
        match votes.iter_mut().find(|(e, _)| *e == sniffed) {
            Some((_, n)) => *n += 1,
            None => votes.push((sniffed, 1)),
        }
    }
    let most = votes.iter().max_by_key(|(_, n)| *n).map(|(e, _)| *e);
    match (stated, most) {
        (Some(s), Some(m)) if s != m && !votes.iter().any(|(e, _)| *e == s) => m,
        (Some(s), _) => s,
        (None, m) => m.unwrap_or(TextEncoding::Utf8),
    }
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
