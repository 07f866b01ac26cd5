//! Runs a target on input files without AFL: reproduce a crash, triage a crash directory,
//! write the seed corpus.
//!
//! ```text
//! replay <target> <file or directory>...    run each input: ok, KNOWN (a reported bug, see
//!                                           KNOWN_BUGS in src/lib.rs) or FAILED (new)
//! replay --corpus <dir>                     write every target's seeds to <dir>/<target>/
//! replay --list                             the targets
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use duro_fuzz::fuzzkit::CountingAlloc;
use std::sync::Mutex;

use duro_fuzz::{check, known_bug, seeds, TARGETS};

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn inputs(paths: &[String]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        let path = PathBuf::from(path);
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&path)
                .expect("read the directory")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != "README.txt"))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path);
        }
    }
    files
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rust/duro-wal/tests/fixtures");
    match args.first().map(String::as_str) {
        Some("--list") => {
            for (name, what) in TARGETS {
                println!("{name:14} {what}");
            }
            ExitCode::SUCCESS
        }
        Some("--corpus") if args.len() == 2 => {
            for (name, _) in TARGETS {
                let dir = Path::new(&args[1]).join(name);
                std::fs::create_dir_all(&dir).expect("create the corpus directory");
                let seeds = seeds(name, &fixtures);
                for (i, seed) in seeds.iter().enumerate() {
                    std::fs::write(dir.join(format!("seed-{i:04}")), seed).expect("write a seed");
                }
                println!("{name}: {} seeds in {}", seeds.len(), dir.display());
            }
            ExitCode::SUCCESS
        }
        Some(target) if args.len() >= 2 && TARGETS.iter().any(|(n, _)| *n == target) => {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let message = match (
                    info.payload().downcast_ref::<&str>(),
                    info.payload().downcast_ref::<String>(),
                ) {
                    (Some(s), _) => s.to_string(),
                    (_, Some(s)) => s.clone(),
                    _ => String::new(),
                };
                let location = info.location().map(|l| l.to_string()).unwrap_or_default();
                PANICS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("panicked at {location}: {message}"));
                previous(info);
            }));
            let (mut known, mut new) = (0, 0);
            let files = inputs(&args[1..]);
            for file in &files {
                let data = std::fs::read(file).expect("read an input");
                PANICS.lock().unwrap_or_else(|p| p.into_inner()).clear();
                let outcome = std::panic::catch_unwind(|| check(target, &data));
                let panics = std::mem::take(&mut *PANICS.lock().unwrap_or_else(|p| p.into_inner()));
                match outcome {
                    Ok(()) if panics.is_empty() => println!("ok      {}", file.display()),
                    _ => {
                        // Known when every panic (a broken property panics too) is a known bug.
                        let tests: Vec<Option<&str>> =
                            panics.iter().map(|p| known_bug(target, p)).collect();
                        if !tests.is_empty() && tests.iter().all(Option::is_some) {
                            known += 1;
                            println!(
                                "KNOWN   {} (bug with regression test {})",
                                file.display(),
                                tests[0].unwrap()
                            );
                        } else {
                            new += 1;
                            println!("FAILED  {}: {}", file.display(), panics.join("; "));
                        }
                    }
                }
            }
            println!(
                "replay {target}: {} inputs, {new} new failures, {known} known bugs",
                files.len()
            );
            if new == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!(
                "usage: replay <target> <file or dir>... | replay --corpus <dir> | replay --list"
            );
            ExitCode::from(2)
        }
    }
}
