//! The snapshot's own tests: one pass, hashes, and nothing left behind on a failure.

use super::*;

fn opts() -> SnapshotOptions {
    SnapshotOptions {
        allow_changing: false,
        progress: Progress::HIDDEN,
        durable: true,
    }
}

#[test]
fn copies_and_hashes_in_one_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("a.db");
    std::fs::write(&db, b"hello").unwrap();
    std::fs::write(sidecar(&db, "-journal"), b"j").unwrap();
    let into = tmp.path().join("x/y/snap");
    let m = take(&db, &into, &opts()).unwrap();
    assert_eq!(m.files.len(), 2);
    assert_eq!(m.files[0].role, "db");
    assert_eq!(m.files[1].name, "a.db-journal");
    assert_eq!(
        m.files[0].sha256,
        hex::encode(Sha256::digest(b"hello").as_slice())
    );
    assert_eq!(
        m.db_path(),
        crate::util::paths::resolved(&into).join("a.db")
    );
    assert!(into.join(MANIFEST_NAME).is_file());
    let mode = std::fs::metadata(into.join("a.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444);
}

/// A private snapshot (not synced) holds the same bytes, hashes and manifest as a durable one.
#[test]
fn a_snapshot_not_synced_is_the_same_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("a.db");
    let bytes: Vec<u8> = (0..3 * CHUNK + 17)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    std::fs::write(&db, &bytes).unwrap();
    std::fs::write(sidecar(&db, "-wal"), b"wal bytes").unwrap();
    let durable = take(&db, &tmp.path().join("durable"), &opts()).unwrap();
    let private = SnapshotOptions {
        durable: false,
        ..opts()
    };
    let quick = take(&db, &tmp.path().join("quick"), &private).unwrap();
    let hashes = |m: &Manifest| -> Vec<(String, u64, String)> {
        m.files
            .iter()
            .map(|f| (f.name.clone(), f.size, f.sha256.clone()))
            .collect()
    };
    assert_eq!(hashes(&quick), hashes(&durable));
    assert_eq!(std::fs::read(quick.db_path()).unwrap(), bytes);
    assert!(tmp.path().join("quick").join(MANIFEST_NAME).is_file());
}

/// Sealed behind the caller, a snapshot ends as the same snapshot: the same copies and
/// hashes, and a manifest on the disk once it is finished or dropped.
#[test]
fn a_snapshot_sealed_behind_is_the_same_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("a.db");
    let bytes: Vec<u8> = (0..2 * CHUNK + 5)
        .map(|i| u8::try_from(i % 241).unwrap())
        .collect();
    std::fs::write(&db, &bytes).unwrap();
    std::fs::write(sidecar(&db, "-wal"), b"wal bytes").unwrap();
    let now = take(&db, &tmp.path().join("now"), &opts()).unwrap();
    let listed = |m: &Manifest| -> Vec<(String, u64, String)> {
        m.files
            .iter()
            .map(|f| (f.name.clone(), f.size, f.sha256.clone()))
            .collect()
    };
    for finish in [true, false] {
        let into = tmp.path().join(format!("behind-{finish}"));
        let (manifest, sealing) = take_sealing_behind(&db, &into, &opts()).unwrap();
        assert_eq!(std::fs::read(manifest.db_path()).unwrap(), bytes);
        if finish {
            sealing.finish().unwrap();
        } else {
            drop(sealing);
        }
        let on_disk: Manifest =
            serde_json::from_slice(&std::fs::read(into.join(MANIFEST_NAME)).unwrap()).unwrap();
        assert_eq!(listed(&on_disk), listed(&now));
        assert_eq!(listed(&manifest), listed(&now));
    }
}

/// A seal that fails writes no manifest and removes the copies: no folder looks finished.
#[test]
fn a_failed_seal_leaves_no_manifest_and_no_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("a.db");
    std::fs::write(&db, b"hello").unwrap();
    let into = tmp.path().join("snap");
    let (mut manifest, guard) =
        copy_set(&db, &into, &opts(), false, &|file| Box::new(file)).unwrap();
    assert!(into.join("a.db").is_file());
    // A copy that cannot be synced (gone, here) fails the seal.
    manifest.files.push(ManifestFile {
        name: "a.db-wal".into(),
        ..manifest.files[0].clone()
    });
    assert!(seal::seal(&into, &manifest, guard, Sync::Everything).is_err());
    assert!(!into.join(MANIFEST_NAME).exists());
    assert!(!into.join("a.db").exists());
}

/// Reads like the file it wraps until `left` bytes have gone by, then fails as a disk
/// with a bad sector would (EIO).
struct FailingReader<'f> {
    inner: &'f File,
    left: usize,
}

impl Read for FailingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n;
        Ok(n)
    }
}

/// Reads the file of `len` bytes through a reader that fails after `left` bytes, and
/// every other file as it is.
fn failing_after(left: usize, len: u64) -> impl for<'f> Fn(&'f File) -> Box<dyn Read + 'f> {
    move |inner| {
        let left = match inner.metadata() {
            Ok(m) if m.len() == len => left,
            _ => usize::MAX,
        };
        Box::new(FailingReader { inner, left })
    }
}

#[test]
fn a_read_error_part_way_leaves_no_manifest_and_no_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("a.db");
    // Three chunks of database and a WAL; the failure is put in one or the other.
    let body: Vec<u8> = (0..3 * CHUNK + 123)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    std::fs::write(&db, &body).unwrap();
    std::fs::write(sidecar(&db, "-wal"), &body[..5000]).unwrap();
    let before = std::fs::read(&db).unwrap();
    let wal_before = std::fs::read(sidecar(&db, "-wal")).unwrap();
    let wal_len = 5000u64;
    let cases = [
        (0, before.len() as u64),
        (4096, before.len() as u64),
        (CHUNK + 17, before.len() as u64),
        (3 * CHUNK, before.len() as u64),
        (0, wal_len),
        (4999, wal_len),
    ];
    for (n, (fail_after, fail_len)) in cases.into_iter().enumerate() {
        for (label, into) in [
            ("new folder", tmp.path().join(format!("new-{n}/snap"))),
            ("empty folder", tmp.path().join(format!("empty-{n}"))),
        ] {
            if label == "empty folder" {
                std::fs::create_dir(&into).unwrap();
            }
            let fail = failing_after(fail_after, fail_len);
            let err = take_reading(&db, &into, &opts(), &fail).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::FAILED, "{err}");
            assert!(
                matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(libc::EIO)),
                "{err}"
            );
            match label {
                "new folder" => assert!(
                    !tmp.path().join(format!("new-{n}")).exists(),
                    "the folders made for the snapshot are removed again"
                ),
                _ => assert_eq!(
                    std::fs::read_dir(&into).unwrap().count(),
                    0,
                    "{label}, failing after {fail_after} bytes: something was left"
                ),
            }
        }
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert_eq!(std::fs::read(sidecar(&db, "-wal")).unwrap(), wal_before);
    // A reader that does not fail gives the same snapshot as `take`.
    let pass = failing_after(0, u64::MAX);
    let m = take_reading(&db, &tmp.path().join("ok"), &opts(), &pass).unwrap();
    assert_eq!(m.files.len(), 2);
    assert!(tmp.path().join("ok").join(MANIFEST_NAME).is_file());
}

#[test]
fn refuses_non_empty_dir_and_cleans_up_created_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("a.db");
    std::fs::write(&db, b"hello").unwrap();
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    assert!(matches!(take(&db, &full, &opts()), Err(Error::Refused(_))));
    // A symlinked sidecar is refused, and the folders made for it are removed again.
    std::os::unix::fs::symlink(&full, sidecar(&db, "-wal")).unwrap();
    let into = tmp.path().join("new/snap");
    assert!(matches!(take(&db, &into, &opts()), Err(Error::Refused(_))));
    assert!(!tmp.path().join("new").exists());
}
