//! The journal event codec target (`duro_core::journal::decode_event`) and its seeds: the
//! encoding of every event kind with ordinary and extreme values. Shared by
//! `rust/duro-core/tests/fuzz_codec.rs`, the store fuzz tests and the AFL targets.
#![allow(dead_code)]

use duro_core::journal::{decode_event, encode_event, ErrorInfo, Event, StepKind};

/// Every event kind, each with ordinary, empty and extreme values.
pub fn sample_events() -> Vec<Event> {
    let error = ErrorInfo::new("ValueError", "bad input: ünïcødé \"quoted\"", true);
    let empty_error = ErrorInfo::new("", "", false);
    let big = vec![0xA5u8; 300];
    let mut events = Vec::new();
    for (at, seq, text) in [
        (0u64, 0u32, ""),
        (1_700_000_000_000, 3, "ship-order"),
        (u64::MAX, u32::MAX, "ż\u{0}\u{10FFFF}"),
    ] {
        events.push(Event::RunStarted {
            run_id: format!("run-{text}"),
            workflow: text.into(),
            version: "v1".into(),
            input: if seq == 3 {
                big.clone()
            } else {
                br#"{"n":1}"#.to_vec()
            },
            deadline_ms: if seq == 0 { None } else { Some(at / 2) },
            start_at_ms: if seq == 3 {
                Some(at.wrapping_add(5))
            } else {
                None
            },
            step_count: seq,
            at_ms: at,
        });
        for kind in StepKind::ALL {
            events.push(Event::StepStarted {
                seq,
                kind,
                name: text.into(),
                attempt: seq.wrapping_add(1),
                at_ms: at,
            });
        }
        events.push(Event::StepCompleted {
            seq,
            attempt: 1,
            output: big[..(seq as usize).min(300)].to_vec(),
            at_ms: at,
        });
        events.push(Event::StepFailed {
            seq,
            attempt: 2,
            error: error.clone(),
            retry_at_ms: Some(at / 3),
            at_ms: at,
        });
        events.push(Event::StepFailed {
            seq,
            attempt: u32::MAX,
            error: empty_error.clone(),
            retry_at_ms: None,
            at_ms: at,
        });
        events.push(Event::TimerSet {
            seq,
            fire_at_ms: at.wrapping_add(1000),
            at_ms: at,
        });
        events.push(Event::TimerFired { seq, at_ms: at });
        events.push(Event::EventReceived {
            name: text.into(),
            payload: b"{\"ok\":true}".to_vec(),
            at_ms: at,
        });
        events.push(Event::Paused { at_ms: at });
        events.push(Event::Resumed { at_ms: at });
        events.push(Event::CancelRequested {
            compensate: seq % 2 == 1,
            at_ms: at,
        });
        events.push(Event::CompensationStarted {
            reason: error.clone(),
            failed_seq: Some(seq),
            at_ms: at,
        });
        events.push(Event::CompensationStarted {
            reason: empty_error.clone(),
            failed_seq: None,
            at_ms: at,
        });
        events.push(Event::RunCompleted {
            output: text.as_bytes().to_vec(),
            at_ms: at,
        });
        events.push(Event::RunFailed {
            error: error.clone(),
            at_ms: at,
        });
        events.push(Event::RunCancelled { at_ms: at });
    }
    events
}

pub fn encode(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    encode_event(event, &mut out);
    out
}

/// The encodings of [`sample_events`].
pub fn event_seeds() -> Vec<Vec<u8>> {
    sample_events().iter().map(encode).collect()
}

/// Decodes `data`; whatever decodes must survive an encode/decode round trip.
pub fn codec_target(data: &[u8]) -> Result<(), String> {
    let Ok(event) = decode_event(data) else {
        return Ok(());
    };
    let again = encode(&event);
    match decode_event(&again) {
        Ok(back) if back == event => Ok(()),
        Ok(back) => Err(format!(
            "round trip changed the event: {event:?} became {back:?}"
        )),
        Err(e) => Err(format!("the re-encoding of {event:?} does not decode: {e}")),
    }
}
