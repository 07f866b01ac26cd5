//! fuzzkit: the dependency-free part of duro's fuzzing, shared by the bounded fuzz tests
//! in each crate's `tests/fuzz_*.rs` (included with `#[path]`) and by the AFL targets in
//! `fuzz/` (see `fuzz/README.md`).
//!
//! - [`Rng`]: SplitMix64, deterministic for a seed.
//! - [`mutate`]: stacked byte-level mutations of a valid encoding (bit flips, byte
//!   inserts/deletes, truncation, splicing, length-field corruption, huge varints).
//! - [`crc32c`]: software CRC32C (Castagnoli), to build frames with valid checksums
//!   without depending on a crate.
//! - [`CountingAlloc`] and [`Campaign`]: run a parser on many inputs, catch panics (on any
//!   thread), measure allocations per input, print `fuzz <target>: <n> inputs, <p> panics`,
//!   and fail with the offending input as a Rust byte string, ready for a regression test.
//!
//! Environment: `DURO_FUZZ_SEED` (u64) changes the seed, `DURO_FUZZ_SCALE` (a float,
//! default 1) multiplies the number of inputs: `DURO_FUZZ_SCALE=100` in release mode is a
//! long, coverage-less run.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

// ---------------------------------------------------------------------------------------
// Random numbers.

/// SplitMix64: tiny, fast, good enough to drive mutations, identical everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6A09_E667_F3BC_C908)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        (self.next_u64() % 100) < percent as u64
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A value that is often small, sometimes interesting, sometimes anything.
    pub fn number(&mut self) -> u64 {
        match self.below(4) {
            0 => self.below(16) as u64,
            1 => *self.pick(&INTERESTING),
            2 => self.next_u64() >> self.below(64),
            _ => self.next_u64(),
        }
    }
}

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
// Encodings.

pub const INTERESTING: [u64; 20] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x3fff,
    0x4000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    (i64::MAX as u64) - 1,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

/// Unsigned LEB128, as the journal codec and the store's record framing write it.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn varint(value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, value);
    out
}

/// A varint meant to break a reader: the largest values, overlong and overflowing forms,
/// unterminated runs of continuation bytes.
pub fn huge_varint(rng: &mut Rng) -> Vec<u8> {
    match rng.below(9) {
        0 => varint(u64::MAX),
        1 => vec![0xff; 10],
        2 => [vec![0xff; 9], vec![0x01]].concat(),
        3 => [vec![0xff; 9], vec![0x02]].concat(),
        4 => [vec![0x80; 9], vec![0x00]].concat(),
        5 => vec![0x80; 1 + rng.below(16)],
        6 => vec![0xff; 11 + rng.below(8)],
        7 => varint(u64::MAX >> rng.below(64)),
        _ => varint(*rng.pick(&INTERESTING)),
    }
}

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC32C (Castagnoli), the checksum of duro's log frames and index rows.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c_append(0, bytes)
}

/// Continues a CRC32C over more bytes (same convention as the `crc32c` crate).
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    let mut crc = !crc;
    for &b in bytes {
        crc = CRC32C_TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

// ---------------------------------------------------------------------------------------
// Mutations.

/// Applies 1 to 8 stacked mutations to `data`, then cuts it to `max_len`. `others` are
/// inputs to splice from (valid encodings of other kinds).
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>], max_len: usize) {
    let most = if rng.chance(20) { 8 } else { 3 };
    let rounds = 1 + rng.below(most);
    for _ in 0..rounds {
        mutate_once(rng, data, others);
    }
    data.truncate(max_len);
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    let len = data.len();
    match rng.below(16) {
        // Bit flip.
        0 | 1 if len > 0 => {
            let at = rng.below(len);
            data[at] ^= 1 << rng.below(8);
        }
        // A random or an interesting byte.
        2 if len > 0 => {
            let at = rng.below(len);
            data[at] = rng.byte();
        }
        3 if len > 0 => {
            let at = rng.below(len);
            data[at] = *rng.pick(&[0u8, 1, 2, 0x7f, 0x80, 0x81, 0xfe, 0xff]);
        }
        // Small arithmetic on a byte (a length or a tag off by a little).
        4 if len > 0 => {
            let at = rng.below(len);
            let delta = rng.below(9) as u8;
            data[at] = if rng.chance(50) {
                data[at].wrapping_add(delta)
            } else {
                data[at].wrapping_sub(delta)
            };
        }
        // Insert random bytes.
        5 => {
            let at = rng.below(len + 1);
            let most = if rng.chance(10) { 64 } else { 4 };
            let n = 1 + rng.below(most);
            let bytes = rng.bytes(n);
            data.splice(at..at, bytes);
        }
        // Delete a range.
        6 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(16));
            data.drain(at..at + n);
        }
        // Truncate.
        7 => {
            let at = rng.below(len + 1);
            data.truncate(at);
        }
        // Splice: our prefix, another input's suffix.
        8 if !others.is_empty() => {
            let other = rng.pick(others);
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        // Duplicate a range (repeated fields, repeated records).
        9 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            let copy = data[at..at + n].to_vec();
            let to = rng.below(len + 1);
            data.splice(to..to, copy);
        }
        // Replace a byte with a huge varint (or insert one).
        10 | 11 => {
            let at = rng.below(len + 1);
            let v = huge_varint(rng);
            let end = if at < len && rng.chance(70) {
                at + 1
            } else {
                at
            };
            data.splice(at..end, v);
        }
        // Overwrite 4 or 8 bytes with an interesting little-endian value (lengths, LSNs).
        12 | 13 if len >= 4 => {
            let value = *rng.pick(&INTERESTING);
            if len >= 8 && rng.chance(50) {
                let at = rng.below(len - 7);
                data[at..at + 8].copy_from_slice(&value.to_le_bytes());
            } else {
                let at = rng.below(len - 3);
                data[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
            }
        }
        // Replace a byte with a varint of another size (a length field that grows or shrinks).
        14 if len > 0 => {
            let at = rng.below(len);
            let v = varint(rng.number());
            data.splice(at..at + 1, v);
        }
        // Swap two bytes.
        _ if len > 1 => {
            let a = rng.below(len);
            let b = rng.below(len);
            data.swap(a, b);
        }
        _ => {
            let b = rng.byte();
            data.push(b);
        }
    }
}

/// A fresh input: a mutant of a seed most of the time, random bytes otherwise.
pub fn next_input(rng: &mut Rng, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    match rng.below(10) {
        0 => {
            let n = rng.below(max_len.min(256) + 1);
            rng.bytes(n)
        }
        1 if !seeds.is_empty() => rng.pick(seeds).clone(),
        _ if !seeds.is_empty() => {
            let mut data = rng.pick(seeds).clone();
            mutate(rng, &mut data, seeds, max_len);
            data
        }
        _ => {
            let n = rng.below(max_len + 1);
            rng.bytes(n)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Allocation accounting.

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Bytes requested by this thread since the last [`thread_allocated_reset`].
    static THREAD_TOTAL: Cell<usize> = const { Cell::new(0) };
    static THREAD_LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// A global allocator that counts: live bytes, their peak, the largest single request
/// (all threads), and bytes requested by the current thread. Install it in a test binary
/// with `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

fn note_alloc(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
    LARGEST.fetch_max(size, Ordering::Relaxed);
    let _ = THREAD_TOTAL.try_with(|t| t.set(t.get().saturating_add(size)));
    let _ = THREAD_LARGEST.try_with(|t| t.set(t.get().max(size)));
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            note_alloc(new_size);
        }
        p
    }
}

/// The largest single allocation (any thread) since the last [`reset_largest`].
pub fn largest() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

pub fn reset_largest() {
    LARGEST.store(0, Ordering::Relaxed);
}

/// Bytes requested by the current thread, and its largest request, since the last reset.
pub fn thread_allocated() -> (usize, usize) {
    (
        THREAD_TOTAL.with(|t| t.get()),
        THREAD_LARGEST.with(|t| t.get()),
    )
}

pub fn thread_allocated_reset() {
    THREAD_TOTAL.with(|t| t.set(0));
    THREAD_LARGEST.with(|t| t.set(0));
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

/// Appends a campaign's summary line to the file named by `DURO_CAMPAIGN_REPORT`, if set:
/// scripts/test.sh sets it and prints the file at the end, under "Reliability campaigns".
pub fn report_campaign(line: &str) {
    report::append_to_report(line);
}

// The report file writer shared with the other campaign tests (its printing variant is
// theirs, hence the allow).
#[allow(dead_code)]
#[path = "report.rs"]
mod report;

/// Whether a reported problem is a known one: `file|snippet` for a panic in `file` at a line
/// containing `snippet`, else a substring of the problem's text.
pub fn matches_known(problem: &str, pattern: &str) -> bool {
    let Some((file, snippet)) = pattern.split_once('|') else {
        return problem.contains(pattern);
    };
    let Some(at) = problem.find("panicked at ") else {
        return false;
    };
    let mut parts = problem[at + "panicked at ".len()..].splitn(3, ':');
    let (Some(path), Some(line)) = (
        parts.next(),
        parts.next().and_then(|l| l.parse::<usize>().ok()),
    ) else {
        return false;
    };
    if !path.ends_with(file) {
        return false;
    }
    source_line(path, line).is_some_and(|text| text.contains(snippet))
}

/// Line `line` (1-based) of a source file named as in a panic location: relative to the
/// workspace root (an ancestor of this crate's directory) or absolute.
fn source_line(path: &str, line: usize) -> Option<String> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = std::iter::once(std::path::PathBuf::from(path))
        .chain(manifest.ancestors().map(|a| a.join(path)));
    for candidate in candidates {
        if let Ok(text) = std::fs::read_to_string(&candidate) {
            return text.lines().nth(line.checked_sub(1)?).map(str::to_string);
        }
    }
    None
}

/// What makes two failures "the same": the panic location, and the message without numbers.
fn problem_key(what: &str) -> String {
    let first = what.split("; ").next().unwrap_or("");
    let (location, message) = match first.find(" panicked at ") {
        Some(at) => {
            let rest = &first[at + " panicked at ".len()..];
            // "file:line:col: message"
            let mut parts = rest.splitn(4, ':');
            let location: Vec<&str> = parts.by_ref().take(3).collect();
            (location.join(":"), parts.next().unwrap_or("").to_string())
        }
        None => (String::new(), first.to_string()),
    };
    let message: String = message.chars().filter(|c| !c.is_ascii_digit()).collect();
    format!("{location} {message}")
}

/// `b"..."` with escapes: paste into a regression test.
pub fn byte_literal(bytes: &[u8]) -> String {
    let mut out = String::from("b\"");
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}
