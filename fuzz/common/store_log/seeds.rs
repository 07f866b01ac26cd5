//! Target 1's seeds: the records a real workload writes (every event kind), hand-made runs
//! and edge cases real stores never write.

use std::path::PathBuf;
use std::sync::Arc;

use duro_core::journal::{ErrorInfo, Event, StepKind};
use duro_store::{EmbeddedStore, StartOutcome, Store};
use duro_wal::fs::SimFs;

use super::super::events::{encode, sample_events};
use super::super::wal_dir::{frame_offsets, RECORD_HEADER_SIZE};
use super::record::{encode_run_record, LogInput, FLAG_PREALLOCATED, RUN_EVENTS};
use super::setup::{started, store_options, ScratchDir};

/// Payloads the store really writes: a workload with every event kind, read back from its
/// log as `(record_type, payload)` records, one `LogInput` per store.
pub fn record_seeds() -> Vec<LogInput> {
    let dir = ScratchDir::new("seeds");
    let fs = Arc::new(SimFs::new());
    fs.set_tracing(false);
    {
        let store = EmbeddedStore::open(&dir.path, store_options(fs.clone()))
            .expect("open a store for seeds");
        let error = ErrorInfo::new("ValueError", "bad", true);
        let key = |outcome: StartOutcome| outcome.run_key();
        let (a, r) = store.start_run(&started("a"), None).unwrap();
        store.wait_durable(r).unwrap();
        let a = key(a);
        let steps = vec![
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Task,
                name: "charge".into(),
                attempt: 1,
                at_ms: 3,
            },
            Event::StepFailed {
                seq: 0,
                attempt: 1,
                error: error.clone(),
                retry_at_ms: Some(10),
                at_ms: 4,
            },
            Event::StepStarted {
                seq: 0,
                kind: StepKind::Task,
                name: "charge".into(),
                attempt: 2,
                at_ms: 10,
            },
            Event::StepCompleted {
                seq: 0,
                attempt: 2,
                output: b"{\"ok\":1}".to_vec(),
                at_ms: 11,
            },
            Event::StepStarted {
                seq: 1,
                kind: StepKind::Sleep,
                name: "nap".into(),
                attempt: 1,
                at_ms: 12,
            },
            Event::TimerSet {
                seq: 1,
                fire_at_ms: 100,
                at_ms: 12,
            },
        ];
        let r = store.append(a, 1, &steps, None).unwrap();
        store.wait_durable(r).unwrap();
        let more = vec![
            Event::TimerFired { seq: 1, at_ms: 100 },
            Event::StepCompleted {
                seq: 1,
                attempt: 1,
                output: vec![],
                at_ms: 100,
            },
            Event::StepStarted {
                seq: 2,
                kind: StepKind::WaitEvent,
                name: "approved".into(),
                attempt: 1,
                at_ms: 101,
            },
        ];
        let r = store.append(a, 7, &more, None).unwrap();
        store.wait_durable(r).unwrap();
        let singles = vec![
            Event::EventReceived {
                name: "approved".into(),
                payload: b"yes".to_vec(),
                at_ms: 102,
            },
            Event::StepCompleted {
                seq: 2,
                attempt: 1,
                output: b"yes".to_vec(),
                at_ms: 102,
            },
            Event::Paused { at_ms: 103 },
            Event::Resumed { at_ms: 104 },
            Event::CancelRequested {
                compensate: true,
                at_ms: 105,
            },
            Event::CompensationStarted {
                reason: error.clone(),
                failed_seq: Some(2),
                at_ms: 106,
            },
            Event::StepStarted {
                seq: 3,
                kind: StepKind::Compensation,
                name: "refund".into(),
                attempt: 1,
                at_ms: 107,
            },
            Event::StepCompleted {
                seq: 3,
                attempt: 1,
                output: vec![],
                at_ms: 108,
            },
            Event::StepStarted {
                seq: 4,
                kind: StepKind::OnFailure,
                name: "notify".into(),
                attempt: 1,
                at_ms: 109,
            },
            Event::StepFailed {
                seq: 4,
                attempt: 1,
                error: error.clone(),
                retry_at_ms: None,
                at_ms: 110,
            },
            Event::RunFailed { error, at_ms: 111 },
        ];
        for (i, event) in singles.into_iter().enumerate() {
            let r = store
                .append(a, 10 + i as u32, std::slice::from_ref(&event), None)
                .unwrap();
            store.wait_durable(r).unwrap();
        }
        let (b, r) = store.start_run(&started("b"), None).unwrap();
        store.wait_durable(r).unwrap();
        let r = store
            .append(
                key(b),
                1,
                &[Event::RunCompleted {
                    output: b"done".to_vec(),
                    at_ms: 5,
                }],
                None,
            )
            .unwrap();
        store.wait_durable(r).unwrap();
        let (c, r) = store.start_run(&started("c"), None).unwrap();
        store.wait_durable(r).unwrap();
        let r = store
            .append(key(c), 1, &[Event::RunCancelled { at_ms: 6 }], None)
            .unwrap();
        store.wait_durable(r).unwrap();
        let (d, r) = store.start_run(&started("d-still-running"), None).unwrap();
        store.wait_durable(r).unwrap();
        let r = store
            .append(
                key(d),
                1,
                &[Event::StepStarted {
                    seq: 0,
                    kind: StepKind::Task,
                    name: "s".into(),
                    attempt: 1,
                    at_ms: 7,
                }],
                None,
            )
            .unwrap();
        store.wait_durable(r).unwrap();
        store.close().unwrap();
    }
    let mut all = Vec::new();
    let mut segments: Vec<PathBuf> = fs
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    for path in segments {
        let image = fs.read_file(&path).unwrap_or_default();
        for at in frame_offsets(&image) {
            let len = u32::from_le_bytes(image[at..at + 4].try_into().unwrap()) as usize;
            let payload = &image[at + RECORD_HEADER_SIZE..at + RECORD_HEADER_SIZE + len];
            all.push((image[at + 4], payload.to_vec()));
        }
    }
    let mut seeds = vec![
        LogInput {
            flags: 0,
            records: all.clone(),
        },
        LogInput {
            flags: FLAG_PREALLOCATED,
            records: all.clone(),
        },
    ];
    // Each run's records alone, and one record per input.
    for n in 1..=all.len().min(6) {
        seeds.push(LogInput {
            flags: 0,
            records: all[..n].to_vec(),
        });
    }
    // Hand-made: every sample event as the start of a run, and runs at extreme keys.
    let events = sample_events();
    let start = encode(&events[0]);
    for (i, event) in events.iter().enumerate() {
        let mut records = vec![
            (
                RUN_EVENTS,
                encode_run_record(1, 0, std::slice::from_ref(&start)),
            ),
            (RUN_EVENTS, encode_run_record(1, 1, &[encode(event)])),
        ];
        if i > 0 {
            // Another run starting with this event (a run id of its own, when it is a start).
            records.push((
                RUN_EVENTS,
                encode_run_record(i as u64 + 2, 0, &[encode(event)]),
            ));
        }
        seeds.push(LogInput { flags: 0, records });
    }
    for key in [0u64, i64::MAX as u64, (i64::MAX as u64) + 1] {
        seeds.push(LogInput {
            flags: 0,
            records: vec![(
                RUN_EVENTS,
                encode_run_record(key, 0, std::slice::from_ref(&start)),
            )],
        });
    }
    seeds
}

/// Seeds at the edges that real stores never write (run keys near u64::MAX, a record without
/// events, two runs with one run id): fuzzed, not required to open cleanly.
pub fn edge_seeds() -> Vec<LogInput> {
    let start = encode(&sample_events()[0]);
    vec![
        LogInput {
            flags: 0,
            records: vec![(
                RUN_EVENTS,
                encode_run_record(u64::MAX, 0, std::slice::from_ref(&start)),
            )],
        },
        LogInput {
            flags: 0,
            records: vec![(
                RUN_EVENTS,
                encode_run_record(u64::MAX - 1, 0, std::slice::from_ref(&start)),
            )],
        },
        LogInput {
            flags: 0,
            records: vec![(RUN_EVENTS, encode_run_record(1, 0, &[]))],
        },
        LogInput {
            flags: 0,
            records: vec![
                (
                    RUN_EVENTS,
                    encode_run_record(2, 0, std::slice::from_ref(&start)),
                ),
                (
                    RUN_EVENTS,
                    encode_run_record(1, 0, std::slice::from_ref(&start)),
                ),
            ],
        },
    ]
}
