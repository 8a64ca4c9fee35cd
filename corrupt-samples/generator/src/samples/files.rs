//! Writing a sample's files and its expected.json.

use super::*;

pub(super) fn finish(
    ctx: &mut Ctx,
    name: &str,
    dir: &Path,
    d: Damaged,
    layout: &Layout,
    truth: Option<String>,
    usable: bool,
) -> Result<Sample> {
    let damaged = d.damaged.clone();
    finish_with(ctx, name, dir, d, layout, truth, usable, &damaged)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn finish_with(
    ctx: &mut Ctx,
    name: &str,
    dir: &Path,
    d: Damaged,
    layout: &Layout,
    truth: Option<String>,
    usable: bool,
    destroying: &BTreeSet<u32>,
) -> Result<Sample> {
    let mut files = vec!["db.sqlite3".to_string()];
    std::fs::write(dir.join("db.sqlite3"), &d.db)?;
    if let Some(wal) = &d.wal {
        std::fs::write(dir.join("db.sqlite3-wal"), wal)?;
        files.push("db.sqlite3-wal".into());
    }
    if let Some(shm) = &d.shm {
        std::fs::write(dir.join("db.sqlite3-shm"), shm)?;
        files.push("db.sqlite3-shm".into());
    }
    let destroyed = layout.destroyed(destroying);
    let tables: BTreeMap<String, TableExpected> = layout
        .tables()
        .map(|t| {
            let keys = destroyed.get(&t.name).cloned().unwrap_or_default();
            (
                t.name.clone(),
                TableExpected {
                    rows: t.rows.len() as u64,
                    destroyed: keys.len() as u64,
                    destroyed_keys: keys,
                },
            )
        })
        .collect();
    let expected = Expected {
        name: name.to_string(),
        damage: d.description,
        page_size: usable.then_some(layout.page_size),
        encoding: usable.then(|| layout.encoding.clone()),
        damaged_pages: d.damaged.iter().copied().collect(),
        truth: truth.clone(),
        tables,
        expect: Expect {
            usable,
            values_unknowable: d.values_unknowable,
        },
        files,
        target: d.target,
        scale: Some(ctx.scale),
        seed: Some(ctx.seed),
    };
    write_expected(dir, &expected)?;
    Ok(Sample {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        db: dir.join("db.sqlite3"),
        truth: truth.map(|t| crate::resolve(dir, &t)),
        expected,
    })
}

pub(super) fn write_expected(dir: &Path, e: &Expected) -> Result<()> {
    let mut text = serde_json::to_string_pretty(e)?;
    text.push('\n');
    std::fs::write(dir.join("expected.json"), text)?;
    Ok(())
}
