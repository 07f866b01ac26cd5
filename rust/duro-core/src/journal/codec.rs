//! Binary codec of journal events.
//!
//! Format (event format version 1):
//!
//! ```text
//! event   := tag:u8 fields...            (fields in the order listed per tag)
//! varint  := unsigned LEB128, at most 10 bytes
//! opt     := varint, 0 = none, v + 1 = some(v)
//! bytes   := varint length, then that many bytes
//! string  := bytes holding UTF-8
//! bool    := u8, 0 or 1
//! error   := type:string message:string retryable:bool
//!
//! tag 1  RunStarted           run_id:string workflow:string version:string input:bytes
//!                             deadline_ms:opt start_at_ms:opt step_count:varint at_ms:varint
//! tag 2  StepStarted          seq:varint kind:u8 name:string attempt:varint at_ms:varint
//! tag 3  StepCompleted        seq:varint attempt:varint output:bytes at_ms:varint
//! tag 4  StepFailed           seq:varint attempt:varint error retry_at_ms:opt at_ms:varint
//! tag 5  TimerSet             seq:varint fire_at_ms:varint at_ms:varint
//! tag 6  TimerFired           seq:varint at_ms:varint
//! tag 7  EventReceived        name:string payload:bytes at_ms:varint
//! tag 8  Paused               at_ms:varint
//! tag 9  Resumed              at_ms:varint
//! tag 10 CancelRequested      compensate:bool at_ms:varint
//! tag 11 CompensationStarted  reason:error failed_seq:opt at_ms:varint
//! tag 12 RunCompleted         output:bytes at_ms:varint
//! tag 13 RunFailed            error at_ms:varint
//! tag 14 RunCancelled         at_ms:varint
//! ```
//!
//! Step kinds: 0 task, 1 sleep, 2 wait_for_event, 3 compensation, 4 on_failure.
//! A change to any existing layout gets a new tag (and a new
//! [`EVENT_FORMAT_VERSION`]); old tags stay readable forever.
//!
//! An encoded event does not carry the version itself: the containers that
//! hold events record it, and check it before decoding, so that events from a
//! newer duro are refused with an error naming the version found and the
//! version supported (never a misleading "unknown event type" or, worse, a
//! misread). Where it is written:
//!
//! - the embedded store's log: every run-events record starts with the event
//!   format version of its events (`duro_store`'s `record.rs`, record type 2);
//! - the embedded store's index: `meta.event_format_version`, the newest
//!   version of any event it holds (`duro_store`'s `embedded/index/schema.rs`).
//!
//! A reader accepts versions `1..=EVENT_FORMAT_VERSION` (see
//! [`supports_event_format`]).

use super::wire::{put_bytes, put_opt_varint, put_u8, put_varint, Reader};
use super::{ErrorInfo, Event, StepKind};
use crate::error::DecodeError;

/// Version of this codec's layout; bumped when a tag is added or changed.
pub const EVENT_FORMAT_VERSION: u32 = 1;

/// Whether this build decodes events written with format `version` (every
/// version from 1 up to [`EVENT_FORMAT_VERSION`]; 0 was never written).
pub fn supports_event_format(version: u64) -> bool {
    (1..=u64::from(EVENT_FORMAT_VERSION)).contains(&version)
}

const RUN_STARTED: u8 = 1;
const STEP_STARTED: u8 = 2;
const STEP_COMPLETED: u8 = 3;
const STEP_FAILED: u8 = 4;
const TIMER_SET: u8 = 5;
const TIMER_FIRED: u8 = 6;
const EVENT_RECEIVED: u8 = 7;
const PAUSED: u8 = 8;
const RESUMED: u8 = 9;
const CANCEL_REQUESTED: u8 = 10;
const COMPENSATION_STARTED: u8 = 11;
const RUN_COMPLETED: u8 = 12;
const RUN_FAILED: u8 = 13;
const RUN_CANCELLED: u8 = 14;

/// Appends the encoding of `event` to `out`.
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    match event {
        Event::RunStarted {
            run_id,
            workflow,
            version,
            input,
            deadline_ms,
            start_at_ms,
            step_count,
            at_ms,
        } => {
            put_u8(out, RUN_STARTED);
            put_bytes(out, run_id.as_bytes());
            put_bytes(out, workflow.as_bytes());
            put_bytes(out, version.as_bytes());
            put_bytes(out, input);
            put_opt_varint(out, *deadline_ms);
            put_opt_varint(out, *start_at_ms);
            put_varint(out, *step_count as u64);
            put_varint(out, *at_ms);
        }
        Event::StepStarted {
            seq,
            kind,
            name,
            attempt,
            at_ms,
        } => {
            put_u8(out, STEP_STARTED);
            put_varint(out, *seq as u64);
            put_u8(out, kind.code());
            put_bytes(out, name.as_bytes());
            put_varint(out, *attempt as u64);
            put_varint(out, *at_ms);
        }
        Event::StepCompleted {
            seq,
            attempt,
            output,
            at_ms,
        } => {
            put_u8(out, STEP_COMPLETED);
            put_varint(out, *seq as u64);
            put_varint(out, *attempt as u64);
            put_bytes(out, output);
            put_varint(out, *at_ms);
        }
        Event::StepFailed {
            seq,
            attempt,
            error,
            retry_at_ms,
            at_ms,
        } => {
            put_u8(out, STEP_FAILED);
            put_varint(out, *seq as u64);
            put_varint(out, *attempt as u64);
            put_error(out, error);
            put_opt_varint(out, *retry_at_ms);
            put_varint(out, *at_ms);
        }
        Event::TimerSet {
            seq,
            fire_at_ms,
            at_ms,
        } => {
            put_u8(out, TIMER_SET);
            put_varint(out, *seq as u64);
            put_varint(out, *fire_at_ms);
            put_varint(out, *at_ms);
        }
        Event::TimerFired { seq, at_ms } => {
            put_u8(out, TIMER_FIRED);
            put_varint(out, *seq as u64);
            put_varint(out, *at_ms);
        }
        Event::EventReceived {
            name,
            payload,
            at_ms,
        } => {
            put_u8(out, EVENT_RECEIVED);
            put_bytes(out, name.as_bytes());
            put_bytes(out, payload);
            put_varint(out, *at_ms);
        }
        Event::Paused { at_ms } => {
            put_u8(out, PAUSED);
            put_varint(out, *at_ms);
        }
        Event::Resumed { at_ms } => {
            put_u8(out, RESUMED);
            put_varint(out, *at_ms);
        }
        Event::CancelRequested { compensate, at_ms } => {
            put_u8(out, CANCEL_REQUESTED);
            put_u8(out, *compensate as u8);
            put_varint(out, *at_ms);
        }
        Event::CompensationStarted {
            reason,
            failed_seq,
            at_ms,
        } => {
            put_u8(out, COMPENSATION_STARTED);
            put_error(out, reason);
            put_opt_varint(out, failed_seq.map(u64::from));
            put_varint(out, *at_ms);
        }
        Event::RunCompleted { output, at_ms } => {
            put_u8(out, RUN_COMPLETED);
            put_bytes(out, output);
            put_varint(out, *at_ms);
        }
        Event::RunFailed { error, at_ms } => {
            put_u8(out, RUN_FAILED);
            put_error(out, error);
            put_varint(out, *at_ms);
        }
        Event::RunCancelled { at_ms } => {
            put_u8(out, RUN_CANCELLED);
            put_varint(out, *at_ms);
        }
    }
}

fn put_error(out: &mut Vec<u8>, error: &ErrorInfo) {
    put_bytes(out, error.error_type.as_bytes());
    put_bytes(out, error.message.as_bytes());
    put_u8(out, error.retryable as u8);
}

/// Decodes exactly one event from `bytes` (trailing bytes are an error).
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    let mut r = Reader::new(bytes);
    let tag_offset = r.offset();
    let tag = r.u8()?;
    let event = match tag {
        RUN_STARTED => Event::RunStarted {
            run_id: r.string()?,
            workflow: r.string()?,
            version: r.string()?,
            input: r.bytes()?.to_vec(),
            deadline_ms: r.opt_varint()?,
            start_at_ms: r.opt_varint()?,
            step_count: r.u32()?,
            at_ms: r.varint()?,
        },
        STEP_STARTED => {
            let seq = r.u32()?;
            let kind_offset = r.offset();
            let kind = StepKind::from_code(r.u8()?).ok_or(DecodeError::Invalid {
                what: "step kind",
                offset: kind_offset,
            })?;
            Event::StepStarted {
                seq,
                kind,
                name: r.string()?,
                attempt: r.u32()?,
                at_ms: r.varint()?,
            }
        }
        STEP_COMPLETED => Event::StepCompleted {
            seq: r.u32()?,
            attempt: r.u32()?,
            output: r.bytes()?.to_vec(),
            at_ms: r.varint()?,
        },
        STEP_FAILED => Event::StepFailed {
            seq: r.u32()?,
            attempt: r.u32()?,
            error: read_error(&mut r)?,
            retry_at_ms: r.opt_varint()?,
            at_ms: r.varint()?,
        },
        TIMER_SET => Event::TimerSet {
            seq: r.u32()?,
            fire_at_ms: r.varint()?,
            at_ms: r.varint()?,
        },
        TIMER_FIRED => Event::TimerFired {
            seq: r.u32()?,
            at_ms: r.varint()?,
        },
        EVENT_RECEIVED => Event::EventReceived {
            name: r.string()?,
            payload: r.bytes()?.to_vec(),
            at_ms: r.varint()?,
        },
        PAUSED => Event::Paused { at_ms: r.varint()? },
        RESUMED => Event::Resumed { at_ms: r.varint()? },
        CANCEL_REQUESTED => Event::CancelRequested {
            compensate: r.bool()?,
            at_ms: r.varint()?,
        },
        COMPENSATION_STARTED => {
            let reason = read_error(&mut r)?;
            let seq_offset = r.offset();
            let failed_seq = match r.opt_varint()? {
                None => None,
                Some(v) => Some(u32::try_from(v).map_err(|_| DecodeError::Invalid {
                    what: "step seq",
                    offset: seq_offset,
                })?),
            };
            Event::CompensationStarted {
                reason,
                failed_seq,
                at_ms: r.varint()?,
            }
        }
        RUN_COMPLETED => Event::RunCompleted {
            output: r.bytes()?.to_vec(),
            at_ms: r.varint()?,
        },
        RUN_FAILED => Event::RunFailed {
            error: read_error(&mut r)?,
            at_ms: r.varint()?,
        },
        RUN_CANCELLED => Event::RunCancelled { at_ms: r.varint()? },
        other => {
            return Err(DecodeError::UnknownEventType {
                tag: other,
                offset: tag_offset,
            })
        }
    };
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes {
            extra: r.remaining(),
        });
    }
    Ok(event)
}

fn read_error(r: &mut Reader<'_>) -> Result<ErrorInfo, DecodeError> {
    Ok(ErrorInfo {
        error_type: r.string()?,
        message: r.string()?,
        retryable: r.bool()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_error() -> impl Strategy<Value = ErrorInfo> {
        (".{0,12}", ".{0,40}", any::<bool>()).prop_map(|(t, m, r)| ErrorInfo::new(t, m, r))
    }

    fn arb_kind() -> impl Strategy<Value = StepKind> {
        prop::sample::select(StepKind::ALL.to_vec())
    }

    pub(crate) fn arb_event() -> impl Strategy<Value = Event> {
        let bytes = || prop::collection::vec(any::<u8>(), 0..64);
        let opt = || prop::option::of(any::<u64>().prop_map(|v| v / 2));
        prop_oneof![
            (
                ".{0,20}",
                ".{0,20}",
                ".{0,8}",
                bytes(),
                opt(),
                opt(),
                any::<u32>(),
                any::<u64>()
            )
                .prop_map(
                    |(
                        run_id,
                        workflow,
                        version,
                        input,
                        deadline_ms,
                        start_at_ms,
                        step_count,
                        at_ms,
                    )| Event::RunStarted {
                        run_id,
                        workflow,
                        version,
                        input,
                        deadline_ms,
                        start_at_ms,
                        step_count,
                        at_ms
                    }
                ),
            (
                any::<u32>(),
                arb_kind(),
                ".{0,20}",
                any::<u32>(),
                any::<u64>()
            )
                .prop_map(|(seq, kind, name, attempt, at_ms)| Event::StepStarted {
                    seq,
                    kind,
                    name,
                    attempt,
                    at_ms
                }),
            (any::<u32>(), any::<u32>(), bytes(), any::<u64>()).prop_map(
                |(seq, attempt, output, at_ms)| Event::StepCompleted {
                    seq,
                    attempt,
                    output,
                    at_ms
                }
            ),
            (any::<u32>(), any::<u32>(), arb_error(), opt(), any::<u64>()).prop_map(
                |(seq, attempt, error, retry_at_ms, at_ms)| Event::StepFailed {
                    seq,
                    attempt,
                    error,
                    retry_at_ms,
                    at_ms
                }
            ),
            (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(seq, fire_at_ms, at_ms)| {
                Event::TimerSet {
                    seq,
                    fire_at_ms,
                    at_ms,
                }
            }),
            (any::<u32>(), any::<u64>()).prop_map(|(seq, at_ms)| Event::TimerFired { seq, at_ms }),
            (".{0,20}", bytes(), any::<u64>()).prop_map(|(name, payload, at_ms)| {
                Event::EventReceived {
                    name,
                    payload,
                    at_ms,
                }
            }),
            any::<u64>().prop_map(|at_ms| Event::Paused { at_ms }),
            any::<u64>().prop_map(|at_ms| Event::Resumed { at_ms }),
            (any::<bool>(), any::<u64>())
                .prop_map(|(compensate, at_ms)| Event::CancelRequested { compensate, at_ms }),
            (arb_error(), prop::option::of(any::<u32>()), any::<u64>()).prop_map(
                |(reason, failed_seq, at_ms)| {
                    Event::CompensationStarted {
                        reason,
                        failed_seq,
                        at_ms,
                    }
                }
            ),
            (bytes(), any::<u64>())
                .prop_map(|(output, at_ms)| Event::RunCompleted { output, at_ms }),
            (arb_error(), any::<u64>())
                .prop_map(|(error, at_ms)| Event::RunFailed { error, at_ms }),
            any::<u64>().prop_map(|at_ms| Event::RunCancelled { at_ms }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(event in arb_event()) {
            let mut out = Vec::new();
            encode_event(&event, &mut out);
            prop_assert_eq!(decode_event(&out).unwrap(), event);
        }

        #[test]
        fn every_prefix_fails_cleanly(event in arb_event()) {
            let mut out = Vec::new();
            encode_event(&event, &mut out);
            for cut in 0..out.len() {
                prop_assert!(decode_event(&out[..cut]).is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_event(&bytes);
        }
    }

    #[test]
    fn unknown_tag_is_a_typed_error() {
        assert_eq!(
            decode_event(&[200, 0]),
            Err(DecodeError::UnknownEventType {
                tag: 200,
                offset: 0
            })
        );
        assert!(matches!(
            decode_event(&[]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut out = Vec::new();
        encode_event(&Event::Paused { at_ms: 5 }, &mut out);
        out.push(0);
        assert_eq!(
            decode_event(&out),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn supported_event_formats() {
        assert!(supports_event_format(1));
        assert!(supports_event_format(EVENT_FORMAT_VERSION as u64));
        assert!(!supports_event_format(0));
        assert!(!supports_event_format(EVENT_FORMAT_VERSION as u64 + 1));
        assert!(!supports_event_format(u64::MAX));
    }

    /// The first format, byte for byte: a change here breaks every journal on disk.
    #[test]
    fn format_v1_fixture() {
        let event = Event::StepStarted {
            seq: 3,
            kind: StepKind::Task,
            name: "ship".into(),
            attempt: 2,
            at_ms: 300,
        };
        let mut out = Vec::new();
        encode_event(&event, &mut out);
        assert_eq!(out, vec![2, 3, 0, 4, b's', b'h', b'i', b'p', 2, 0xac, 0x02]);
    }
}
