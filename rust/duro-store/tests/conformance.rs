//! Every store passes the same suite; each report says which checks ran on which store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use duro_core::journal::{Event, RunKey};
use duro_core::summary::RunSummary;
use duro_core::time::Millis;
use duro_store::conformance::{self, Capabilities, Report, StoreFactory, CHECKS};
use duro_store::{
    AckSink, EmbeddedOptions, EmbeddedStore, MemoryStore, Receipt, RunFilter, StartOutcome, Store,
    StoreError, Token,
};

struct Memory;

impl StoreFactory for Memory {
    fn name(&self) -> String {
        "in-memory".into()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            survives_reopen: false,
            lease_ms: None,
        }
    }
    fn open(&self, _name: &str) -> Arc<dyn Store> {
        // A new process would get a new, empty store: nothing is kept.
        Arc::new(MemoryStore::new())
    }
}

struct Embedded {
    root: tempfile::TempDir,
}

impl StoreFactory for Embedded {
    fn name(&self) -> String {
        "embedded".into()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            survives_reopen: true,
            lease_ms: None,
        }
    }
    fn open(&self, name: &str) -> Arc<dyn Store> {
        let dir: PathBuf = self.root.path().join(name);
        Arc::new(EmbeddedStore::open(dir, EmbeddedOptions::default()).unwrap())
    }
}

fn check_report(report: &Report, expect_not_applicable: &[&str]) {
    println!("{report}");
    let mut seen: Vec<&str> = report.ran.clone();
    seen.extend(report.not_applicable.iter().map(|(name, _)| *name));
    seen.sort_unstable();
    let mut all = CHECKS.to_vec();
    all.sort_unstable();
    assert_eq!(
        seen, all,
        "every check either ran or is reported not applicable, once"
    );
    let mut not_applicable: Vec<&str> = report
        .not_applicable
        .iter()
        .map(|(name, _)| *name)
        .collect();
    not_applicable.sort_unstable();
    let mut expected = expect_not_applicable.to_vec();
    expected.sort_unstable();
    assert_eq!(not_applicable, expected, "{}", report.store);
    assert!(
        report.not_applicable.iter().all(|(_, why)| !why.is_empty()),
        "each says why"
    );
}

#[test]
fn memory_store_conforms() {
    let report = conformance::run_all(&Memory);
    check_report(
        &report,
        &[
            "leased_runs_are_not_handed_out_twice",
            "acknowledged_appends_survive_reopen",
        ],
    );
    assert!(report.ran.contains(&"reopened_store_is_empty"));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("0 tokens acknowledged through the sink")),
        "the in-memory store acknowledges on return: {:?}",
        report.notes
    );
}

#[test]
fn embedded_store_conforms() {
    let factory = Embedded {
        root: tempfile::tempdir().unwrap(),
    };
    let report = conformance::run_all(&factory);
    check_report(
        &report,
        &[
            "leased_runs_are_not_handed_out_twice",
            "reopened_store_is_empty",
        ],
    );
    assert!(report.ran.contains(&"acknowledged_appends_survive_reopen"));
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("0 receipts durable on return")),
        "the embedded store acknowledges every token through the sink: {:?}",
        report.notes
    );
}

/// A leasing store, for the checks only a store shared by processes runs: the in-memory
/// store behind the lease rules `Store::claim_due` documents. It shows that those checks
/// hold together (a PostgreSQL store will run them for real); it is not a product.
struct Leasing {
    inner: MemoryStore,
    lease_ms: u64,
    leases: Mutex<HashMap<RunKey, (String, Millis)>>,
    /// Breaks the rules: hands held runs to other owners too.
    ignore_leases: bool,
}

impl Store for Leasing {
    fn set_ack_sink(&self, sink: Arc<dyn AckSink>) {
        self.inner.set_ack_sink(sink)
    }
    fn start_run(
        &self,
        started: &Event,
        token: Option<Token>,
    ) -> Result<(StartOutcome, Receipt), StoreError> {
        self.inner.start_run(started, token)
    }
    fn append(
        &self,
        key: RunKey,
        at: u32,
        events: &[Event],
        token: Option<Token>,
    ) -> Result<Receipt, StoreError> {
        self.inner.append(key, at, events, token)
    }
    fn wait_durable(&self, receipt: Receipt) -> Result<(), StoreError> {
        self.inner.wait_durable(receipt)
    }
    fn durable_position(&self) -> u64 {
        self.inner.durable_position()
    }
    fn summary(&self, run_id: &str) -> Result<Option<RunSummary>, StoreError> {
        self.inner.summary(run_id)
    }
    fn summary_by_key(&self, run_key: RunKey) -> Result<Option<RunSummary>, StoreError> {
        self.inner.summary_by_key(run_key)
    }
    fn events(&self, run_key: RunKey) -> Result<Vec<Event>, StoreError> {
        self.inner.events(run_key)
    }
    fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        self.inner.list(filter)
    }
    fn claim_due(
        &self,
        owner: &str,
        now_ms: Millis,
        limit: usize,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let mut leases = self.leases.lock().unwrap();
        let mut claimed = Vec::new();
        for summary in self.inner.claim_due(owner, now_ms, usize::MAX)? {
            if claimed.len() >= limit {
                break;
            }
            let due = summary.wake_at_ms.is_some_and(|w| w <= now_ms);
            let held = !self.ignore_leases
                && leases
                    .get(&summary.run_key)
                    .is_some_and(|(o, until)| o != owner && now_ms < *until);
            if due && !held {
                leases.insert(
                    summary.run_key,
                    (owner.to_string(), now_ms.saturating_add(self.lease_ms)),
                );
                claimed.push(summary);
            }
        }
        Ok(claimed)
    }
    fn max_append_bytes(&self) -> u64 {
        self.inner.max_append_bytes()
    }
    fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }
    fn describe(&self) -> String {
        "leasing test double".into()
    }
}

fn leasing(ignore_leases: bool) -> Leasing {
    Leasing {
        inner: MemoryStore::new(),
        lease_ms: 1_000,
        leases: Mutex::new(HashMap::new()),
        ignore_leases,
    }
}

struct LeasingFactory;

impl StoreFactory for LeasingFactory {
    fn name(&self) -> String {
        "leasing test double".into()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            survives_reopen: false,
            lease_ms: Some(1_000),
        }
    }
    fn open(&self, _name: &str) -> Arc<dyn Store> {
        Arc::new(leasing(false))
    }
}

#[test]
fn the_lease_checks_hold_together() {
    let report = conformance::run_all(&LeasingFactory);
    check_report(
        &report,
        &[
            "unleased_claims_hold_nothing",
            "acknowledged_appends_survive_reopen",
        ],
    );
    assert!(report.ran.contains(&"leased_runs_are_not_handed_out_twice"));
}

/// The lease check is not vacuous: a store that hands a held run to a second owner fails it.
#[test]
#[should_panic(expected = "all are held by worker-1")]
fn a_store_that_ignores_leases_fails_the_lease_check() {
    conformance::leased_runs_are_not_handed_out_twice(&leasing(true), 1_000);
}

/// Both stores refuse the same oversized append with the same error and the same numbers.
#[test]
fn both_stores_refuse_an_oversized_append_alike() {
    let root = tempfile::tempdir().unwrap();
    let stores: [Arc<dyn Store>; 2] = [
        Arc::new(MemoryStore::new()),
        Arc::new(EmbeddedStore::open(root.path().join("e"), EmbeddedOptions::default()).unwrap()),
    ];
    let mut errors = Vec::new();
    for store in &stores {
        let (outcome, receipt) = store
            .start_run(&conformance::started("big", "wf", 1), None)
            .unwrap();
        store.wait_durable(receipt).unwrap();
        let five = [Event::EventReceived {
            name: "x".into(),
            payload: vec![0; 5 << 20],
            at_ms: 2,
        }];
        match store.append(outcome.run_key(), 1, &five, None) {
            Err(StoreError::AppendTooLarge { size, max }) => errors.push((size, max)),
            other => panic!(
                "{}: expected AppendTooLarge, got {other:?}",
                store.describe()
            ),
        }
    }
    assert_eq!(
        errors[0], errors[1],
        "the same size and limit from both stores"
    );
    assert_eq!(errors[0].1, duro_store::DEFAULT_MAX_APPEND_BYTES);
}
