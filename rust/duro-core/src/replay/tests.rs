//! Tests of the replay machine: folding journals, and refusing ones the machine could
//! not have written.

use super::*;
use crate::retry::{RetryDecision, RetryPolicy};

fn started() -> Event {
    Event::RunStarted {
        run_id: "r1".into(),
        workflow: "wf".into(),
        version: "1".into(),
        input: b"{}".to_vec(),
        deadline_ms: None,
        start_at_ms: None,
        step_count: 2,
        at_ms: 10,
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(2)
        .initial_delay_ms(100)
        .jitter(0.0)
        .build()
        .unwrap()
}

#[test]
fn begin_run_complete_then_replay() {
    let mut out = Vec::new();
    let mut state = RunState::new(1, &started()).unwrap();
    assert_eq!(
        state
            .begin_step(0, StepKind::Task, "a", 20, &mut out)
            .unwrap(),
        StepDecision::Run { attempt: 1 }
    );
    state
        .complete_step(0, 1, b"1".to_vec(), 30, &mut out)
        .unwrap();
    let mut journal = vec![started()];
    journal.extend(out.drain(..));
    let mut replayed = RunState::replay(1, &journal).unwrap();
    assert_eq!(
        replayed
            .begin_step(0, StepKind::Task, "a", 40, &mut out)
            .unwrap(),
        StepDecision::Replay {
            output: b"1".to_vec()
        }
    );
    assert!(out.is_empty(), "replay emits nothing");
    assert_eq!(replayed.event_count(), 3);
}

#[test]
fn renamed_step_is_non_determinism() {
    let mut out = Vec::new();
    let mut state = RunState::new(1, &started()).unwrap();
    state
        .begin_step(0, StepKind::Task, "reserve", 20, &mut out)
        .unwrap();
    let err = state
        .begin_step(0, StepKind::Task, "charge", 20, &mut out)
        .unwrap_err();
    match err {
        CoreError::NonDeterminism(nd) => {
            assert_eq!(
                (nd.seq, nd.expected.as_str(), nd.found.as_str()),
                (0, "reserve", "charge")
            );
            assert!(nd.to_string().contains("\"reserve\""));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn retry_waits_then_runs_next_attempt_and_gives_up() {
    let mut out = Vec::new();
    let mut state = RunState::new(1, &started()).unwrap();
    state
        .begin_step(0, StepKind::Task, "a", 0, &mut out)
        .unwrap();
    let err = ErrorInfo::new("E", "boom", true);
    assert_eq!(
        state
            .fail_step(0, 1, err.clone(), &policy(), 1_000, &mut out)
            .unwrap(),
        RetryDecision::RetryAt(1_100)
    );
    assert_eq!(
        state
            .begin_step(0, StepKind::Task, "a", 1_050, &mut out)
            .unwrap(),
        StepDecision::RetryAt(1_100)
    );
    assert_eq!(
        state
            .begin_step(0, StepKind::Task, "a", 1_100, &mut out)
            .unwrap(),
        StepDecision::Run { attempt: 2 }
    );
    assert!(matches!(
        state
            .fail_step(0, 2, err, &policy(), 1_200, &mut out)
            .unwrap(),
        RetryDecision::GiveUp(_)
    ));
    assert!(matches!(
        state
            .begin_step(0, StepKind::Task, "a", 1_300, &mut out)
            .unwrap(),
        StepDecision::ReplayFailed { .. }
    ));
}

#[test]
fn crashed_attempt_runs_again_with_next_attempt_number() {
    let mut out = Vec::new();
    let mut state = RunState::new(1, &started()).unwrap();
    state
        .begin_step(0, StepKind::Task, "a", 0, &mut out)
        .unwrap();
    let mut journal = vec![started()];
    journal.append(&mut out);
    let mut recovered = RunState::replay(1, &journal).unwrap();
    assert_eq!(recovered.step(0).unwrap().unfinished_attempts(), 1);
    assert_eq!(
        recovered
            .begin_step(0, StepKind::Task, "a", 5, &mut out)
            .unwrap(),
        StepDecision::Run { attempt: 2 }
    );
    // A late result from the dead attempt is refused.
    assert!(matches!(
        recovered.complete_step(0, 1, vec![], 6, &mut out),
        Err(CoreError::StaleResult { .. })
    ));
}

#[test]
fn malformed_journals_are_errors_not_panics() {
    let completed_unstarted = [
        started(),
        Event::StepCompleted {
            seq: 0,
            attempt: 1,
            output: vec![],
            at_ms: 1,
        },
    ];
    assert!(RunState::replay(1, &completed_unstarted).is_err());
    let after_end = [
        started(),
        Event::RunCancelled { at_ms: 1 },
        Event::Paused { at_ms: 2 },
    ];
    assert!(RunState::replay(1, &after_end).is_err());
    assert!(RunState::replay(1, &[Event::Paused { at_ms: 0 }]).is_err());
    assert!(RunState::replay(1, &[]).is_err());
}

#[test]
fn idempotency_keys_are_stable() {
    assert_eq!(
        idempotency_key("o-1", StepKind::Task, "charge"),
        "o-1:charge"
    );
    assert_eq!(
        idempotency_key("o-1", StepKind::Compensation, "charge"),
        "o-1:compensate:charge"
    );
}

/// Every prefix of a journal folds to the same state, or fails with the same error,
/// whether the events are borrowed or moved in.
#[test]
fn owned_replay_is_the_borrowed_replay() {
    let step = |seq: Seq, name: &str| Event::StepStarted {
        seq,
        kind: StepKind::Task,
        name: name.into(),
        attempt: 1,
        at_ms: 20 + u64::from(seq),
    };
    let done = |seq: Seq, output: &[u8]| Event::StepCompleted {
        seq,
        attempt: 1,
        output: output.to_vec(),
        at_ms: 30 + u64::from(seq),
    };
    let journals: Vec<Vec<Event>> = vec![
        vec![
            started(),
            step(0, "a"),
            done(0, b"1"),
            step(1, "b"),
            done(1, b"22"),
        ],
        // A retried step: started twice under the same name.
        vec![started(), step(0, "a"), step(0, "a"), done(0, b"1")],
        // Inconsistent journals: the errors must match too.
        vec![started(), step(0, "a"), step(0, "renamed")],
        vec![started(), step(0, "a"), done(0, b"1"), done(0, b"again")],
        vec![started(), done(3, b"never started")],
        vec![started(), step(2, "gap")],
        vec![started(), started()],
        vec![step(0, "first")],
        vec![],
    ];
    for journal in journals {
        for end in 0..=journal.len() {
            let prefix = &journal[..end];
            let borrowed = RunState::replay(1, prefix);
            let owned = RunState::replay_owned(1, prefix.to_vec());
            match (&borrowed, &owned) {
                (Ok(b), Ok(o)) => assert_eq!(b, o, "{prefix:?}"),
                (Err(b), Err(o)) => assert_eq!(b.to_string(), o.to_string(), "{prefix:?}"),
                _ => panic!("{prefix:?}: {borrowed:?} vs {owned:?}"),
            }
        }
    }
}
