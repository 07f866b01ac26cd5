//! Which calls read the store. On the embedded store every read first makes the
//! index catch up with the log (a forced index commit), so the hot paths must
//! answer from memory what memory knows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duro_core::journal::{Event, RunKey};
use duro_core::summary::RunSummary;
use duro_core::time::Millis;
use duro_engine::{Engine, EngineConfig, LaneId, ManualClock, Wait, Work};
use duro_store::{
    AckSink, MemoryStore, Receipt, RunFilter, StartOutcome, Store, StoreError, Token,
};

use crate::{task, wf};

/// The in-memory store, counting the reads of a run's summary and journal.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    reads: AtomicUsize,
}

impl Counting {
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl Store for Counting {
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
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.summary_by_key(run_key)
    }
    fn events(&self, run_key: RunKey) -> Result<Vec<Event>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.events(run_key)
    }
    fn visit_events(
        &self,
        run_key: RunKey,
        visit: &mut dyn FnMut(Event),
    ) -> Result<(), StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.visit_events(run_key, visit)
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
        self.inner.claim_due(owner, now_ms, limit)
    }
    fn max_append_bytes(&self) -> u64 {
        self.inner.max_append_bytes()
    }
    fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }
    fn describe(&self) -> String {
        "counting test double".into()
    }
}

#[test]
fn waiting_for_a_run_in_memory_reads_nothing_from_the_store() {
    let store = Arc::new(Counting::default());
    let engine = Engine::open(
        store.clone(),
        EngineConfig::default(),
        Arc::new(ManualClock::new(0)),
    )
    .unwrap();
    engine
        .register(wf("mem", vec![task("a"), task("b")]), LaneId::Sync)
        .unwrap();
    let run = engine.start("mem", "1", "m", vec![], None).unwrap().run_key;
    let before = store.reads();
    // Queued, then in a caller's hands: not finished, and nothing to read.
    assert!(matches!(
        engine.wait_finished(run, Some(Duration::ZERO)).unwrap(),
        Wait::TimedOut
    ));
    for _ in 0..2 {
        let Work::Execute(w) = engine
            .next_work(LaneId::Sync, Duration::from_secs(5))
            .unwrap()
            .unwrap()
        else {
            panic!("expected a step")
        };
        assert!(matches!(
            engine.wait_finished(run, Some(Duration::ZERO)).unwrap(),
            Wait::TimedOut
        ));
        engine
            .step_succeeded(w.handle, w.seq, w.attempt, b"1".to_vec())
            .unwrap();
    }
    // Finished: the outcome comes from the cache.
    let Wait::Finished(outcome) = engine
        .wait_finished(run, Some(Duration::from_secs(5)))
        .unwrap()
    else {
        panic!("expected the outcome")
    };
    assert_eq!(outcome.outputs.len(), 2);
    assert_eq!(store.reads(), before, "a wait read the store");
    // A run this engine does not hold in memory is answered from the store.
    assert!(engine
        .wait_finished(run + 1000, Some(Duration::ZERO))
        .is_err());
    assert!(store.reads() > before);
    engine.close().unwrap();
}
