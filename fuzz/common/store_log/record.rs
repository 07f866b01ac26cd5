//! The store log's input format: the store's run-record framing (rewritten, it is private)
//! and [`LogInput`], the records of one segment, with the constants both use.

use super::super::fuzzkit::put_varint;
use super::super::wal_dir::{encode_record, segment_header, FLAG_SYNC_START};

pub const RUN_EVENTS: u8 = 1;
pub const SEGMENT_SIZE: u64 = 64 << 10;
pub const FLAG_PREALLOCATED: u8 = 1;

// ---------------------------------------------------------------------------------------
// The store's record framing (rust/duro-store/src/record.rs), rewritten: it is private.

/// `run_key:varint first_position:varint count:varint (len:varint event)*`.
pub fn encode_run_record(run_key: u64, first_position: u64, events: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, run_key);
    put_varint(&mut out, first_position);
    put_varint(&mut out, events.len() as u64);
    for event in events {
        put_varint(&mut out, event.len() as u64);
        out.extend_from_slice(event);
    }
    out
}

pub(super) fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of a run record, if it parses (lenient: for mutating, not for judging).
pub fn parse_run_record(bytes: &[u8]) -> Option<(u64, u64, Vec<Vec<u8>>)> {
    let mut at = 0;
    let run_key = get_varint(bytes, &mut at)?;
    let first = get_varint(bytes, &mut at)?;
    let count = get_varint(bytes, &mut at)?;
    let mut events = Vec::new();
    for _ in 0..count.min(1000) {
        let len = get_varint(bytes, &mut at)? as usize;
        let end = at.checked_add(len).filter(|&e| e <= bytes.len())?;
        events.push(bytes[at..end].to_vec());
        at = end;
    }
    Some((run_key, first, events))
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogInput {
    pub flags: u8,
    pub records: Vec<(u8, Vec<u8>)>,
}

impl LogInput {
    pub fn from_bytes(data: &[u8]) -> LogInput {
        let Some((&flags, mut rest)) = data.split_first() else {
            return LogInput::default();
        };
        let mut records = Vec::new();
        while let Some((&record_type, after)) = rest.split_first() {
            let (len, after) = match after {
                [a, b, tail @ ..] => (u16::from_le_bytes([*a, *b]) as usize, tail),
                _ => (after.len(), &[][..]),
            };
            let len = len.min(after.len());
            records.push((record_type, after[..len].to_vec()));
            rest = &after[len..];
        }
        LogInput { flags, records }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        for (record_type, payload) in &self.records {
            let payload = &payload[..payload.len().min(u16::MAX as usize)];
            out.push(*record_type);
            out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
            out.extend_from_slice(payload);
        }
        out
    }

    /// Segment 1 holding the records with valid checksums.
    pub fn segment_image(&self) -> Vec<u8> {
        const EPOCH: u32 = 0x5EED_0001;
        let mut image = segment_header(EPOCH, 1).to_vec();
        for (i, (record_type, payload)) in self.records.iter().enumerate() {
            let flags = if i == 0 { FLAG_SYNC_START } else { 0 };
            encode_record(
                &mut image,
                *record_type,
                flags,
                i as u64 + 1,
                EPOCH,
                payload,
            );
        }
        if self.flags & FLAG_PREALLOCATED != 0 && (image.len() as u64) < SEGMENT_SIZE {
            image.resize(SEGMENT_SIZE as usize, 0);
        }
        image
    }
}
