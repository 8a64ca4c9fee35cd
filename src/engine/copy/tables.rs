//! Copying tables through SQLite: the whole database at once ([`vacuum`]), a table whose
//! pages read whole by the transfer path ([`transfer`]), a table put back together over its
//! surviving subtrees ([`repair`]).

use crate::engine::copy::{repair, transfer, vacuum, vfs};
use crate::engine::pages::PageStatus;
use crate::engine::report::{OrphanGroup, TableReport};
use crate::engine::schema::{SchemaEntry, SchemaKind, Table};
use crate::engine::walk::Walker;
use crate::engine::Engine;
use crate::error::Result;
use std::collections::HashSet;
use std::path::Path;

impl Engine<'_> {
    /// Copies the whole database with `VACUUM INTO` ([`vacuum`]): fills `copied` for every
    /// table it took (whole, or put back together) and says which it left to be taken one by
    /// one. `None`, with nothing claimed and `out` empty, when the tables must all be taken
    /// one by one.
    pub(crate) fn copy_database(
        &mut self,
        out: &Path,
        view: &vfs::Registration<'_>,
        walker: &Walker<'_>,
        tables: &[Table],
        entries: &[SchemaEntry],
        copied: &mut [Option<TableReport>],
    ) -> Result<Option<WholeCopy>> {
        let planned: Vec<vacuum::Planned<'_>> = tables
            .iter()
            .map(|t| {
                (
                    t,
                    self.map.owner_named(&t.name),
                    self.indexes_of(entries, &t.name),
                )
            })
            .collect();
        let Some(copy) = vacuum::try_database(
            out,
            view,
            walker,
            &mut self.map,
            &planned,
            entries,
            self.encoding,
        )?
        else {
            return Ok(None);
        };
        let mut whole = WholeCopy {
            reindex: copy.rebuild_indexes,
            ..WholeCopy::default()
        };
        for ((slot, (table, owner, indexes)), outcome) in
            copied.iter_mut().zip(&planned).zip(copy.outcomes)
        {
            let base = TableReport {
                name: table.name.clone(),
                owner: *owner,
                root_page: table.root,
                without_rowid: table.without_rowid,
                copied_intact: true,
                ..TableReport::default()
            };
            // Indexes walked beside the copy; a pruned table's were not (built again instead).
            let (report, indexes_walked) = match outcome {
                vacuum::Outcome::Left => {
                    whole.left.push(table.name.clone());
                    continue;
                }
                vacuum::Outcome::Whole(walked_rows) => (
                    TableReport {
                        walked_rows,
                        ..base
                    },
                    true,
                ),
                vacuum::Outcome::Pruned(walked_rows, holes) => {
                    whole.reindex.push(table.name.clone());
                    let report = TableReport {
                        walked_rows,
                        holes,
                        ..base
                    };
                    (report, false)
                }
                vacuum::Outcome::Rebuilt(r, walked_rows) => {
                    whole.groups.extend(r.groups);
                    let report = TableReport {
                        walked_rows,
                        attributed_rows: r.attributed_rows,
                        holes: r.holes,
                        ..base
                    };
                    (report, true)
                }
            };
            let names = indexes.iter().map(|(e, _)| e.name.clone());
            if indexes_walked {
                self.indexes_walked.extend(names.clone());
            }
            self.present.extend(names);
            whole.copied.insert(table.name.clone());
            *slot = Some(report);
        }
        self.present.extend(
            entries
                .iter()
                .filter(|e| e.kind == SchemaKind::View)
                .map(|e| e.name.clone()),
        );
        Ok(Some(whole))
    }

    /// Copies `table` by SQLite's transfer path if it and its indexes read whole; `None`
    /// when it must be walked and decoded row by row instead.
    pub(crate) fn transfer_table(
        &mut self,
        conn: &rusqlite::Connection,
        source: &transfer::Source,
        walker: &mut Walker<'_>,
        table: &Table,
        entries: &[SchemaEntry],
    ) -> Result<Option<TableReport>> {
        let owner = self.map.owner_named(&table.name);
        let indexes = self.indexes_of(entries, &table.name);
        let Some(done) =
            transfer::try_table(conn, source, walker, &mut self.map, owner, table, &indexes)?
        else {
            return Ok(None);
        };
        self.indexes_walked
            .extend(indexes.iter().map(|(e, _)| e.name.clone()));
        self.present.extend(done.indexes);
        Ok(Some(TableReport {
            name: table.name.clone(),
            owner,
            root_page: table.root,
            without_rowid: table.without_rowid,
            walked_rows: done.rows,
            copied_intact: true,
            ..TableReport::default()
        }))
    }

    /// The indexes of `table`, each with its owner in the page map.
    pub(crate) fn indexes_of<'e>(
        &mut self,
        entries: &'e [SchemaEntry],
        table: &str,
    ) -> Vec<(&'e SchemaEntry, u32)> {
        entries
            .iter()
            .filter(|e| e.is_index_of(table))
            .map(|e| (e, self.map.owner_named(&e.name)))
            .collect()
    }

    /// Walks every table not copied (so that only pages no tree reaches count as orphans),
    /// then puts back together, and copies, each one that lost interior pages only. The
    /// others get their pages back, to be decoded. Returns the orphan groups put back.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn repair_tables(
        &mut self,
        conn: &rusqlite::Connection,
        view: &vfs::Registration<'_>,
        source: &transfer::Source,
        walker: &mut Walker<'_>,
        tables: &[Table],
        entries: &[SchemaEntry],
        copied: &mut [Option<TableReport>],
    ) -> Result<Vec<OrphanGroup>> {
        let position = walker.progress().position();
        let mut walks = Vec::new();
        for (t, table) in tables.iter().enumerate() {
            if copied[t].is_some() || table.root == 0 {
                continue;
            }
            let owner = self.map.owner_named(&table.name);
            let cp = self.map.checkpoint();
            let (stats, readable) =
                walker.walk_whole(&mut self.map, owner, table.root, table, PageStatus::Tree)?;
            let log = self.map.changed_since(&cp);
            self.map.keep(cp);
            walks.push((t, owner, stats, readable, log));
        }
        let subtrees = repair::orphan_subtrees(walker, &self.map);
        let mut groups = Vec::new();
        let mut repaired = HashSet::new();
        for (t, owner, stats, readable, _) in &walks {
            let table = &tables[*t];
            if !readable {
                continue;
            }
            let indexes = self.indexes_of(entries, &table.name);
            let Some(r) = repair::try_table(
                conn,
                view,
                source,
                walker,
                &mut self.map,
                *owner,
                table,
                &indexes,
                stats,
                &subtrees,
            )?
            else {
                continue;
            };
            if r.indexes_walked {
                self.indexes_walked
                    .extend(indexes.iter().map(|(e, _)| e.name.clone()));
            }
            self.present.extend(r.indexes);
            copied[*t] = Some(TableReport {
                name: table.name.clone(),
                owner: *owner,
                root_page: table.root,
                without_rowid: table.without_rowid,
                walked_rows: stats.rows,
                attributed_rows: r.attributed_rows,
                copied_intact: true,
                holes: r.holes,
                ..TableReport::default()
            });
            groups.extend(r.groups);
            repaired.insert(*t);
        }
        // Tables not put back together are decoded as before: give their pages back.
        for (t, _, _, _, log) in walks {
            if !repaired.contains(&t) {
                self.map.release(&log);
            }
        }
        walker.progress().set_position(position);
        Ok(groups)
    }
}

/// What a whole copy ([`vacuum`]) did besides the tables it filled in.
#[derive(Default)]
pub(crate) struct WholeCopy {
    /// Tables it copied.
    pub(crate) copied: HashSet<String>,
    /// Tables it left to be taken one by one.
    pub(crate) left: Vec<String>,
    /// Orphan subtrees put back into tables it rebuilt.
    pub(crate) groups: Vec<OrphanGroup>,
    /// Indexes it left empty, to be built from the rows: those of tables it copied around lost
    /// pages (named by their table), and partial ones.
    pub(crate) reindex: Vec<String>,
}
