//! How the embedded store frames a run's events in one log record.
//!
//! Format (log record type 2 = run events, written by this build):
//!
//! ```text
//! event_format:varint  run_key:varint  first_position:varint  count:varint  (event_len:varint  event)*count
//! ```
//!
//! `event` is the journal codec's encoding (see `duro_core::journal`), and
//! `event_format` is the version of that codec the events were written with
//! (`duro_core::journal::EVENT_FORMAT_VERSION`). A reader checks it before
//! decoding any event: a version above the one it supports is
//! [`StoreError::NewerFormat`](crate::StoreError::NewerFormat) naming both,
//! never a generic decoding error.
//!
//! Log record type 1 is the first layout, without the version (its events are
//! format 1): no longer written, read forever. Any other record type is
//! [`StoreError::UnknownRecordType`](crate::StoreError::UnknownRecordType).
//!
//! One append is one log record, so the events of an append are durable
//! together or not at all (a torn group could otherwise keep a step's start and
//! lose the timer recorded with it).
//!
//! The size of an append is the length of this encoding (type 2); every store
//! limits it the same way ([`append_size`], `Store::max_append_bytes`).

#[cfg(test)]
use duro_core::journal::decode_event;
use duro_core::journal::{
    encode_event, supports_event_format, Event, RunKey, EVENT_FORMAT_VERSION,
};

/// Log record type of a run-events record of the first layout (no format version; read only).
pub const RUN_EVENTS_V1: u8 = 1;
/// Log record type of a run-events record: what this build writes.
pub const RUN_EVENTS: u8 = 2;

pub fn encode(run_key: RunKey, first_position: u32, events: &[Event], out: &mut Vec<u8>) {
    put_varint(out, EVENT_FORMAT_VERSION as u64);
    put_varint(out, run_key);
    put_varint(out, first_position as u64);
    put_varint(out, events.len() as u64);
    let mut scratch = Vec::with_capacity(128);
    for event in events {
        scratch.clear();
        encode_event(event, &mut scratch);
        put_varint(out, scratch.len() as u64);
        out.extend_from_slice(&scratch);
    }
}

/// The size in bytes of an append of `events` to run `run_key` at `first_position`: the
/// length of its run-events record. Stores compare it with their `max_append_bytes`.
pub fn append_size(run_key: RunKey, first_position: u32, events: &[Event]) -> u64 {
    let mut size = varint_len(EVENT_FORMAT_VERSION as u64)
        + varint_len(run_key)
        + varint_len(first_position as u64)
        + varint_len(events.len() as u64);
    let mut scratch = Vec::with_capacity(128);
    for event in events {
        scratch.clear();
        encode_event(event, &mut scratch);
        size += varint_len(scratch.len() as u64) + scratch.len() as u64;
    }
    size
}

/// A decoded record: the run, its first position, and each event's bytes.
pub struct RunRecord<'a> {
    pub run_key: RunKey,
    pub first_position: u32,
    pub events: Vec<&'a [u8]>,
}

/// Why a log record is not a run record this build can read.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordError {
    /// A record type this build does not know.
    UnknownType(u8),
    /// Events of a newer event format than this build reads.
    NewerEventFormat(u64),
    /// The bytes do not follow the layout.
    Bad(String),
}

impl From<String> for RecordError {
    fn from(detail: String) -> RecordError {
        RecordError::Bad(detail)
    }
}

impl From<&str> for RecordError {
    fn from(detail: &str) -> RecordError {
        RecordError::Bad(detail.to_string())
    }
}

pub fn decode(record_type: u8, bytes: &[u8]) -> Result<RunRecord<'_>, RecordError> {
    let mut at = 0usize;
    match record_type {
        RUN_EVENTS_V1 => {}
        RUN_EVENTS => {
            let format = get_varint(bytes, &mut at)?;
            if format > EVENT_FORMAT_VERSION as u64 {
                return Err(RecordError::NewerEventFormat(format));
            }
            if !supports_event_format(format) {
                return Err(RecordError::Bad(format!(
                    "event format {format} does not exist"
                )));
            }
        }
        other => return Err(RecordError::UnknownType(other)),
    }
    let run_key = get_varint(bytes, &mut at)?;
    let first_position = u32::try_from(get_varint(bytes, &mut at)?)
        .map_err(|_| "position out of range".to_string())?;
    let count = get_varint(bytes, &mut at)?;
    // Every event takes at least 2 bytes, so a garbage count cannot make us allocate much.
    if count > (bytes.len() as u64) / 2 + 1 {
        return Err(format!("event count {count} does not fit in {} bytes", bytes.len()).into());
    }
    let mut events = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = get_varint(bytes, &mut at)? as usize;
        let end = at
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or("event length past the record end")?;
        events.push(&bytes[at..end]);
        at = end;
    }
    if at != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - at).into());
    }
    Ok(RunRecord {
        run_key,
        first_position,
        events,
    })
}

#[cfg(test)]
pub fn decode_events(record: &RunRecord<'_>) -> Result<Vec<Event>, String> {
    record
        .events
        .iter()
        .map(|bytes| decode_event(bytes).map_err(|e| e.to_string()))
        .collect()
}

fn varint_len(value: u64) -> u64 {
    (64 - value.max(1).leading_zeros() as u64).div_ceil(7)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or("record ends inside a number")?;
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("number too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let events = vec![Event::Paused { at_ms: 1 }, Event::Resumed { at_ms: 2 }];
        let mut out = Vec::new();
        encode(42, 7, &events, &mut out);
        assert_eq!(
            out[0], EVENT_FORMAT_VERSION as u8,
            "the record starts with the event format version"
        );
        assert_eq!(append_size(42, 7, &events), out.len() as u64);
        let record = decode(RUN_EVENTS, &out).unwrap();
        assert_eq!((record.run_key, record.first_position), (42, 7));
        assert_eq!(decode_events(&record).unwrap(), events);
        for cut in 0..out.len() {
            assert!(decode(RUN_EVENTS, &out[..cut]).is_err() || cut == out.len());
        }
        assert!(decode(RUN_EVENTS, &[0xff; 20]).is_err());
    }

    #[test]
    fn sizes_match_the_encoding() {
        for value in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(varint_len(value), out.len() as u64, "{value}");
        }
        let big = vec![Event::EventReceived {
            name: "e".into(),
            payload: vec![7; 300_000],
            at_ms: u64::MAX,
        }];
        let mut out = Vec::new();
        encode(u64::MAX >> 2, u32::MAX, &big, &mut out);
        assert_eq!(append_size(u64::MAX >> 2, u32::MAX, &big), out.len() as u64);
    }

    /// The first layout (type 1, no version) stays readable: stores written before the
    /// version was recorded still open.
    #[test]
    fn the_first_layout_is_read() {
        let events = vec![Event::Paused { at_ms: 1 }];
        let mut out = Vec::new();
        encode(5, 3, &events, &mut out);
        let v1 = &out[1..]; // the same record without its version
        let record = decode(RUN_EVENTS_V1, v1).unwrap();
        assert_eq!((record.run_key, record.first_position), (5, 3));
        assert_eq!(decode_events(&record).unwrap(), events);
        // A fixed type-1 record, byte for byte: run 1, position 0, one event (Paused at 1 ms).
        let record = decode(RUN_EVENTS_V1, &[1, 0, 1, 2, 8, 1]).unwrap();
        assert_eq!(
            decode_events(&record).unwrap(),
            vec![Event::Paused { at_ms: 1 }]
        );
    }

    #[test]
    fn newer_formats_and_unknown_types_are_named() {
        let mut out = Vec::new();
        encode(1, 0, &[Event::Paused { at_ms: 1 }], &mut out);
        let mut newer = Vec::new();
        put_varint(&mut newer, EVENT_FORMAT_VERSION as u64 + 1);
        newer.extend_from_slice(&out[1..]);
        assert_eq!(
            decode(RUN_EVENTS, &newer).err(),
            Some(RecordError::NewerEventFormat(
                EVENT_FORMAT_VERSION as u64 + 1
            ))
        );
        let mut zero = out.clone();
        zero[0] = 0;
        assert!(matches!(
            decode(RUN_EVENTS, &zero),
            Err(RecordError::Bad(_))
        ));
        assert_eq!(decode(3, &out).err(), Some(RecordError::UnknownType(3)));
        assert_eq!(decode(0, &out).err(), Some(RecordError::UnknownType(0)));
    }
}
