//! fuzzkit's campaign runner: [`Campaign`] runs a target on many inputs under [`Limits`],
//! catches panics on any thread, keeps the smallest input of each problem and reports; with
//! the run's settings ([`seed`], [`scaled`]) and the one-campaign-at-a-time lock
//! ([`exclusive`]).

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::counting_alloc::{LARGEST, LIVE, PEAK};
use super::problems::{byte_literal, matches_known, problem_key, report_campaign};

/// The seed of this run: `DURO_FUZZ_SEED` or a fixed default (CI is deterministic).
pub fn seed() -> u64 {
    std::env::var("DURO_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xD0_0F_22)
}

/// `default` scaled by `DURO_FUZZ_SCALE` (a float, default 1).
pub fn scaled(default: u64) -> u64 {
    let scale: f64 = std::env::var("DURO_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((default as f64) * scale).max(1.0) as u64
}

// ---------------------------------------------------------------------------------------
// Campaigns.

static ARMED: AtomicBool = AtomicBool::new(false);
static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// Held by a campaign for its whole run: panics and allocations are counted process-wide,
/// so a test binary runs one campaign at a time. Other tests of a binary that holds a
/// campaign take it too (their panics would be counted as the campaign's).
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|p| p.into_inner())
}
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static HOOK: std::sync::Once = std::sync::Once::new();

/// Panics (on any thread) while a campaign runs an input are recorded with their location
/// instead of printed; the campaign reports them with the input.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if ARMED.load(Ordering::SeqCst) {
                let thread = std::thread::current().name().unwrap_or("?").to_string();
                let message = match (
                    info.payload().downcast_ref::<&str>(),
                    info.payload().downcast_ref::<String>(),
                ) {
                    (Some(s), _) => s.to_string(),
                    (_, Some(s)) => s.clone(),
                    _ => "(non-string panic)".to_string(),
                };
                let location = info.location().map(|l| l.to_string()).unwrap_or_default();
                PANICS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!(
                        "thread '{thread}' panicked at {location}: {message}"
                    ));
                // The campaign reports it, with the input.
                return;
            }
            previous(info);
        }));
    });
}

/// Limits checked for every input.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// No single allocation (any thread) above this many bytes.
    pub largest_allocation: usize,
    /// Live heap may not grow by more than this while one input runs.
    pub peak_growth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            largest_allocation: 4 << 20,
            peak_growth: 16 << 20,
        }
    }
}

pub struct Failure {
    pub input: Vec<u8>,
    pub what: String,
    key: String,
    count: u64,
}

/// One target's run over many inputs.
pub struct Campaign {
    name: String,
    limits: Limits,
    inputs: u64,
    panics: u64,
    other_failures: u64,
    failures: Vec<Failure>,
    largest_seen: usize,
    peak_growth_seen: usize,
    bytes_tried: u64,
    started: Instant,
    /// Known, reported bugs: (what the problem says, regression test, inputs that hit it).
    known: Vec<(String, String, u64)>,
    _exclusive: std::sync::MutexGuard<'static, ()>,
}

impl Campaign {
    pub fn new(name: &str, limits: Limits) -> Campaign {
        let exclusive = exclusive();
        install_hook();
        Campaign {
            _exclusive: exclusive,
            name: name.to_string(),
            limits,
            inputs: 0,
            panics: 0,
            other_failures: 0,
            failures: Vec::new(),
            largest_seen: 0,
            peak_growth_seen: 0,
            bytes_tried: 0,
            started: Instant::now(),
            known: Vec::new(),
        }
    }

    /// A reported bug not fixed yet: a panic in source file `file` (as panic locations name
    /// it, e.g. `rust/duro-wal/src/recovery.rs`) at a line that contains `snippet` (so the
    /// entry survives edits elsewhere in the file). Such inputs are counted apart and do not
    /// fail the campaign (unless `DURO_FUZZ_STRICT=1`). `test` names the ignored regression
    /// test that reproduces it. Remove the entry with the fix.
    pub fn known_bug(mut self, file: &str, snippet: &str, test: &str) -> Campaign {
        self.known
            .push((format!("{file}|{snippet}"), test.to_string(), 0));
        self
    }

    /// Like [`Campaign::known_bug`] for a broken property that is not a panic: a problem
    /// whose text contains `text`.
    pub fn known_problem(mut self, text: &str, test: &str) -> Campaign {
        self.known.push((text.to_string(), test.to_string(), 0));
        self
    }

    pub fn inputs(&self) -> u64 {
        self.inputs
    }

    pub fn elapsed_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Runs `target` on `input`. The target returns `Err` for a broken property that is not
    /// a panic (e.g. an encode/decode round trip that does not hold).
    pub fn run(&mut self, input: &[u8], target: impl FnOnce(&[u8]) -> Result<(), String>) {
        self.inputs += 1;
        self.bytes_tried += input.len() as u64;
        PANICS.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let live_before = LIVE.load(Ordering::Relaxed);
        PEAK.store(live_before, Ordering::Relaxed);
        LARGEST.store(0, Ordering::Relaxed);
        ARMED.store(true, Ordering::SeqCst);
        let result = panic::catch_unwind(AssertUnwindSafe(|| target(input)));
        ARMED.store(false, Ordering::SeqCst);
        let largest = LARGEST.load(Ordering::Relaxed);
        let growth = PEAK.load(Ordering::Relaxed).saturating_sub(live_before);
        let panics = std::mem::take(&mut *PANICS.lock().unwrap_or_else(|p| p.into_inner()));
        let mut problems = Vec::new();
        let strict = std::env::var("DURO_FUZZ_STRICT").is_ok_and(|v| v == "1");
        // Known when every panic (on any thread) and the broken property, if any, is known.
        let mut reported: Vec<&str> = panics.iter().map(String::as_str).collect();
        if let Ok(Err(what)) = &result {
            reported.push(what);
        }
        let is_known = |p: &str| {
            self.known
                .iter()
                .any(|(pattern, _, _)| matches_known(p, pattern))
        };
        if !strict && !reported.is_empty() && reported.iter().all(|p| is_known(p)) {
            let first = reported[0].to_string();
            if let Some(known) = self
                .known
                .iter_mut()
                .find(|(pattern, _, _)| matches_known(&first, pattern))
            {
                known.2 += 1;
            }
            return;
        }
        if result.is_err() || !panics.is_empty() {
            self.panics += 1;
            if panics.is_empty() {
                problems.push("panicked".to_string());
            }
            problems.extend(panics);
        }
        if let Ok(Err(what)) = result {
            self.other_failures += 1;
            problems.push(what);
        }
        // (After a panic, the default hook of another thread may symbolize a backtrace:
        // megabytes that say nothing about the parser.)
        let panicked = !problems.is_empty();
        if !panicked {
            self.largest_seen = self.largest_seen.max(largest);
            self.peak_growth_seen = self.peak_growth_seen.max(growth);
        }
        if !panicked && largest > self.limits.largest_allocation {
            self.other_failures += 1;
            problems.push(format!(
                "allocated {largest} bytes at once (limit {})",
                self.limits.largest_allocation
            ));
        }
        if !panicked && growth > self.limits.peak_growth {
            self.other_failures += 1;
            problems.push(format!(
                "live heap grew by {growth} bytes (limit {})",
                self.limits.peak_growth
            ));
        }
        if !problems.is_empty() {
            let what = problems.join("; ");
            // Keep the smallest input of each distinct problem (its first line, without
            // numbers that vary from input to input).
            let key = problem_key(&what);
            let room = self.failures.len() < 20;
            match self.failures.iter_mut().find(|f| f.key == key) {
                Some(known) => {
                    known.count += 1;
                    if input.len() < known.input.len() {
                        known.input = input.to_vec();
                        known.what = what;
                    }
                }
                None if room => self.failures.push(Failure {
                    input: input.to_vec(),
                    what,
                    key,
                    count: 1,
                }),
                None => {}
            }
        }
    }

    /// Prints the summary line (and the failures) and fails if anything went wrong.
    pub fn finish(self) {
        let secs = self.elapsed_secs();
        // Written to the stdout handle, not with println!: the test harness captures
        // println! of passing tests, and CI must show how many inputs ran.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "fuzz {}: {} inputs, {} panics ({} other failures; {:.1} s, {:.0} inputs/s, {} input bytes; \
             largest allocation {} B, largest heap growth {} B)",
            self.name,
            self.inputs,
            self.panics,
            self.other_failures,
            secs,
            self.inputs as f64 / secs.max(1e-9),
            self.bytes_tried,
            self.largest_seen,
            self.peak_growth_seen,
        );
        let known_hits: u64 = self.known.iter().map(|k| k.2).sum();
        if known_hits > 0 {
            let _ = writeln!(
                out,
                "fuzz {}: {known_hits} more inputs hit known, reported bugs (not counted above; \
                 DURO_FUZZ_STRICT=1 counts them):",
                self.name
            );
            for (at, test, hits) in self.known.iter().filter(|k| k.2 > 0) {
                let at = at.replace('|', " at a line with ");
                let _ = writeln!(
                    out,
                    "    {hits} inputs: {at} (regression test {test}, ignored until fixed)"
                );
            }
        }
        drop(out);
        // Known bugs are not violations (they fail only with DURO_FUZZ_STRICT=1).
        report_campaign(&format!(
            "fuzz          {}: {} inputs, {} panics, {} other failures, {known_hits} inputs hit known bugs; \
             violations {}",
            self.name,
            self.inputs,
            self.panics,
            self.other_failures,
            self.panics + self.other_failures,
        ));
        if self.failures.is_empty() {
            return;
        }
        let dir = std::env::var("DURO_FUZZ_ARTIFACTS").unwrap_or_else(|_| {
            std::env::temp_dir()
                .join("duro-fuzz-artifacts")
                .to_string_lossy()
                .into_owned()
        });
        let _ = std::fs::create_dir_all(&dir);
        let mut report = String::new();
        for (i, f) in self.failures.iter().enumerate() {
            let path = format!("{dir}/{}-{i}.bin", self.name);
            let _ = std::fs::write(&path, &f.input);
            let mut literal = byte_literal(&f.input);
            if literal.len() > 3000 {
                literal.truncate(3000);
                literal.push_str("... (cut)");
            }
            report.push_str(&format!(
                "\n- {} ({} inputs like it)\n  smallest input ({} bytes, saved as {path}): {literal}\n",
                f.what,
                f.count,
                f.input.len()
            ));
        }
        panic!(
            "fuzz {}: {} failing inputs, {} distinct problems:{report}",
            self.name,
            self.failures.iter().map(|f| f.count).sum::<u64>(),
            self.failures.len()
        );
    }
}
