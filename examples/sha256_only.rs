//! SHA-256 of a file alone, the floor under `sqlite-rescue snapshot`: `sha256_only FILE`.
//!
//! Reads in 1 MiB chunks and hashes on a second thread, as the snapshot does, but writes
//! nothing. Prints the digest.

use sha2::{Digest, Sha256};
use std::io::Read;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: sha256_only FILE");
        std::process::exit(2);
    };
    match hash(&path) {
        Ok(digest) => println!("{digest}  {path}"),
        Err(e) => {
            eprintln!("sha256_only: {path}: {e}");
            std::process::exit(3);
        }
    }
}

fn hash(path: &str) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let hasher = std::thread::spawn(move || {
        let mut h = Sha256::new();
        for chunk in rx {
            h.update(&chunk);
        }
        h.finalize()
    });
    loop {
        let mut buf = vec![0u8; 1 << 20];
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        if tx.send(buf).is_err() {
            break;
        }
    }
    drop(tx);
    let digest = hasher
        .join()
        .map_err(|_| std::io::Error::other("hashing failed"))?;
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}
