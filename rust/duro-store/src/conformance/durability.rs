//! Checks of how appends become durable and are acknowledged: following the
//! sync rounds reaches durability, and every token-carrying write is
//! acknowledged exactly once (through the [`RecordingSink`], a test double
//! that records acknowledgements and lets a check wait for them).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::fixtures::{start, started, step};
use crate::api::{AckSink, Receipt, StartOutcome, Store, Token};
use crate::error::StoreError;

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
