//! The healthy base database: a Django-flavoured schema filled with seeded rows.
//!
//! Everything here is deterministic given the seed and the [`BaseSpec`]: the same
//! statements run in the same order against the same bundled SQLite give the same
//! bytes. Row contents never depend on the page size, encoding or auto-vacuum mode,
//! only on the seed and the scale.

use std::path::Path;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{params, Connection};

use crate::{Result, Scale};

/// The seed every committed sample is generated from.
pub const DEFAULT_SEED: u64 = 0x5153_4c49_5445_0005;

/// Text encoding of a base database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Utf8,
    Utf16le,
}

impl Encoding {
    /// The name SQLite's `PRAGMA encoding` uses.
    pub fn pragma_name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf16le => "UTF-16le",
        }
    }
}

/// How a base database is laid out on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseSpec {
    pub page_size: u32,
    pub encoding: Encoding,
    pub auto_vacuum_full: bool,
    pub scale: Scale,
    pub seed: u64,
}

impl BaseSpec {
    /// A short name used for the shared truth file, e.g. `small-p1024-utf8`.
    pub fn id(&self) -> String {
        let enc = match self.encoding {
            Encoding::Utf8 => "utf8",
            Encoding::Utf16le => "utf16le",
        };
        let av = if self.auto_vacuum_full {
            "-autovac"
        } else {
            ""
        };
        let seed = if self.seed == DEFAULT_SEED {
            String::new()
        } else {
            format!("-s{:x}", self.seed)
        };
        format!("{}-p{}-{enc}{av}{seed}", self.scale.name(), self.page_size)
    }
}

/// Row counts for one scale.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    pub migrations: usize,
    pub users: usize,
    pub checks: usize,
    pub events: usize,
    /// Events deleted at the end (a contiguous id range), leaving free pages.
    pub events_deleted: usize,
    pub attachments: usize,
    /// Largest attachment blob in bytes.
    pub attachment_max: usize,
    pub settings: usize,
    pub notes: usize,
}

impl Profile {
    pub fn for_scale(scale: Scale) -> Profile {
        match scale {
            Scale::Small => Profile {
                migrations: 40,
                users: 120,
                checks: 600,
                events: 1300,
                events_deleted: 120,
                attachments: 6,
                attachment_max: 5200,
                settings: 40,
                notes: 80,
            },
            Scale::Large => Profile {
                migrations: 40,
                users: 400,
                checks: 4000,
                events: 40_000,
                events_deleted: 3000,
                attachments: 30,
                attachment_max: 20_000,
                settings: 200,
                notes: 500,
            },
        }
    }
}

pub const SCHEMA: &str = r#"
CREATE TABLE "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL);
CREATE TABLE "auth_user" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "password" varchar(128) NOT NULL, "last_login" datetime NULL, "is_superuser" bool NOT NULL, "username" varchar(150) NOT NULL UNIQUE, "email" varchar(254) NOT NULL, "is_staff" bool NOT NULL, "date_joined" datetime NOT NULL);
CREATE TABLE "monitor_check" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "site_id" bigint NOT NULL, "status_code" integer NULL, "latency_ms" real NULL, "checked_at" datetime NOT NULL, "ok" bool NOT NULL, "error" text NULL);
CREATE TABLE event_log(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT, created REAL NOT NULL);
CREATE TABLE attachment(id INTEGER PRIMARY KEY, name TEXT, data BLOB);
CREATE TABLE kv_setting(key TEXT NOT NULL PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE audit_note(actor TEXT, note TEXT, at INTEGER);
"#;

pub const LATE_SCHEMA: &str = r#"
CREATE INDEX event_log_kind ON event_log(kind, created);
CREATE VIEW failed_checks AS SELECT id, site_id, status_code, error, checked_at FROM monitor_check WHERE ok = 0;
CREATE TRIGGER auth_user_audit AFTER UPDATE ON auth_user BEGIN INSERT INTO audit_note(actor, note, at) VALUES (NEW.username, 'auth_user ' || NEW.id || ' updated', 1700000000 + NEW.id); END;
"#;

/// First event id; ids are microsecond timestamps, so they take 8-byte varints and
/// interior pages of `event_log` fill quickly (depth 3 with few rows at 1 KiB pages).
const EVENT_ID_BASE: i64 = 1_700_000_000_000_000;
const EPOCH: i64 = 1_672_531_200; // 2023-01-01T00:00:00Z

fn datetime(secs: i64, micros: u32) -> String {
    // Civil-from-days (proleptic Gregorian), enough for Django-style timestamps.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn word(rng: &mut ChaCha8Rng, len: usize) -> String {
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHA[rng.random_range(0..ALPHA.len())] as char)
        .collect()
}

fn b64ish(rng: &mut ChaCha8Rng, len: usize) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len)
        .map(|_| ALPHA[rng.random_range(0..ALPHA.len())] as char)
        .collect()
}

/// Build the base database at `path` (which must not exist yet).
pub fn build_base(spec: &BaseSpec, path: &Path) -> Result<()> {
    let profile = Profile::for_scale(spec.scale);
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "page_size", spec.page_size)?;
    conn.pragma_update(None, "encoding", spec.encoding.pragma_name())?;
    conn.pragma_update(
        None,
        "auto_vacuum",
        if spec.auto_vacuum_full {
            "FULL"
        } else {
            "NONE"
        },
    )?;
    conn.pragma_update(None, "secure_delete", "OFF")?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    conn.execute_batch(SCHEMA)?;

    let tx = conn.transaction()?;
    {
        const APPS: [&str; 6] = [
            "contenttypes",
            "auth",
            "admin",
            "sessions",
            "monitor",
            "events",
        ];
        let mut st =
            tx.prepare("INSERT INTO django_migrations(app, name, applied) VALUES (?1, ?2, ?3)")?;
        for i in 0..profile.migrations {
            let app = APPS[i % APPS.len()];
            let name = format!("{:04}_{}", i / APPS.len() + 1, word(&mut rng, 10));
            let applied = datetime(EPOCH + i as i64 * 3600, rng.random_range(0..1_000_000));
            st.execute(params![app, name, applied])?;
        }
    }
    {
        let mut st = tx.prepare(
            "INSERT INTO auth_user(password, last_login, is_superuser, username, email, is_staff, date_joined) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for i in 0..profile.users {
            let password = format!(
                "pbkdf2_sha256$600000${}${}=",
                b64ish(&mut rng, 22),
                b64ish(&mut rng, 43)
            );
            let joined = EPOCH + i as i64 * 7_200 + rng.random_range(0..3600);
            let last_login: Option<String> = if rng.random_bool(0.2) {
                None
            } else {
                Some(datetime(
                    joined + rng.random_range(0..5_000_000),
                    rng.random_range(0..1_000_000),
                ))
            };
            let username = format!("{}{:04}", word(&mut rng, 6), i);
            let email = format!("{username}@{}.example", word(&mut rng, 5));
            st.execute(params![
                password,
                last_login,
                i < 3,
                username,
                email,
                i < 10 || rng.random_bool(0.05),
                datetime(joined, rng.random_range(0..1_000_000)),
            ])?;
        }
    }
    {
        const ERRORS: [&str; 4] = [
            "timeout after 30s",
            "connection refused",
            "TLS handshake failed: certificate expired",
            "DNS lookup failed",
        ];
        let mut st = tx.prepare(
            "INSERT INTO monitor_check(site_id, status_code, latency_ms, checked_at, ok, error) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for i in 0..profile.checks {
            let site: i64 = rng.random_range(1..=25);
            let roll: u32 = rng.random_range(0..100);
            let (status, latency, ok, error): (Option<i64>, Option<f64>, bool, Option<&str>) =
                match roll {
                    0..=7 => (None, None, false, Some(ERRORS[(roll % 4) as usize])),
                    8..=12 => (
                        Some(503),
                        Some(rng.random_range(1.0..30_000.0)),
                        false,
                        None,
                    ),
                    13..=15 => (Some(404), Some(rng.random_range(1.0..900.0)), false, None),
                    16..=18 => (Some(301), Some(rng.random_range(1.0..900.0)), true, None),
                    // A few whole-number latencies: REAL columns holding integral values.
                    19 => (
                        Some(200),
                        Some(f64::from(rng.random_range(5..90u32))),
                        true,
                        None,
                    ),
                    _ => (Some(200), Some(rng.random_range(5.0..900.0)), true, None),
                };
            let at = datetime(EPOCH + i as i64 * 60, rng.random_range(0..1_000_000));
            st.execute(params![site, status, latency, at, ok, error])?;
        }
    }
    {
        const KINDS: [&str; 6] = [
            "login",
            "logout",
            "page_view",
            "api_call",
            "error",
            "payment",
        ];
        let mut st = tx
            .prepare("INSERT INTO event_log(id, kind, payload, created) VALUES (?1, ?2, ?3, ?4)")?;
        for i in 0..profile.events {
            let id = EVENT_ID_BASE + i as i64 * 1_000_000 + rng.random_range(0..1_000_000);
            let kind = KINDS[rng.random_range(0..KINDS.len())];
            let payload: Option<String> = if rng.random_bool(0.05) {
                None
            } else {
                let user = rng.random_range(1..=profile.users);
                let dir = word(&mut rng, 5);
                let len = rng.random_range(3..20);
                let leaf = word(&mut rng, len);
                let ms = rng.random_range(1..5000);
                Some(format!(
                    r#"{{"user":{user},"path":"/{dir}/{leaf}","ms":{ms}}}"#
                ))
            };
            let created =
                (EPOCH + i as i64 * 17) as f64 + f64::from(rng.random_range(0..1000u32)) / 1000.0;
            st.execute(params![id, kind, payload, created])?;
        }
    }
    {
        const EXT: [&str; 4] = ["pdf", "png", "csv", "zip"];
        let mut st = tx.prepare("INSERT INTO attachment(id, name, data) VALUES (?1, ?2, ?3)")?;
        for i in 0..profile.attachments {
            // Sizes spread from a few hundred bytes (no overflow) up to the maximum.
            let size = if profile.attachments <= 1 {
                profile.attachment_max
            } else {
                300 + (profile.attachment_max - 300) * ((i * 7) % profile.attachments)
                    / (profile.attachments - 1)
            };
            let mut data = vec![0u8; size];
            rng.fill_bytes(&mut data);
            let name: Option<String> = if i % 5 == 4 {
                None
            } else {
                Some(format!("{}-{i}.{}", word(&mut rng, 8), EXT[i % EXT.len()]))
            };
            st.execute(params![i as i64 + 1, name, data])?;
        }
    }
    {
        let mut st = tx.prepare("INSERT INTO kv_setting(key, value) VALUES (?1, ?2)")?;
        for i in 0..profile.settings {
            let key = format!("{}.{}_{i:03}", word(&mut rng, 4), word(&mut rng, 6));
            match i % 4 {
                0 => st.execute(params![key, rng.random_range(-1000i64..1_000_000)])?,
                1 => st.execute(params![key, word(&mut rng, 12)])?,
                2 => st.execute(params![key, rng.random_range(0.0..1.0f64)])?,
                _ => st.execute(params![key, Option::<i64>::None])?,
            };
        }
    }
    {
        let mut st = tx.prepare("INSERT INTO audit_note(actor, note, at) VALUES (?1, ?2, ?3)")?;
        for i in 0..profile.notes {
            let actor: Option<String> = if i % 9 == 8 {
                None
            } else {
                Some(word(&mut rng, 7))
            };
            let note = format!("changed {} on {}", word(&mut rng, 6), word(&mut rng, 9));
            st.execute(params![actor, note, EPOCH + i as i64 * 97])?;
        }
    }
    tx.commit()?;
    conn.execute_batch(LATE_SCHEMA)?;

    // Deletions without VACUUM: gaps in rowids and free pages that still hold rows.
    let tx = conn.transaction()?;
    let first = profile.events * 2 / 5;
    tx.execute(
        "DELETE FROM event_log WHERE id IN (SELECT id FROM event_log ORDER BY id LIMIT ?1 OFFSET ?2)",
        params![profile.events_deleted as i64, first as i64],
    )?;
    tx.execute("DELETE FROM audit_note WHERE rowid % 7 = 3", [])?;
    tx.commit()?;
    drop(conn);
    Ok(())
}

/// The changes made in WAL mode for the wal-* samples, applied through `conn`.
/// Touches the `monitor_check` row `check_id` so that its leaf is rewritten in the WAL.
pub fn wal_transaction_a(conn: &Connection, scale: Scale, check_id: i64) -> Result<()> {
    let profile = Profile::for_scale(scale);
    let mut rng = ChaCha8Rng::seed_from_u64(0xA11CE);
    conn.execute_batch("BEGIN")?;
    {
        let mut st = conn.prepare(
            "INSERT INTO event_log(id, kind, payload, created) VALUES (?1, 'wal_insert', ?2, ?3)",
        )?;
        let n = 30.max(profile.events / 100);
        for i in 0..n {
            let id = EVENT_ID_BASE + 10_000_000_000 + i as i64 * 1000;
            let payload = format!(r#"{{"wal":{i},"note":"{}"}}"#, word(&mut rng, 16));
            st.execute(params![
                id,
                payload,
                (EPOCH + 9_000_000 + i as i64) as f64 + 0.5
            ])?;
        }
    }
    conn.execute(
        "UPDATE auth_user SET last_login = '2024-06-01 08:00:00.000000' WHERE id % 17 = 1",
        [],
    )?;
    conn.execute(
        "UPDATE monitor_check SET error = 'rechecked in WAL', ok = 0 WHERE id = ?1",
        [check_id],
    )?;
    conn.execute(
        "INSERT OR REPLACE INTO kv_setting(key, value) VALUES ('wal.marker', 'written in wal')",
        [],
    )?;
    conn.execute_batch("COMMIT")?;
    Ok(())
}

/// A second transaction, used as the torn tail of `wal-torn-tail`.
pub fn wal_transaction_b(conn: &Connection) -> Result<()> {
    conn.execute_batch("BEGIN")?;
    conn.execute(
        "INSERT INTO event_log(id, kind, payload, created) \
         SELECT id + 5000000000, 'torn', payload, created + 1 FROM event_log ORDER BY id LIMIT 200",
        [],
    )?;
    conn.execute("DELETE FROM monitor_check WHERE id % 3 = 0", [])?;
    conn.execute_batch("COMMIT")?;
    Ok(())
}
