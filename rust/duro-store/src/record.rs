//! How the embedded store frames a run's events in one log record.
//!
//! Format (log record type 1 = run events, version 1):
//!
//! ```text
//! run_key:varint  first_position:varint  count:varint  (event_len:varint  event)*count
//! ```
//!
//! `event` is the journal codec's encoding (see `duro_core::journal`). One
//! append is one log record, so the events of an append are durable together
//! or not at all (a torn group could otherwise keep a step's start and lose
//! the timer recorded with it).

#[cfg(test)]
use duro_core::journal::decode_event;
use duro_core::journal::{encode_event, Event, RunKey};

/// Log record type of a run-events record.
pub const RUN_EVENTS: u8 = 1;

pub fn encode(run_key: RunKey, first_position: u32, events: &[Event], out: &mut Vec<u8>) {
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

/// A decoded record: the run, its first position, and each event's bytes.
pub struct RunRecord<'a> {
    pub run_key: RunKey,
    pub first_position: u32,
    pub events: Vec<&'a [u8]>,
}

pub fn decode(bytes: &[u8]) -> Result<RunRecord<'_>, String> {
    let mut at = 0usize;
    let run_key = get_varint(bytes, &mut at)?;
    let first_position = u32::try_from(get_varint(bytes, &mut at)?)
        .map_err(|_| "position out of range".to_string())?;
    let count = get_varint(bytes, &mut at)?;
    // Every event takes at least 2 bytes, so a garbage count cannot make us allocate much.
    if count > (bytes.len() as u64) / 2 + 1 {
        return Err(format!(
            "event count {count} does not fit in {} bytes",
            bytes.len()
        ));
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
        return Err(format!("{} trailing bytes", bytes.len() - at));
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

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
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
        let record = decode(&out).unwrap();
        assert_eq!((record.run_key, record.first_position), (42, 7));
        assert_eq!(decode_events(&record).unwrap(), events);
        for cut in 0..out.len() {
            assert!(decode(&out[..cut]).is_err() || cut == out.len());
        }
        assert!(decode(&[0xff; 20]).is_err());
    }
}
