//! The man pages and shell completions that `generate` writes (issue 16): one page for each
//! subcommand that `--help` lists, naming every option that `--help` names, and rendering
//! with man(1); completion scripts that the shells parse.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use testbed::loopback::Binaries;

mod support;
use support::{output, stderr};

/// The subcommands a `--help` text lists under "Commands:", without clap's `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The `--long` options a `--help` text names.
fn long_options(help: &str) -> BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_alphanumeric())
                .to_string()
        })
        .collect()
}

fn help(bin: &Path, path: &[String]) -> String {
    let out = output(Command::new(bin).args(path).arg("--help"));
    assert!(out.status.success(), "{path:?} --help: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rendered(page: &Path) -> String {
    let out = output(
        Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(page)
            .env("MANWIDTH", "200"),
    );
    assert!(
        out.status.success(),
        "man -l {}: {}",
        page.display(),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Walks the subcommand tree of `bin` and checks its page for each node.
fn check_pages(
    bin: &Path,
    name: &str,
    dir: &Path,
    path: Vec<String>,
    pages: &mut BTreeSet<String>,
) {
    let help = help(bin, &path);
    let page_name = std::iter::once(name.to_string())
        .chain(path.iter().cloned())
        .collect::<Vec<_>>()
        .join("-");
    let page = dir.join(format!("{page_name}.1"));
    assert!(
        page.is_file(),
        "no man page {page_name}.1 for `{name} {}`",
        path.join(" ")
    );
    let text = rendered(&page);
    assert!(
        text.contains("NAME") && text.contains(&page_name),
        "{page_name}: {text}"
    );
    let about = help.lines().next().unwrap_or_default().trim();
    assert!(
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(about),
        "{page_name}.1 lacks the first line of --help {about:?}"
    );
    for option in long_options(&help) {
        assert!(
            text.contains(&option),
            "{page_name}.1 lacks {option}, which --help names"
        );
    }
    pages.insert(format!("{page_name}.1"));
    for sub in subcommands(&help) {
        let mut deeper = path.clone();
        deeper.push(sub);
        check_pages(bin, name, dir, deeper, pages);
    }
}

#[test]
fn every_subcommand_has_a_man_page_that_renders() {
    let bins = Binaries::locate().expect("binaries");
    for (name, bin) in [
        ("masa", &bins.masa),
        ("registrar", &bins.registrar),
        ("pledge", &bins.pledge),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = output(
            Command::new(bin)
                .args(["generate", "man", "--out"])
                .arg(dir.path()),
        );
        assert!(
            out.status.success(),
            "{name} generate man: {}",
            stderr(&out)
        );
        let mut expected = BTreeSet::new();
        check_pages(bin, name, dir.path(), Vec::new(), &mut expected);
        assert!(expected.len() > 3, "{name}: only {expected:?}");
        // Nothing beyond what --help lists: `generate` itself is hidden.
        let written: BTreeSet<String> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            written, expected,
            "{name}: pages written vs subcommands listed"
        );
        let root = rendered(&dir.path().join(format!("{name}.1")));
        assert!(
            root.contains(env!("CARGO_PKG_VERSION")),
            "{name}.1 names its version"
        );
    }
}

#[test]
fn completion_scripts_parse_and_name_the_subcommands() {
    let bins = Binaries::locate().expect("binaries");
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bin) in [("masa", &bins.masa), ("registrar", &bins.registrar)] {
        for shell in ["bash", "zsh", "fish"] {
            let out = output(
                Command::new(bin)
                    .args(["generate", shell, "--out"])
                    .arg(dir.path()),
            );
            assert!(
                out.status.success(),
                "{name} generate {shell}: {}",
                stderr(&out)
            );
        }
        let bash = dir.path().join(format!("{name}.bash"));
        let out = output(Command::new("bash").arg("-n").arg(&bash));
        assert!(
            out.status.success(),
            "bash -n {}: {}",
            bash.display(),
            stderr(&out)
        );
        let script = std::fs::read_to_string(&bash).expect("bash script");
        for sub in subcommands(&help(bin, &[])) {
            assert!(script.contains(&sub), "{name}.bash lacks {sub}");
        }
        assert!(script.contains("--config"), "{name}.bash lacks --config");
        assert!(dir.path().join(format!("_{name}")).is_file());
        assert!(dir.path().join(format!("{name}.fish")).is_file());
    }
    let out = output(
        Command::new(&bins.pledge)
            .args(["generate", "nroff", "--out"])
            .arg(dir.path()),
    );
    assert!(!out.status.success(), "an unknown kind is refused");
}
