use sqlite_rescue::recover::{recover, Options};
use std::path::Path;

#[test]
#[ignore]
fn probe() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scale = std::env::var("SCALE").unwrap_or_default();
    let tmp = tempfile::tempdir().unwrap();
    let samples = if scale == "large" {
        corrupt_samples::generate_all(&tmp.path().join("gen"), corrupt_samples::Scale::Large)
            .unwrap()
    } else {
        corrupt_samples::committed_samples(root).unwrap()
    };
    for s in samples {
        let work = tmp.path().join(&s.name);
        let db = s.copy_to(&work).unwrap();
        let out = work.join("out.db");
        match recover(&db, &out, &Options::default()) {
            Err(e) => println!("{:24} ERROR {e}", s.name),
            Ok(r) => {
                let Some(truth) = &s.truth else {
                    println!("{:24} no truth; ok", s.name);
                    continue;
                };
                let sc = corrupt_samples::score(truth, &out).unwrap();
                let ceiling: u64 = s
                    .expected
                    .tables
                    .values()
                    .map(|t| t.rows - t.destroyed)
                    .sum();
                println!(
                    "{:24} in_place {:5}/{:5} ceiling {:5} laf {:4} (unmatched {:4}) wrong {} spurious {} dup {} integrity {}",
                    s.name, sc.total_in_place(), sc.total_truth_rows(), ceiling,
                    sc.tables.iter().map(|t| t.in_lost_and_found).sum::<u64>(), sc.lost_and_found_unmatched,
                    sc.tables.iter().map(|t| t.wrong_table).sum::<u64>(), sc.total_spurious(), r.duplicate_rows, r.integrity_ok()
                );
                for t in &sc.tables {
                    let c = s.expected.ceiling(&t.table).unwrap_or(0);
                    if t.in_place < c || t.spurious > 0 {
                        println!(
                            "    {:20} in_place {} ceiling {} laf {} spurious {} missing {}",
                            t.table, t.in_place, c, t.in_lost_and_found, t.spurious, t.missing
                        );
                    }
                }
            }
        }
    }
}

#[test]
#[ignore]
fn probe_bitflips() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let s = corrupt_samples::load_sample(&root.join("corrupt-samples/bit-flips")).unwrap();
    let db = s.copy_to(&tmp.path().join("w")).unwrap();
    let out = tmp.path().join("out.db");
    let r = recover(&db, &out, &Options::default()).unwrap();
    let sc = corrupt_samples::score(s.truth.as_ref().unwrap(), &out).unwrap();
    for t in &sc.tables {
        let rt = r.tables.iter().find(|x| x.name == t.table).unwrap();
        println!(
            "{:20} spurious {:3} suspect_rows {:4} pages {:?} bad {}",
            t.table, t.spurious, rt.suspect_rows, rt.suspect_pages, rt.bad_cells
        );
    }
    println!("{:?}", s.expected.damaged_pages);
}
