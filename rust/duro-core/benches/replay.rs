//! Replay cost: rebuilding a run from its journal (decode + fold + the
//! determinism check + the next decision). Target: <= 1 µs per event.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use duro_core::journal::{decode_event, encode_event, Event, StepKind};
use duro_core::limits::Limits;
use duro_core::linear;
use duro_core::replay::RunState;
use duro_core::retry::RetryPolicy;
use duro_core::workflow::{StepDef, WorkflowDef};

fn journal(steps: u32) -> (WorkflowDef, Vec<Event>) {
    let def = WorkflowDef {
        name: "bench".into(),
        version: "1".into(),
        steps: (0..=steps)
            .map(|i| StepDef::task(format!("step-{i}"), RetryPolicy::default()))
            .collect(),
        on_failure: None,
        timeout_ms: None,
    };
    let mut events = vec![Event::RunStarted {
        run_id: "bench-run".into(),
        workflow: "bench".into(),
        version: "1".into(),
        input: br#"{"order_id":"o-1"}"#.to_vec(),
        deadline_ms: None,
        start_at_ms: None,
        step_count: steps + 1,
        at_ms: 1,
    }];
    for seq in 0..steps {
        events.push(Event::StepStarted {
            seq,
            kind: StepKind::Task,
            name: format!("step-{seq}"),
            attempt: 1,
            at_ms: 2,
        });
        events.push(Event::StepCompleted {
            seq,
            attempt: 1,
            output: br#"{"ok":true,"n":12345}"#.to_vec(),
            at_ms: 3,
        });
    }
    (def, events)
}

fn bench_replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("replay");
    for steps in [10u32, 1_000] {
        let (def, events) = journal(steps);
        let encoded: Vec<Vec<u8>> = events
            .iter()
            .map(|e| {
                let mut out = Vec::new();
                encode_event(e, &mut out);
                out
            })
            .collect();
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("decode+fold+decide", steps),
            &encoded,
            |b, encoded| {
                let limits = Limits::default();
                b.iter(|| {
                    let decoded: Vec<Event> = encoded
                        .iter()
                        .map(|bytes| decode_event(bytes).unwrap())
                        .collect();
                    let mut state = RunState::replay_owned(1, decoded).unwrap();
                    linear::check_against(&state, &def).unwrap();
                    let mut out = Vec::new();
                    linear::next_action(&mut state, &def, &limits, 10, &mut out).unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
