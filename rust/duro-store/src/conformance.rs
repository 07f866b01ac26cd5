//! The conformance suite: behaviour every [`Store`] must have. Stores run it
//! from their tests (`tests/conformance.rs`); the PostgreSQL store will too.
//!
//! A store joins through a [`StoreFactory`]: it opens stores by name (the same
//! name again opens the same store, as a restarted process would) and declares
//! its [`Capabilities`]. [`run_all`] runs every check that applies and returns
//! a [`Report`] naming what ran, what did not apply and why (never a silent
//! skip), and notes on how the store met a promise. Most checks take one
//! fresh, empty store; the reopen checks take the factory.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use duro_core::journal::{encode_event, ErrorInfo, Event, RunKey, StepKind};
use duro_core::summary::{RunStatus, RunSummary};

use crate::api::{
    AckSink, Receipt, RunFilter, StartOutcome, Store, Token, DEFAULT_MAX_APPEND_BYTES,
};
use crate::error::StoreError;
use crate::record::append_size;

/// What a store can promise beyond the common contract; the suite checks the
/// promises a store makes, and checks the documented absence of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Acknowledged appends are there after the store is closed and opened again
    /// (embedded: the same directory; PostgreSQL: the same database). False for
    /// the in-memory store, which keeps nothing when its process exits: the
    /// suite then checks that a reopened store is empty instead.
    pub survives_reopen: bool,
    /// `Some(lease)` for a store that leases what `claim_due` hands out (a store
    /// shared by processes, see [`Store::claim_due`]); `None` for single-process
    /// stores, which hold nothing and hand every unfinished run to every call.
    pub lease_ms: Option<u64>,
}

/// Opens the stores the checks run on.
pub trait StoreFactory {
    /// Names the store in the report (e.g. "embedded").
    fn name(&self) -> String;
    fn capabilities(&self) -> Capabilities;
    /// Opens the store called `name`, empty the first time, with the default
    /// limits ([`DEFAULT_MAX_APPEND_BYTES`]). After that store was closed and
    /// dropped, the same name opens it again.
    fn open(&self, name: &str) -> Arc<dyn Store>;
}

/// What [`run_all`] did with one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub store: String,
    pub capabilities: Capabilities,
    /// Checks that ran (and passed: a failing check panics).
    pub ran: Vec<&'static str>,
    /// Checks that do not apply to this store, with the reason.
    pub not_applicable: Vec<(&'static str, String)>,
    /// How the store met a promise, where stores may differ (e.g. how acks arrive).
    pub notes: Vec<String>,
}

impl Report {
    fn run(&mut self, name: &'static str, check: impl FnOnce() -> Option<String>) {
        eprintln!("conformance [{}]: {name}", self.store);
        if let Some(note) = check() {
            self.notes.push(format!("{name}: {note}"));
        }
        self.ran.push(name);
    }

    fn not_applicable(&mut self, name: &'static str, why: impl Into<String>) {
        self.not_applicable.push((name, why.into()));
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "conformance of the {} store ({:?}):",
            self.store, self.capabilities
        )?;
        writeln!(f, "  ran ({}): {}", self.ran.len(), self.ran.join(", "))?;
        for (name, why) in &self.not_applicable {
            writeln!(f, "  not applicable: {name}: {why}")?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}

/// Every check [`run_all`] knows; each one either runs or is reported not applicable.
pub const CHECKS: &[&str] = &[
    "start_is_idempotent",
    "concurrent_starts_make_one_run",
    "appends_are_positioned",
    "summaries_follow_events",
    "ended_runs_refuse_appends",
    "listing_filters",
    "payloads_round_trip",
    "sync_rounds_lead_to_durability",
    "ack_tokens_reach_the_sink",
    "claim_due_respects_now_and_limit",
    "unleased_claims_hold_nothing",
    "leased_runs_are_not_handed_out_twice",
    "appends_over_the_limit_are_refused",
    "acknowledged_appends_survive_reopen",
    "reopened_store_is_empty",
];

/// Runs every check that applies to the factory's stores, each on a store of its own.
pub fn run_all(factory: &dyn StoreFactory) -> Report {
    let capabilities = factory.capabilities();
    let mut report = Report {
        store: factory.name(),
        capabilities,
        ran: Vec::new(),
        not_applicable: Vec::new(),
        notes: Vec::new(),
    };
    let open = |name: &str| factory.open(name);
    report.run("start_is_idempotent", || {
        start_is_idempotent(&*open("start_is_idempotent"));
        None
    });
    report.run("concurrent_starts_make_one_run", || {
        concurrent_starts_make_one_run(open("concurrent_starts_make_one_run"));
        None
    });
    report.run("appends_are_positioned", || {
        appends_are_positioned(&*open("appends_are_positioned"));
        None
    });
    report.run("summaries_follow_events", || {
        summaries_follow_events(&*open("summaries_follow_events"));
        None
    });
    report.run("ended_runs_refuse_appends", || {
        ended_runs_refuse_appends(&*open("ended_runs_refuse_appends"));
        None
    });
    report.run("listing_filters", || {
        listing_filters(&*open("listing_filters"));
        None
    });
    report.run("payloads_round_trip", || {
        payloads_round_trip(&*open("payloads_round_trip"));
        None
    });
    report.run("sync_rounds_lead_to_durability", || {
        sync_rounds_lead_to_durability(&*open("sync_rounds_lead_to_durability"));
        None
    });
    report.run("ack_tokens_reach_the_sink", || {
        Some(ack_tokens_reach_the_sink(&*open(
            "ack_tokens_reach_the_sink",
        )))
    });
    report.run("claim_due_respects_now_and_limit", || {
        claim_due_respects_now_and_limit(&*open("claim_due_respects_now_and_limit"), &capabilities);
        None
    });
    match capabilities.lease_ms {
        None => {
            report.run("unleased_claims_hold_nothing", || {
                unleased_claims_hold_nothing(&*open("unleased_claims_hold_nothing"));
                None
            });
            report.not_applicable(
                "leased_runs_are_not_handed_out_twice",
                "a single-process store has no leases: claim_due holds nothing and hands every unfinished run to \
                 every caller (checked by unleased_claims_hold_nothing; see Store::claim_due for what a shared store adds)",
            );
        }
        Some(lease_ms) => {
            report.not_applicable(
                "unleased_claims_hold_nothing",
                format!("the store leases claimed runs for {lease_ms} ms"),
            );
            report.run("leased_runs_are_not_handed_out_twice", || {
                leased_runs_are_not_handed_out_twice(
                    &*open("leased_runs_are_not_handed_out_twice"),
                    lease_ms,
                );
                None
            });
        }
    }
    report.run("appends_over_the_limit_are_refused", || {
        appends_over_the_limit_are_refused(&*open("appends_over_the_limit_are_refused"));
        None
    });
    if capabilities.survives_reopen {
        report.run("acknowledged_appends_survive_reopen", || {
            acknowledged_appends_survive_reopen(factory, "acknowledged_appends_survive_reopen");
            None
        });
        report.not_applicable(
            "reopened_store_is_empty",
            "the store keeps its data across a reopen",
        );
    } else {
        report.not_applicable(
            "acknowledged_appends_survive_reopen",
            "the store keeps nothing across a restart of its process (capability survives_reopen = false)",
        );
        report.run("reopened_store_is_empty", || {
            reopened_store_is_empty(factory, "reopened_store_is_empty");
            None
        });
    }
    debug_assert_eq!(report.ran.len() + report.not_applicable.len(), CHECKS.len());
    report
}

/// A `RunStarted` event for `run_id`.
pub fn started(run_id: &str, workflow: &str, at_ms: u64) -> Event {
    Event::RunStarted {
        run_id: run_id.into(),
        workflow: workflow.into(),
        version: "1".into(),
        input: br#"{"n":1}"#.to_vec(),
        deadline_ms: None,
        start_at_ms: None,
        step_count: 2,
        at_ms,
    }
}

fn step(seq: u32, name: &str) -> [Event; 2] {
    [
        Event::StepStarted {
            seq,
            kind: StepKind::Task,
            name: name.into(),
            attempt: 1,
            at_ms: 10 + seq as u64,
        },
        Event::StepCompleted {
            seq,
            attempt: 1,
            output: format!("{{\"out\":{seq}}}").into_bytes(),
            at_ms: 11 + seq as u64,
        },
    ]
}

fn start(store: &dyn Store, run_id: &str, workflow: &str, at_ms: u64) -> u64 {
    let (outcome, receipt) = store
        .start_run(&started(run_id, workflow, at_ms), None)
        .expect("start");
    store.wait_durable(receipt).expect("durable");
    match outcome {
        StartOutcome::Created { run_key } => run_key,
        StartOutcome::Existing { .. } => panic!("{run_id} existed"),
    }
}

/// Starting the same id twice gives the same run and writes nothing.
pub fn start_is_idempotent(store: &dyn Store) {
    let key = start(store, "order-1", "wf", 1);
    let (again, _) = store.start_run(&started("order-1", "wf", 2), None).unwrap();
    assert_eq!(again, StartOutcome::Existing { run_key: key });
    assert_eq!(store.events(key).unwrap().len(), 1);
    assert_eq!(
        store.summary("order-1").unwrap().unwrap().created_at_ms,
        1,
        "the first start wins"
    );
}

/// 64 threads start one id at once: exactly one run.
pub fn concurrent_starts_make_one_run(store: Arc<dyn Store>) {
    let barrier = Arc::new(Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let (outcome, receipt) = store.start_run(&started("same", "wf", i), None).unwrap();
                store.wait_durable(receipt).unwrap();
                outcome
            })
        })
        .collect();
    let outcomes: Vec<StartOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, StartOutcome::Created { .. }))
        .count();
    assert_eq!(created, 1, "exactly one start creates the run");
    let keys: HashSet<u64> = outcomes.iter().map(|o| o.run_key()).collect();
    assert_eq!(keys.len(), 1, "every caller gets the same run");
    let all = store
        .list(&RunFilter {
            limit: 1000,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(all.iter().filter(|s| s.run_id == "same").count(), 1);
}

/// Appends land at consecutive positions; a wrong expected position is a conflict that writes nothing.
pub fn appends_are_positioned(store: &dyn Store) {
    let key = start(store, "r", "wf", 1);
    let receipt = store.append(key, 1, &step(0, "a"), None).unwrap();
    store.wait_durable(receipt).unwrap();
    match store.append(key, 1, &step(1, "b"), None) {
        Err(StoreError::Conflict {
            expected: 1,
            actual: 3,
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let receipt = store.append(key, 3, &step(1, "b"), None).unwrap();
    store.wait_durable(receipt).unwrap();
    let events = store.events(key).unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(events[1..3], step(0, "a"));
    assert_eq!(events[3..5], step(1, "b"));
}

/// The summary follows the events.
pub fn summaries_follow_events(store: &dyn Store) {
    let key = start(store, "s", "wf", 5);
    let summary = store.summary("s").unwrap().unwrap();
    assert_eq!(
        (summary.status, summary.run_key, summary.step_count),
        (RunStatus::Pending, key, 2)
    );
    let mut events = step(0, "a").to_vec();
    events.push(Event::StepStarted {
        seq: 1,
        kind: StepKind::Task,
        name: "b".into(),
        attempt: 1,
        at_ms: 20,
    });
    events.push(Event::StepFailed {
        seq: 1,
        attempt: 1,
        error: ErrorInfo::new("ValueError", "bad", true),
        retry_at_ms: Some(1_000),
        at_ms: 21,
    });
    store
        .wait_durable(store.append(key, 1, &events, None).unwrap())
        .unwrap();
    let summary = store.summary_by_key(key).unwrap().unwrap();
    assert_eq!(summary.status, RunStatus::Running);
    assert_eq!(summary.completed_step_count, 1);
    assert_eq!(summary.current_step.as_deref(), Some("b"));
    assert_eq!(summary.wake_at_ms, Some(1_000));
    assert_eq!(
        summary.error.as_ref().map(|e| e.error_type.as_str()),
        Some("ValueError")
    );
    let end = [Event::RunFailed {
        error: ErrorInfo::new("ValueError", "bad", false),
        at_ms: 30,
    }];
    store
        .wait_durable(store.append(key, 5, &end, None).unwrap())
        .unwrap();
    let summary = store.summary("s").unwrap().unwrap();
    assert_eq!(
        (summary.status, summary.completed_at_ms, summary.wake_at_ms),
        (RunStatus::Failed, Some(30), None)
    );
}

/// Nothing is appended after the terminal event.
pub fn ended_runs_refuse_appends(store: &dyn Store) {
    let key = start(store, "done", "wf", 1);
    store
        .wait_durable(
            store
                .append(key, 1, &[Event::RunCancelled { at_ms: 2 }], None)
                .unwrap(),
        )
        .unwrap();
    assert!(matches!(
        store.append(key, 2, &[Event::Paused { at_ms: 3 }], None),
        Err(StoreError::RunEnded { .. })
    ));
    assert!(matches!(
        store.append(999_999, 0, &[Event::Paused { at_ms: 3 }], None),
        Err(StoreError::UnknownRun { .. })
    ));
}

/// Filters by status, workflow and time; newest first; limited.
pub fn listing_filters(store: &dyn Store) {
    for i in 0..6u64 {
        let key = start(
            store,
            &format!("l{i}"),
            if i % 2 == 0 { "even" } else { "odd" },
            100 + i,
        );
        if i < 2 {
            store
                .wait_durable(
                    store
                        .append(key, 1, &[Event::RunCancelled { at_ms: 200 }], None)
                        .unwrap(),
                )
                .unwrap();
        }
    }
    let ids = |filter: RunFilter| -> Vec<String> {
        store
            .list(&filter)
            .unwrap()
            .into_iter()
            .map(|s| s.run_id)
            .collect()
    };
    assert_eq!(
        ids(RunFilter {
            workflow: Some("even".into()),
            ..RunFilter::default()
        }),
        ["l4", "l2", "l0"]
    );
    assert_eq!(
        ids(RunFilter {
            statuses: vec![RunStatus::Cancelled],
            ..RunFilter::default()
        }),
        ["l1", "l0"]
    );
    assert_eq!(
        ids(RunFilter {
            limit: 2,
            ..RunFilter::default()
        }),
        ["l5", "l4"]
    );
    assert_eq!(
        ids(RunFilter {
            created_after_ms: Some(103),
            created_before_ms: Some(105),
            ..RunFilter::default()
        }),
        ["l4", "l3"]
    );
    // Every unfinished run here is runnable (due since its start), so every store hands them out.
    let due: Vec<String> = store
        .claim_due("me", u64::MAX, 100)
        .unwrap()
        .into_iter()
        .map(|s| s.run_id)
        .collect();
    assert_eq!(due.len(), 4, "unfinished runs are claimable: {due:?}");
    assert!(!due.contains(&"l0".to_string()));
}

/// Payload bytes come back exactly, whatever they hold.
pub fn payloads_round_trip(store: &dyn Store) {
    let key = start(store, "bytes", "wf", 1);
    let payload: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let events = [Event::EventReceived {
        name: "ünïcødé \"q\"".into(),
        payload: payload.clone(),
        at_ms: 2,
    }];
    store
        .wait_durable(store.append(key, 1, &events, None).unwrap())
        .unwrap();
    assert_eq!(store.events(key).unwrap()[1], events[0]);
}

/// `sync_round`: 0 exactly when the position is durable; otherwise, once the durable
/// position reaches the round, the position is durable or a later round is named (waiters
/// that follow the rounds always get there). Appends are made without waiting, so rounds
/// of positions not yet durable are asked for where the store has any.
pub fn sync_rounds_lead_to_durability(store: &dyn Store) {
    let key = start(store, "rounds", "wf", 1);
    let mut positions = Vec::new();
    let mut at = 1;
    for seq in 0..20 {
        let receipt = store
            .append(key, at, &step(seq, &format!("s{seq}")), None)
            .unwrap();
        positions.push(receipt.position);
        at += 2;
    }
    for &position in &positions {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut rounds = Vec::new();
        loop {
            let round = store.sync_round(position);
            if round == 0 {
                assert!(
                    store.durable_position() >= position,
                    "round 0 for a position not durable"
                );
                break;
            }
            assert!(
                rounds.last().map_or(true, |&last| round >= last),
                "rounds went back: {rounds:?} then {round}"
            );
            rounds.push(round);
            while store.durable_position() < round {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round} never became durable"
                );
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            assert!(rounds.len() < 1_000, "rounds do not converge: {rounds:?}");
        }
    }
}

/// Records acknowledgements, and lets a check wait for them.
#[derive(Default)]
pub struct RecordingSink {
    acks: Mutex<(Vec<Token>, Vec<Token>)>,
    cv: Condvar,
}

impl RecordingSink {
    /// Tokens acknowledged as durable so far, in arrival order.
    pub fn durable(&self) -> Vec<Token> {
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Tokens reported failed so far.
    pub fn failed(&self) -> Vec<Token> {
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Waits until every token of `tokens` was acknowledged as durable. The minute
    /// allowed is a guard against hanging, not a performance bound.
    pub fn wait_for(&self, tokens: &[Token]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let missing: Vec<Token> = tokens
                .iter()
                .copied()
                .filter(|t| !acks.0.contains(t))
                .collect();
            if missing.is_empty() {
                return;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "tokens {missing:?} were never acknowledged (durable receipts, no ack in a minute)"
            );
            acks = self
                .cv
                .wait_timeout(acks, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl AckSink for RecordingSink {
    fn durable(&self, tokens: &[Token]) {
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .extend_from_slice(tokens);
        self.cv.notify_all();
    }

    fn failed(&self, tokens: &[Token], _error: &StoreError) {
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .extend_from_slice(tokens);
        self.cv.notify_all();
    }
}

/// Every token-carrying write is acknowledged exactly once: through the sink when its
/// receipt says not durable yet, never when the receipt says durable on return; a start
/// that found an existing run wrote nothing, and its token is never acknowledged.
/// Returns how the store acknowledged (for the report).
pub fn ack_tokens_reach_the_sink(store: &dyn Store) -> String {
    let sink = Arc::new(RecordingSink::default());
    store.set_ack_sink(sink.clone());
    let mut via_sink = Vec::new();
    let mut on_return = Vec::new();
    let mut receipts = Vec::new();
    let mut note = |token: Token, receipt: Receipt, receipts: &mut Vec<Receipt>| {
        if receipt.durable {
            on_return.push(token);
        } else {
            via_sink.push(token);
        }
        receipts.push(receipt);
    };
    let mut keys = Vec::new();
    for (i, run_id) in ["ack-a", "ack-b", "ack-c"].into_iter().enumerate() {
        let token = 10 + i as Token;
        let (outcome, receipt) = store
            .start_run(&started(run_id, "wf", 1), Some(token))
            .unwrap();
        assert!(matches!(outcome, StartOutcome::Created { .. }));
        note(token, receipt, &mut receipts);
        keys.push(outcome.run_key());
    }
    // Appends with tokens, several in flight before any wait.
    for (i, &key) in keys.iter().enumerate() {
        for seq in 0..3u32 {
            let token = 100 + 10 * i as Token + seq as Token;
            let receipt = store
                .append(key, 1 + 2 * seq, &step(seq, "s"), Some(token))
                .unwrap();
            note(token, receipt, &mut receipts);
        }
    }
    // A start of an existing id: nothing is written, the token is never acknowledged.
    let (existing, existing_receipt) = store
        .start_run(&started("ack-a", "wf", 2), Some(999))
        .unwrap();
    assert_eq!(existing, StartOutcome::Existing { run_key: keys[0] });
    for receipt in receipts.iter().chain([&existing_receipt]) {
        store.wait_durable(*receipt).unwrap();
    }
    sink.wait_for(&via_sink);
    store.close().unwrap();
    // After close no acknowledgement is outstanding: compare exactly.
    let mut acked = sink.durable();
    acked.sort_unstable();
    let mut expected = via_sink.clone();
    expected.sort_unstable();
    assert_eq!(
        acked, expected,
        "each token of a not-yet-durable receipt is acknowledged once, and no other token"
    );
    assert!(
        !acked.contains(&999),
        "the start of an existing run wrote nothing and is not acknowledged"
    );
    assert_eq!(sink.failed(), Vec::<Token>::new(), "nothing failed");
    let mut counts: HashMap<Token, usize> = HashMap::new();
    for token in sink.durable() {
        *counts.entry(token).or_default() += 1;
    }
    assert!(
        counts.values().all(|&n| n == 1),
        "a token was acknowledged twice: {counts:?}"
    );
    format!(
        "{} tokens acknowledged through the sink, {} receipts durable on return (no ack follows)",
        via_sink.len(),
        on_return.len()
    )
}

/// Unfinished runs of every kind, for the claim checks: (run key, wake_at_ms) in key order,
/// plus the key of an ended run.
fn claim_fixture(store: &dyn Store) -> (Vec<(RunKey, Option<u64>)>, RunKey) {
    let append = |key: RunKey, at: u32, events: &[Event]| {
        store
            .wait_durable(store.append(key, at, events, None).unwrap())
            .unwrap();
    };
    let now_runnable = start(store, "runnable", "wf", 10);
    let sleeping = start(store, "sleeping", "wf", 11);
    append(
        sleeping,
        1,
        &[
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Sleep,
                name: "nap".into(),
                attempt: 1,
                at_ms: 20,
            },
            Event::TimerSet {
                seq: 0,
                fire_at_ms: 5_000,
                at_ms: 20,
            },
        ],
    );
    let retrying = start(store, "retrying", "wf", 12);
    append(
        retrying,
        1,
        &[
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Task,
                name: "a".into(),
                attempt: 1,
                at_ms: 20,
            },
            Event::StepFailed {
                seq: 0,
                attempt: 1,
                error: ErrorInfo::new("E", "again", true),
                retry_at_ms: Some(3_000),
                at_ms: 21,
            },
        ],
    );
    let paused = start(store, "paused", "wf", 13);
    append(paused, 1, &[Event::Paused { at_ms: 22 }]);
    let ended = start(store, "ended", "wf", 14);
    append(
        ended,
        1,
        &[Event::RunCompleted {
            output: vec![],
            at_ms: 23,
        }],
    );
    let mut delayed_start = started("delayed", "wf", 15);
    if let Event::RunStarted { start_at_ms, .. } = &mut delayed_start {
        *start_at_ms = Some(4_000);
    }
    let (outcome, receipt) = store.start_run(&delayed_start, None).unwrap();
    store.wait_durable(receipt).unwrap();
    let delayed = outcome.run_key();
    let mut unfinished = Vec::new();
    for key in [now_runnable, sleeping, retrying, paused, delayed] {
        let summary = store.summary_by_key(key).unwrap().unwrap();
        unfinished.push((key, summary.wake_at_ms));
    }
    let wakes: Vec<Option<u64>> = unfinished.iter().map(|(_, w)| *w).collect();
    assert_eq!(
        wakes,
        [Some(10), Some(5_000), Some(3_000), None, Some(4_000)],
        "the fixture's wake times"
    );
    unfinished.sort_by_key(|(k, _)| *k);
    (unfinished, ended)
}

fn claimed(store: &dyn Store, owner: &str, now_ms: u64, limit: usize) -> Vec<RunKey> {
    let runs = store.claim_due(owner, now_ms, limit).unwrap();
    let keys: Vec<RunKey> = runs.iter().map(|s| s.run_key).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "claim_due({owner}, {now_ms}, {limit}): not in key order or twice: {keys:?}"
    );
    assert!(
        keys.len() <= limit,
        "claim_due({owner}, {now_ms}, {limit}) returned {} runs",
        keys.len()
    );
    assert!(
        runs.iter().all(|s| !s.status.is_terminal()),
        "claim_due returned an ended run"
    );
    keys
}

/// `claim_due` never returns ended runs, returns each run once in key order, at most
/// `limit`, and always includes the runs due at `now_ms`. A single-process store returns
/// every unfinished run whatever `now_ms` (the caller schedules by `wake_at_ms`); a
/// leasing store only those due at `now_ms`.
pub fn claim_due_respects_now_and_limit(store: &dyn Store, capabilities: &Capabilities) {
    let (unfinished, ended) = claim_fixture(store);
    let due_at = |now: u64| -> Vec<RunKey> {
        unfinished
            .iter()
            .filter(|(_, w)| w.is_some_and(|w| w <= now))
            .map(|(k, _)| *k)
            .collect()
    };
    let all: Vec<RunKey> = unfinished.iter().map(|(k, _)| *k).collect();
    match capabilities.lease_ms {
        None => {
            for now in [0, 10, 2_999, 3_000, 4_000, 5_000, u64::MAX] {
                let got = claimed(store, "owner", now, 100);
                assert_eq!(
                    got, all,
                    "a single-process store hands out every unfinished run at now = {now}"
                );
                assert!(due_at(now).iter().all(|k| got.contains(k)));
                assert!(!got.contains(&ended));
            }
            assert_eq!(
                claimed(store, "owner", 0, 2),
                all[..2],
                "limit 2: the first two by run key"
            );
            assert_eq!(claimed(store, "owner", u64::MAX, 1), all[..1]);
            assert_eq!(
                claimed(store, "owner", 0, 0),
                Vec::<RunKey>::new(),
                "limit 0: none"
            );
            assert_eq!(
                claimed(store, "owner", 0, usize::MAX),
                all,
                "the engine's call: no limit"
            );
        }
        Some(_) => {
            // Each call by a new owner, so that no run is held by an earlier call.
            assert_eq!(
                claimed(store, "o1", 0, 100),
                Vec::<RunKey>::new(),
                "nothing is due at 0"
            );
            assert_eq!(
                claimed(store, "o2", 3_000, 0),
                Vec::<RunKey>::new(),
                "limit 0: none"
            );
            assert_eq!(
                claimed(store, "o3", 3_000, 1),
                due_at(3_000)[..1],
                "limit 1: the first due run"
            );
            let rest: Vec<RunKey> = due_at(3_000)[1..].to_vec();
            assert_eq!(
                claimed(store, "o4", 3_000, 100),
                rest,
                "runs due at 3000, but the one o3 holds"
            );
        }
    }
}

/// A single-process store holds nothing: every owner gets every unfinished run on every
/// call (see `Store::claim_due`); claiming changes no run.
pub fn unleased_claims_hold_nothing(store: &dyn Store) {
    let (unfinished, _) = claim_fixture(store);
    let all: Vec<RunKey> = unfinished.iter().map(|(k, _)| *k).collect();
    let before: Vec<RunSummary> = all
        .iter()
        .map(|k| store.summary_by_key(*k).unwrap().unwrap())
        .collect();
    assert_eq!(claimed(store, "worker-1", 100, 100), all);
    assert_eq!(
        claimed(store, "worker-2", 100, 100),
        all,
        "nothing is held for worker-1"
    );
    assert_eq!(claimed(store, "worker-1", 100, 100), all, "claims repeat");
    let after: Vec<RunSummary> = all
        .iter()
        .map(|k| store.summary_by_key(*k).unwrap().unwrap())
        .collect();
    assert_eq!(before, after, "claiming wrote nothing");
}

/// A leasing store does not hand a run to another owner while its lease holds, and does
/// once it expired.
pub fn leased_runs_are_not_handed_out_twice(store: &dyn Store, lease_ms: u64) {
    let (unfinished, _) = claim_fixture(store);
    let due_at = |now: u64| -> Vec<RunKey> {
        unfinished
            .iter()
            .filter(|(_, w)| w.is_some_and(|w| w <= now))
            .map(|(k, _)| *k)
            .collect()
    };
    let now = 5_000;
    let first = claimed(store, "worker-1", now, 100);
    assert_eq!(first, due_at(now), "worker-1 gets every due run");
    assert_eq!(
        claimed(store, "worker-2", now, 100),
        Vec::<RunKey>::new(),
        "all are held by worker-1"
    );
    assert_eq!(
        claimed(store, "worker-2", now + lease_ms - 1, 100),
        Vec::<RunKey>::new(),
        "still held one ms before the lease ends"
    );
    let after = claimed(store, "worker-2", now + lease_ms, 100);
    assert_eq!(
        after,
        due_at(now + lease_ms),
        "an expired lease frees the run"
    );
}

/// A payload that fills an append to `size` bytes exactly (by [`append_size`]).
fn event_of_size(run_key: RunKey, position: u32, size: u64) -> Event {
    let make = |n: usize| Event::EventReceived {
        name: "big".into(),
        payload: vec![b'p'; n],
        at_ms: 2,
    };
    let mut n = size.saturating_sub(64) as usize;
    for _ in 0..16 {
        let got = append_size(run_key, position, std::slice::from_ref(&make(n)));
        if got == size {
            return make(n);
        }
        n = (n as i64 + size as i64 - got as i64) as usize;
    }
    panic!("no payload makes an append of exactly {size} bytes")
}

/// Every store applies the same limit, measured the same way, with the same typed error:
/// an append (or start) over [`DEFAULT_MAX_APPEND_BYTES`] by [`append_size`] is
/// [`StoreError::AppendTooLarge`] and writes nothing; one at the limit is kept whole.
pub fn appends_over_the_limit_are_refused(store: &dyn Store) {
    let max = store.max_append_bytes();
    assert_eq!(
        max, DEFAULT_MAX_APPEND_BYTES,
        "factories open stores with the default limit"
    );
    // A start over the limit.
    let mut big_start = started("too-big", "wf", 1);
    if let Event::RunStarted { input, .. } = &mut big_start {
        *input = vec![b'i'; max as usize];
    }
    match store.start_run(&big_start, None) {
        Err(StoreError::AppendTooLarge { size, max: m }) => {
            assert_eq!(m, max);
            assert!(size > max, "{size}");
        }
        other => panic!("a start over the limit must be AppendTooLarge, got {other:?}"),
    }
    assert_eq!(
        store.summary("too-big").unwrap(),
        None,
        "the refused start wrote nothing"
    );
    // An append of 5 MiB, one byte over, and exactly at the limit.
    let key = start(store, "limits", "wf", 1);
    let five = [Event::EventReceived {
        name: "five".into(),
        payload: vec![5; 5 << 20],
        at_ms: 2,
    }];
    match store.append(key, 1, &five, None) {
        Err(StoreError::AppendTooLarge { size, max: m }) => {
            assert_eq!((size, m), (append_size(key, 1, &five), max));
        }
        other => panic!("a 5 MiB append must be AppendTooLarge, got {other:?}"),
    }
    let over = [event_of_size(key, 1, max + 1)];
    match store.append(key, 1, &over, None) {
        Err(StoreError::AppendTooLarge { size, max: m }) => assert_eq!((size, m), (max + 1, max)),
        other => panic!("an append one byte over the limit must be AppendTooLarge, got {other:?}"),
    }
    assert_eq!(
        store.events(key).unwrap().len(),
        1,
        "refused appends wrote nothing"
    );
    let at_limit = [event_of_size(key, 1, max)];
    store
        .wait_durable(store.append(key, 1, &at_limit, None).unwrap())
        .unwrap();
    let events = store.events(key).unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events[1] == at_limit[0],
        "the append at the limit comes back whole"
    );
}

/// What a run looks like from outside: its summary (without the fold's private state)
/// and each event's encoding.
fn snapshot(store: &dyn Store) -> Vec<(RunSummary, Vec<Vec<u8>>)> {
    let mut runs = store
        .list(&RunFilter {
            limit: 10_000,
            ..RunFilter::default()
        })
        .unwrap();
    runs.sort_by_key(|s| s.run_key);
    runs.into_iter()
        .map(|mut summary| {
            let events = store
                .events(summary.run_key)
                .unwrap()
                .iter()
                .map(|e| {
                    let mut out = Vec::new();
                    encode_event(e, &mut out);
                    out
                })
                .collect();
            summary.fold = Default::default();
            (summary, events)
        })
        .collect()
}

/// Acknowledged appends (by receipt or through the sink) are there after the store is
/// closed and opened again, byte for byte, and the reopened store goes on where it
/// stopped: positions, run ids, run keys, ended runs.
pub fn acknowledged_appends_survive_reopen(factory: &dyn StoreFactory, name: &str) {
    let (kept, ended, sink_acked) = {
        let store = factory.open(name);
        let sink = Arc::new(RecordingSink::default());
        store.set_ack_sink(sink.clone());
        // Acknowledged by receipt.
        let kept = start(&*store, "kept", "wf", 1);
        store
            .wait_durable(store.append(kept, 1, &step(0, "a"), None).unwrap())
            .unwrap();
        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let event = [Event::EventReceived {
            name: "bin".into(),
            payload: binary,
            at_ms: 13,
        }];
        store
            .wait_durable(store.append(kept, 3, &event, None).unwrap())
            .unwrap();
        // Acknowledged only through the sink (or durable on return): no wait on the receipt.
        let (outcome, receipt) = store
            .start_run(&started("by-token", "wf", 2), Some(1))
            .unwrap();
        let sink_acked = outcome.run_key();
        let mut tokens = Vec::new();
        if !receipt.durable {
            tokens.push(1);
        }
        let receipt = store.append(sink_acked, 1, &step(0, "t"), Some(2)).unwrap();
        if !receipt.durable {
            tokens.push(2);
        }
        sink.wait_for(&tokens);
        let ended = start(&*store, "ended", "wf", 3);
        let end = [Event::RunFailed {
            error: ErrorInfo::new("E", "no", false),
            at_ms: 30,
        }];
        store
            .wait_durable(store.append(ended, 1, &end, None).unwrap())
            .unwrap();
        store.close().unwrap();
        (kept, ended, sink_acked)
    };
    let before = {
        let store = factory.open(name);
        let before = snapshot(&*store);
        store.close().unwrap();
        before
    };
    assert_eq!(
        before.len(),
        3,
        "every acknowledged start is there after a reopen"
    );
    assert_eq!(
        before
            .iter()
            .map(|(s, e)| (s.run_key, e.len()))
            .collect::<Vec<_>>(),
        [(kept, 4), (sink_acked, 3), (ended, 2)]
    );
    // And again: a second reopen reads the same bytes (nothing was lost or rewritten by the first).
    let store = factory.open(name);
    assert_eq!(
        snapshot(&*store),
        before,
        "a second reopen sees exactly what the first did"
    );
    // It goes on where it stopped.
    assert_eq!(
        store.start_run(&started("kept", "wf", 9), None).unwrap().0,
        StartOutcome::Existing { run_key: kept }
    );
    match store.append(kept, 3, &step(1, "b"), None) {
        Err(StoreError::Conflict {
            expected: 3,
            actual: 4,
            ..
        }) => {}
        other => panic!("an append at a used position after reopen must conflict, got {other:?}"),
    }
    store
        .wait_durable(store.append(kept, 4, &step(1, "b"), None).unwrap())
        .unwrap();
    assert!(matches!(
        store.append(ended, 2, &[Event::Paused { at_ms: 40 }], None),
        Err(StoreError::RunEnded { .. })
    ));
    let new_key = start(&*store, "new", "wf", 50);
    assert!(
        ![kept, ended, sink_acked].contains(&new_key),
        "run keys are not reused after a reopen"
    );
    store.close().unwrap();
}

/// A store that keeps nothing across a restart (capability `survives_reopen = false`)
/// says so truthfully: reopened, it is empty.
pub fn reopened_store_is_empty(factory: &dyn StoreFactory, name: &str) {
    {
        let store = factory.open(name);
        start(&*store, "forgotten", "wf", 1);
        store.close().unwrap();
    }
    let store = factory.open(name);
    assert_eq!(store.summary("forgotten").unwrap(), None);
    assert_eq!(
        store.list(&RunFilter::default()).unwrap(),
        Vec::<RunSummary>::new()
    );
    assert_eq!(
        store.claim_due("any", u64::MAX, 100).unwrap(),
        Vec::<RunSummary>::new()
    );
}
