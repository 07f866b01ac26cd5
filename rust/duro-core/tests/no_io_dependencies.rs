//! duro-core is sans-IO: no PyO3, no files, sockets, threads or clocks. This is
//! checked here rather than by eye (`cargo tree -p duro-core`):
//!
//! - `Cargo.toml` may list only `thiserror` in any dependency table that ships with the
//!   crate (`[dependencies]`, `[build-dependencies]`, `[target.*.dependencies]`, and their
//!   `[dependencies.<name>]` forms); dev-dependencies (test and bench tools) are free;
//! - the crate has no build script;
//! - no source file under `src/` names a `std` module that does IO or keeps time.

use std::path::{Path, PathBuf};

const ALLOWED: &[&str] = &["thiserror"];

fn crate_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Whether a TOML table header (without brackets) holds dependencies that ship with the crate.
/// Returns the dependency name when the header is a `[dependencies.<name>]`-style table.
fn shipped_table(header: &str) -> Option<Option<String>> {
    let header = header.trim();
    // [target.'cfg(unix)'.dependencies] and friends: look at what follows the target spec.
    let rest = match header.strip_prefix("target.") {
        Some(after) => {
            let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"');
            let after_spec = match quote {
                Some(q) => after[1..]
                    .find(q)
                    .map(|end| &after[end + 2..])
                    .unwrap_or(""),
                None => after.find('.').map(|dot| &after[dot..]).unwrap_or(""),
            };
            after_spec.trim_start_matches('.')
        }
        None => header,
    };
    for table in ["dependencies", "build-dependencies", "build_dependencies"] {
        if rest == table {
            return Some(None);
        }
        if let Some(name) = rest.strip_prefix(table).and_then(|r| r.strip_prefix('.')) {
            return Some(Some(
                name.trim_matches(|c| c == '"' || c == '\'').to_string(),
            ));
        }
    }
    None
}

/// The names of every shipped dependency in a Cargo manifest (a small reader for the
/// subset of TOML manifests use: headers, `name = ...` and `name.key = ...` lines).
fn shipped_dependencies(manifest: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_table = false;
    for raw in manifest.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_start_matches('[').trim_end_matches(']');
            in_table = false;
            match shipped_table(header) {
                Some(Some(name)) => found.push(name),
                Some(None) => in_table = true,
                None => {}
            }
            continue;
        }
        if in_table {
            if let Some((key, _)) = line.split_once('=') {
                let name = key.split('.').next().unwrap_or("").trim().trim_matches('"');
                if !name.is_empty() {
                    found.push(name.to_string());
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn the_manifest_lists_only_thiserror() {
    let manifest = std::fs::read_to_string(crate_dir().join("Cargo.toml"))
        .expect("read duro-core's Cargo.toml");
    let deps = shipped_dependencies(&manifest);
    assert!(
        deps.iter().any(|d| d == "thiserror"),
        "the reader found no thiserror in {deps:?}: is it broken?"
    );
    let extra: Vec<&String> = deps
        .iter()
        .filter(|d| !ALLOWED.contains(&d.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "duro-core must stay sans-IO (no PyO3, no files, threads, sockets): its Cargo.toml ships {extra:?}; \
         put IO in duro-store/duro-engine and PyO3 in duro-py"
    );
    assert!(
        !manifest
            .lines()
            .any(|l| l.trim_start().starts_with("build")),
        "duro-core must not have a build script"
    );
    assert!(
        !crate_dir().join("build.rs").exists(),
        "duro-core must not have a build.rs"
    );
}

#[test]
fn the_manifest_reader_sees_every_shipped_table() {
    let manifest = r#"
[package]
name = "x"
[dependencies]
thiserror.workspace = true
pyo3 = { version = "0.22" }  # a comment
"serde" = "1"
[dev-dependencies]
proptest = "1"
[dependencies.rusqlite]
version = "0.31"
[target.'cfg(unix)'.dependencies]
libc = "0.2"
[target.x86_64-unknown-linux-gnu.dependencies.mio]
version = "1"
[build-dependencies]
cc = "1"
"#;
    assert_eq!(
        shipped_dependencies(manifest),
        [
            "cc",
            "libc",
            "mio",
            "pyo3",
            "rusqlite",
            "serde",
            "thiserror"
        ]
    );
}

#[test]
fn the_sources_do_no_io() {
    const FORBIDDEN: &[&str] = &[
        "std::fs",
        "std::net",
        "std::io",
        "std::thread",
        "std::process",
        "std::env",
        "std::time::SystemTime",
        "std::time::Instant",
        "std::os",
        "extern crate",
    ];
    let mut stack = vec![crate_dir().join("src")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files += 1;
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    for bad in FORBIDDEN {
                        assert!(
                            !code.contains(bad),
                            "{}:{}: duro-core is sans-IO but uses {bad}: {}",
                            path.display(),
                            n + 1,
                            line.trim()
                        );
                    }
                }
            }
        }
    }
    assert!(files > 5, "found only {files} source files");
}
