//! Keeps docs and code honest (rust-analyzer's tidy idea): module docs, README/ARCHITECTURE coverage, no committed keys.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "src", "tests"] {
        rust_files(&root().join(dir), &mut files);
    }
    let missing: Vec<_> =
        files.iter().filter(|path| !std::fs::read_to_string(path).unwrap().trim_start().starts_with("//!")).collect();
    assert!(missing.is_empty(), "files without a leading //! line: {missing:#?}");
}

#[test]
fn readme_and_architecture_cover_every_crate_and_command() {
    let readme = read("README.md");
    let architecture = read("ARCHITECTURE.md");
    for krate in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        let name = krate.file_name().to_string_lossy().into_owned();
        assert!(readme.contains(&format!("`{name}`")), "README.md does not mention {name}");
        assert!(architecture.contains(&format!("crates/{name}")), "ARCHITECTURE.md does not map crates/{name}");
    }
    for command in ["validate", "diagnose", "send", "preview", "connect google", "events"] {
        assert!(readme.contains(&format!("mailroom {command}")), "README.md does not show `mailroom {command}`");
    }
    assert!(readme.contains("cargo xtask demo"), "README.md must show the main command");
    let ci = read(".ci/run");
    assert!(ci.contains("cargo test --workspace --all-features"), ".ci/run must run the README's test command");
    assert!(readme.contains("cargo test --workspace --all-features"), "README.md must show the test command");
}

#[test]
fn xtask_tasks_are_documented() {
    let main = read("xtask/src/main.rs");
    let readme = read("README.md");
    let help = main.split("Tasks:").nth(1).and_then(|rest| rest.split("\";").next()).unwrap_or_default();
    // A task line is indented by exactly two spaces; deeper lines continue the one above.
    for line in help.lines().filter(|l| l.starts_with("  ") && !l.starts_with("   ")) {
        let task = line.split_whitespace().next().unwrap();
        assert!(readme.contains(&format!("cargo xtask {task}")), "README.md does not mention `cargo xtask {task}`");
    }
}

#[test]
fn no_private_key_is_committed() {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "src", "tests", "fixtures"] {
        let mut stack = vec![root().join(dir)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    stack.push(entry.path());
                } else {
                    files.push(entry.path());
                }
            }
        }
    }
    let marker = ["-----BEGIN", " PRIVATE KEY-----"];
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let has_key = text.lines().any(|l| l.starts_with(marker[0]) && l.ends_with(marker[1]));
        assert!(!has_key, "{} holds a private key: generate it at test time", file.display());
    }
}
