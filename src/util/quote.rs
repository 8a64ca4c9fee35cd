//! Quoting for the two languages the tool writes: POSIX shell (the `Next:` lines) and SQL.

use std::path::Path;

/// A path as one POSIX shell word: as is when plainly safe, else in single quotes.
pub(crate) fn shell(path: &Path) -> String {
    let s = path.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// An SQL identifier, double-quoted.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL text literal, single-quoted.
pub(crate) fn text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(shell(Path::new("/srv/app.db")), "/srv/app.db");
        assert_eq!(shell(Path::new("/srv/my app.db")), "'/srv/my app.db'");
        assert_eq!(shell(Path::new("/srv/it's.db")), r"'/srv/it'\''s.db'");
        assert_eq!(shell(Path::new("")), "''");
    }

    #[test]
    fn sql_quoting() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(text("it's"), "'it''s'");
    }
}
