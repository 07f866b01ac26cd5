//! I/O errors at the run index's commits (issue 5, campaign 3, for the SQLite side).
//!
//! EIO and ENOSPC, once and persistently, at every place the store commits the index
//! ([`IndexCommitSite`]): the indexer's batch commit, the synced commit before log
//! segments are released, and the apply and synced commits of an open (the rebuild from
//! the log). Checked: the store stops with a clear error saying to reopen (appends and
//! reads refuse, close reports it), no log segment is released past what the index
//! holds, every acknowledged append is there after a reopen without faults (read back
//! equal), nothing else is, and the store takes appends again after it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use duro_core::journal::{Event, RunKey, StepKind};
use duro_store::conformance::started;
use duro_store::{
    AckSink, EmbeddedOptions, EmbeddedStore, IndexCommitSite, IndexFault, IndexFaults, RunFilter,
    Store, StoreError, Token,
};
use duro_wal::WalOptions;

/// A guard against hanging (never a bound on speed).
const PATIENCE: Duration = Duration::from_secs(120);

fn wal_options() -> WalOptions {
    WalOptions {
        segment_size: 64 * 1024,
        max_record_size: 16 * 1024,
        ..WalOptions::default()
    }
}

/// Small segments, released every 10 ms (so the workload rotates and releases segments).
fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        wal: wal_options(),
        release_every: Duration::from_millis(10),
        ..EmbeddedOptions::default()
    }
}

/// One step of 3 KB, so about 20 appends fill a segment.
fn step(seq: u32) -> Vec<Event> {
    vec![
        Event::StepStarted {
            seq,
            kind: StepKind::Task,
            name: format!("s{seq}"),
            attempt: 1,
            at_ms: 5,
        },
        Event::StepCompleted {
            seq,
            attempt: 1,
            output: vec![b'a' + (seq % 26) as u8; 3_000],
            at_ms: 6,
        },
    ]
}

#[derive(Default)]
struct Acks {
    durable: Mutex<Vec<Token>>,
}

impl AckSink for Acks {
    fn durable(&self, tokens: &[Token]) {
        self.durable.lock().unwrap().extend_from_slice(tokens);
    }
    fn failed(&self, _tokens: &[Token], _error: &StoreError) {}
}

/// What the test knows outside the store: each run's events, and how many of them
/// were acknowledged (`wait_durable` returned) or accepted (`append` returned).
#[derive(Default)]
struct Oracle {
    runs: BTreeMap<String, OracleRun>,
    /// Token -> (run id, events covered once that append is durable).
    tokens: BTreeMap<Token, (String, usize)>,
    next_token: Token,
}

struct OracleRun {
    key: RunKey,
    events: Vec<Event>,
    acked: usize,
    ended: bool,
}

/// Why an append or its wait failed.
enum Stopped {
    Append(StoreError),
    Wait(StoreError),
}

impl Oracle {
    /// Starts a run or appends the next step to an existing one, then waits for it.
    fn one_append(&mut self, store: &EmbeddedStore, run: usize) -> Result<(), Stopped> {
        self.next_token += 1;
        let token = self.next_token;
        let id = format!("run-{run}");
        let receipt = match self.runs.get_mut(&id) {
            None => {
                let event = started(&id, "wf", run as u64);
                let (outcome, receipt) = store
                    .start_run(&event, Some(token))
                    .map_err(Stopped::Append)?;
                self.runs.insert(
                    id.clone(),
                    OracleRun {
                        key: outcome.run_key(),
                        events: vec![event],
                        acked: 0,
                        ended: false,
                    },
                );
                receipt
            }
            Some(entry) => {
                assert!(!entry.ended);
                let position = entry.events.len() as u32;
                let events = step((position - 1) / 2);
                let receipt = store
                    .append(entry.key, position, &events, Some(token))
                    .map_err(Stopped::Append)?;
                entry.events.extend(events);
                receipt
            }
        };
        let entry = self.runs.get_mut(&id).unwrap();
        self.tokens.insert(token, (id.clone(), entry.events.len()));
        store.wait_durable(receipt).map_err(Stopped::Wait)?;
        entry.acked = entry.events.len();
        Ok(())
    }

    /// Every acknowledged append is in `store`, byte-identical, and nothing was recovered
    /// that was never appended. Returns the problems found.
    fn check(&self, store: &EmbeddedStore, acks: &Acks, what: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut acked = self
            .runs
            .iter()
            .map(|(id, run)| (id.clone(), run.acked))
            .collect::<BTreeMap<_, _>>();
        // Acknowledgements through the sink count too (they may come before `wait_durable`).
        for token in acks.durable.lock().unwrap().iter() {
            let (id, covered) = &self.tokens[token];
            let entry = acked.get_mut(id).unwrap();
            *entry = (*entry).max(*covered);
        }
        for (id, run) in &self.runs {
            let summary = match store.summary(id) {
                Ok(summary) => summary,
                Err(error) => {
                    problems.push(format!("{what}: reading {id}: {error}"));
                    continue;
                }
            };
            let Some(summary) = summary else {
                if acked[id] > 0 {
                    problems.push(format!("{what}: acknowledged run {id} lost"));
                }
                continue;
            };
            match store.events(summary.run_key) {
                Ok(events) => {
                    if events.len() < acked[id] {
                        problems.push(format!(
                            "{what}: {id} has {} events, {} acknowledged",
                            events.len(),
                            acked[id]
                        ));
                    }
                    if events.len() > run.events.len() || events[..] != run.events[..events.len()] {
                        problems.push(format!(
                            "{what}: {id} holds events never appended (a phantom or a wrong answer)"
                        ));
                    }
                    if summary.event_count as usize != events.len() {
                        problems.push(format!("{what}: {id}'s summary disagrees with its events"));
                    }
                }
                Err(error) => problems.push(format!("{what}: events of {id}: {error}")),
            }
        }
        match store.list(&RunFilter {
            limit: 10_000,
            ..RunFilter::default()
        }) {
            Ok(all) => {
                for summary in all {
                    if !self.runs.contains_key(&summary.run_id) {
                        problems.push(format!("{what}: phantom run {}", summary.run_id));
                    }
                }
            }
            Err(error) => problems.push(format!("{what}: list: {error}")),
        }
        problems
    }
}

/// `applied_lsn` in the index file of a closed store, and the first LSN its log still holds
/// (or its next LSN when it holds none).
fn index_and_log(dir: &Path) -> (u64, u64) {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("index.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let applied: i64 = conn
        .query_row(
            "SELECT COALESCE((SELECT value FROM meta WHERE key = 'applied_lsn'), 0)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let (wal, recovery) = duro_wal::Wal::open(
        Arc::new(duro_wal::fs::RealFs),
        &dir.join("wal"),
        wal_options(),
        Arc::new(duro_wal::NullSink),
    )
    .unwrap();
    let first = recovery
        .records
        .first()
        .map_or(recovery.next_lsn, |r| r.lsn);
    wal.close().unwrap();
    (applied as u64, first)
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("wal")).unwrap().count()
}

/// The error a caller gets once the index failed: typed, naming the index and the cause,
/// and saying what to do.
fn clear_error(error: &StoreError, errno: i32) -> Result<(), String> {
    let message = error.to_string();
    let cause = std::io::Error::from_raw_os_error(errno).to_string();
    let cause = cause.split(" (os error").next().unwrap().to_owned();
    if matches!(error, StoreError::Failed { .. })
        && message.contains("index.sqlite3")
        && message.contains(&cause)
        && message.contains("reopen")
    {
        Ok(())
    } else {
        Err(format!(
            "unclear error (want Failed naming index.sqlite3, {cause:?} and reopen): {message}"
        ))
    }
}

#[derive(Clone, Copy, Debug)]
struct Case {
    site: IndexCommitSite,
    errno: i32,
    persistent: bool,
}

impl Case {
    /// Fails the first commit at the site, once or from then on.
    fn fault(&self) -> IndexFault {
        if self.persistent {
            IndexFault::persistent(self.site, 1, self.errno)
        } else {
            IndexFault::once(self.site, 1, self.errno)
        }
    }
}

fn cases(sites: &[IndexCommitSite]) -> Vec<Case> {
    let mut cases = Vec::new();
    for &site in sites {
        for errno in [libc::EIO, libc::ENOSPC] {
            for persistent in [false, true] {
                cases.push(Case {
                    site,
                    errno,
                    persistent,
                });
            }
        }
    }
    cases
}

/// A fault that counts commits only once armed (so "the first batch commit after a
/// segment was released" needs no timing).
struct Armed {
    fault: IndexFault,
    armed: AtomicBool,
}

impl IndexFaults for Armed {
    fn before_commit(&self, site: IndexCommitSite) -> Option<std::io::Error> {
        if self.armed.load(Ordering::SeqCst) {
            self.fault.before_commit(site)
        } else {
            None
        }
    }
}

/// Reopens without faults, checks everything, appends more, reopens and checks again.
fn recover_and_continue(dir: &Path, oracle: &mut Oracle, acks: &Acks, label: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let store = match EmbeddedStore::open(dir, options()) {
        Ok(store) => store,
        Err(error) => return vec![format!("{label}: no recovery: {error}")],
    };
    problems.extend(oracle.check(&store, acks, &format!("{label}, reopened")));
    // Appends after: new runs and more steps of the old ones.
    let existing = oracle.runs.len();
    for i in 0..10 {
        let run = if i % 2 == 0 {
            existing + i
        } else {
            i % existing.max(1)
        };
        if let Err(Stopped::Append(e) | Stopped::Wait(e)) = oracle.one_append(&store, run) {
            problems.push(format!("{label}: append after the reopen failed: {e}"));
        }
    }
    if let Err(error) = store.close() {
        problems.push(format!("{label}: close after the reopen: {error}"));
    }
    match EmbeddedStore::open(dir, options()) {
        Ok(store) => {
            problems.extend(oracle.check(&store, acks, &format!("{label}, reopened twice")));
            store.close().unwrap();
        }
        Err(error) => problems.push(format!("{label}: second reopen: {error}")),
    }
    problems
}

/// Runtime sites (batch commit, synced commit before release): the fault fires at the
/// first commit at the site from the start (`late` false), or after a log segment was
/// released (`late`); the store stops; the reopen recovers everything.
fn runtime_case(case: Case, late: bool) -> (u64, Vec<String>) {
    let label = format!(
        "{case:?}, {}",
        if late {
            "after a release"
        } else {
            "from the start"
        }
    );
    let dir = tempfile::tempdir().unwrap();
    let fault = Arc::new(Armed {
        fault: case.fault(),
        armed: AtomicBool::new(!late),
    });
    let store = EmbeddedStore::open_with_index_faults(
        dir.path(),
        options(),
        Some(fault.clone() as Arc<dyn IndexFaults>),
    )
    .unwrap();
    let acks = Arc::new(Acks::default());
    store.set_ack_sink(acks.clone());
    let mut oracle = Oracle::default();
    let mut problems = Vec::new();

    // Appends before (and while) the fault: round-robin over 6 runs, reading after each
    // (a read makes the indexer commit), until the store refuses.
    let deadline = Instant::now() + PATIENCE;
    let mut i = 0;
    let stopped_by = loop {
        if !fault.armed.load(Ordering::SeqCst) && store.stats().unwrap().wal.segments_removed > 0 {
            fault.armed.store(true, Ordering::SeqCst);
        }
        assert!(
            Instant::now() < deadline,
            "{label}: the fault never stopped the store"
        );
        match oracle.one_append(&store, i % 6) {
            Ok(()) => {}
            Err(Stopped::Append(e) | Stopped::Wait(e)) => break e,
        }
        if let Err(e) = store.summary(&format!("run-{}", i % 6)) {
            break e;
        }
        i += 1;
    };
    if fault.fault.fired() == 0 {
        problems.push(format!(
            "{label}: the store stopped without the fault: {stopped_by}"
        ));
    }
    if let Err(p) = clear_error(&stopped_by, case.errno) {
        problems.push(format!("{label}: {p}"));
    }
    let removed = store.stats().unwrap().wal.segments_removed;
    let files = segment_files(dir.path());

    // Appends after the fault: all refused (nothing acknowledged), reads refused too.
    // Appends accepted before the failure was seen may still be acknowledged (by their log
    // sync alone); none made after it.
    let last_accepted = oracle.next_token;
    for j in 0..5 {
        match oracle.one_append(&store, (i + j) % 7) {
            Ok(()) => problems.push(format!(
                "{label}: an append was acknowledged after the failure"
            )),
            Err(Stopped::Wait(e)) => problems.push(format!(
                "{label}: an append was accepted after the failure ({e})"
            )),
            Err(Stopped::Append(e)) => {
                if let Err(p) = clear_error(&e, case.errno) {
                    problems.push(format!("{label}: append after: {p}"));
                }
            }
        }
    }
    for read in [
        store.summary("run-0").map(|_| ()),
        store.events(1).map(|_| ()),
        store.list(&RunFilter::default()).map(|_| ()),
    ] {
        match read {
            Ok(()) => problems.push(format!("{label}: a read answered from a failed index")),
            Err(e) => {
                if let Err(p) = clear_error(&e, case.errno) {
                    problems.push(format!("{label}: read after: {p}"));
                }
            }
        }
    }
    // Give the indexer release rounds: nothing more may be released.
    std::thread::sleep(Duration::from_millis(50));
    let stats = store.stats().unwrap();
    if stats.wal.segments_removed != removed || segment_files(dir.path()) > files + 1 {
        problems.push(format!("{label}: segments released after the index failed"));
    }
    if acks
        .durable
        .lock()
        .unwrap()
        .iter()
        .any(|t| *t > last_accepted)
    {
        problems.push(format!("{label}: acknowledgements after the failure"));
    }
    match store.close() {
        Ok(()) => problems.push(format!("{label}: close did not report the failure")),
        Err(e) => {
            if let Err(p) = clear_error(&e, case.errno) {
                problems.push(format!("{label}: close: {p}"));
            }
        }
    }
    drop(store);

    // The log still holds everything after what the index holds.
    let (applied, first) = index_and_log(dir.path());
    if first > applied + 1 {
        problems.push(format!(
            "{label}: the log starts at LSN {first} but the index holds only up to {applied}"
        ));
    }
    if late && removed == 0 {
        problems.push(format!("{label}: no segment was released before the fault"));
    }
    problems.extend(recover_and_continue(dir.path(), &mut oracle, &acks, &label));
    (fault.fault.fired(), problems)
}

/// Open sites (applying the log, the synced commit): a store whose index was lost is
/// rebuilt from the log; the fault fails the open; a later open succeeds.
fn open_case(case: Case) -> (u64, Vec<String>) {
    let label = format!("{case:?}");
    let dir = tempfile::tempdir().unwrap();
    let acks = Arc::new(Acks::default());
    let mut oracle = Oracle::default();
    {
        // No release (an hour between rounds), so the log holds the whole history.
        let store = EmbeddedStore::open(
            dir.path(),
            EmbeddedOptions {
                release_every: Duration::from_secs(3_600),
                ..options()
            },
        )
        .unwrap();
        store.set_ack_sink(acks.clone());
        for i in 0..60 {
            if let Err(Stopped::Append(e) | Stopped::Wait(e)) = oracle.one_append(&store, i % 5) {
                panic!("{label}: setup: {e}");
            }
        }
        store.close().unwrap();
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("index.sqlite3{suffix}")));
    }
    let files = segment_files(dir.path());
    let mut problems = Vec::new();
    let fault = Arc::new(case.fault());
    let open_faulty = || {
        EmbeddedStore::open_with_index_faults(
            dir.path(),
            options(),
            Some(fault.clone() as Arc<dyn IndexFaults>),
        )
    };
    let check_refused =
        |result: Result<EmbeddedStore, StoreError>, problems: &mut Vec<String>| match result {
            Ok(_) => problems.push(format!("{label}: the open succeeded despite the fault")),
            Err(error) => {
                let message = error.to_string();
                let cause = std::io::Error::from_raw_os_error(case.errno).to_string();
                let cause = cause.split(" (os error").next().unwrap().to_owned();
                if !(matches!(error, StoreError::Index { .. })
                    && message.contains("index.sqlite3")
                    && message.contains(&cause))
                {
                    problems.push(format!("{label}: unclear error on open: {message}"));
                }
            }
        };
    check_refused(open_faulty(), &mut problems);
    if case.persistent {
        // Persistent: every open with the fault fails the same way.
        check_refused(open_faulty(), &mut problems);
    }
    // Checked before an open succeeds: a successful open releases the segments its synced
    // index holds.
    if segment_files(dir.path()) < files {
        problems.push(format!("{label}: a failed open released log segments"));
    }
    if !case.persistent {
        // Once: the next open with the same hook (it fired already) recovers.
        match open_faulty() {
            Ok(store) => {
                problems.extend(oracle.check(&store, &acks, &format!("{label}, open after once")));
                store.close().unwrap();
            }
            Err(error) => problems.push(format!("{label}: no open after a single fault: {error}")),
        }
    }
    problems.extend(recover_and_continue(dir.path(), &mut oracle, &acks, &label));
    (fault.fired(), problems)
}

#[test]
fn index_commit_faults_stop_the_store_and_the_log_recovers_it() {
    let mut injected = 0;
    let mut scenarios = 0;
    let mut problems = Vec::new();
    for case in cases(&[IndexCommitSite::Batch, IndexCommitSite::Release]) {
        for late in [false, true] {
            let (fired, found) = runtime_case(case, late);
            injected += fired;
            scenarios += 1;
            problems.extend(found);
        }
    }
    for case in cases(&[IndexCommitSite::OpenApply, IndexCommitSite::OpenSync]) {
        let (fired, found) = open_case(case);
        injected += fired;
        scenarios += 1;
        problems.extend(found);
    }
    report_campaign(&format!(
        "I/O faults    store [index commits]: {injected} faults injected (EIO/ENOSPC, once and persistent) at \
         {} sites (batch, synced before release, apply and sync on open), {scenarios} scenarios; fail-stop, \
         no segment released past the index, every acknowledged append recovered; violations {}",
        IndexCommitSite::ALL.len(),
        problems.len()
    ));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[path = "../../../fuzz/common/report.rs"]
mod report;
use report::report_campaign;
