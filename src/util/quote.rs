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

/// How to run this tool in a printed command: `sqlite-rescue` when that name on `PATH` is
/// this very program, else the program's own path (quoted), so the line works when pasted,
/// e.g. under `sudo` whose `PATH` lacks `~/.cargo/bin`, or for a build run from its folder.
pub(crate) fn tool_command() -> String {
    const NAME: &str = "sqlite-rescue";
    let Ok(exe) = std::env::current_exe() else {
        return NAME.to_string();
    };
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(NAME))
            .any(|candidate| same_file(&candidate, &exe))
    });
    if on_path {
        NAME.to_string()
    } else {
        shell(&exe)
    }
}

fn same_file(candidate: &Path, exe: &Path) -> bool {
    std::fs::canonicalize(candidate).is_ok_and(|c| c == exe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell(Path::new("/srv/app.db")), "/srv/app.db");
        assert_eq!(shell(Path::new("/srv/my app.db")), "'/srv/my app.db'");
        assert_eq!(shell(Path::new("/srv/it's.db")), r"'/srv/it'\''s.db'");
        assert_eq!(shell(Path::new("")), "''");
    }

    #[test]
    fn the_tool_is_named_so_the_line_runs() {
        let tool = tool_command();
        assert!(tool == "sqlite-rescue" || tool.starts_with('/') || tool.starts_with('\''));
    }

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
