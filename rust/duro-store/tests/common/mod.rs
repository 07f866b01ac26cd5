//! Helpers shared by the embedded store's tests (`embedded_*.rs`).
#![allow(dead_code)]

use duro_core::journal::{Event, StepKind};

pub fn step(seq: u32) -> Vec<Event> {
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
            output: format!("{seq}").into_bytes(),
            at_ms: 6,
        },
    ]
}
