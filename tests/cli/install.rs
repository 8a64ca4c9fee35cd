//! What installing gives the user besides the command: `--version` with the bundled SQLite,
//! the exit codes in `--help`, shell completions and a man page generated from the same
//! definitions as the parser.

use crate::common::cmd;

fn stdout_of(args: &[&str]) -> String {
    let out = cmd().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_names_the_bundled_sqlite() {
    let v = stdout_of(&["--version"]);
    let expected = format!("(SQLite {} bundled)", rusqlite::version());
    assert!(v.contains(&expected), "{v}");
}

#[test]
fn help_lists_every_exit_code() {
    let help = stdout_of(&["--help"]);
    for code in ["0 ", "1 ", "2 ", "3 ", "4 ", "5 ", "6 ", "130 "] {
        assert!(
            help.contains(&format!("\n  {code}")),
            "exit code {code} missing:\n{help}"
        );
    }
    assert!(help.contains("NO_COLOR"));
}

#[test]
fn completions_know_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        for sub in [
            "check",
            "snapshot",
            "recover",
            "lost",
            "diff",
            "restore",
            "report",
            "incidents",
        ] {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
    }
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH sqlite-rescue 1"),
        "{page}"
    );
    assert!(page.contains(".TH sqlite-rescue 1"));
    for sub in ["check", "recover", "restore"] {
        assert!(page.contains(sub), "man page lacks {sub}");
    }
}

#[test]
fn no_color_output_has_no_escape_codes() {
    let out = cmd()
        .env("NO_COLOR", "1")
        .args(["recover", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !out.stderr.contains(&0x1b),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}
