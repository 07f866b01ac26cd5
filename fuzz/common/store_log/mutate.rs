//! Structured mutations of a log ([`mutate_log`]): run-record fields re-encoded, records
//! dropped, copied, swapped or taken from other seeds, payload bytes mutated.

use super::super::fuzzkit::{huge_varint, mutate, varint, Rng, INTERESTING};
use super::record::{
    encode_run_record, get_varint, parse_run_record, LogInput, FLAG_PREALLOCATED, RUN_EVENTS,
};

// ---------------------------------------------------------------------------------------
// Structured mutations of a log.

pub fn mutate_log(
    rng: &mut Rng,
    input: &mut LogInput,
    seeds: &[LogInput],
    event_seeds: &[Vec<u8>],
) {
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        if input.records.is_empty() {
            input.records.push((
                RUN_EVENTS,
                encode_run_record(1, 0, &[rng.pick(event_seeds).clone()]),
            ));
        }
        let i = rng.below(input.records.len());
        match rng.below(14) {
            // Bytes of one payload.
            0..=4 => {
                let others: Vec<Vec<u8>> = input.records.iter().map(|(_, p)| p.clone()).collect();
                mutate(rng, &mut input.records[i].1, &others, 4096);
            }
            // A field of the run record, re-encoded.
            5..=8 => {
                let Some((mut key, mut first, mut events)) = parse_run_record(&input.records[i].1)
                else {
                    continue;
                };
                let mut raw_count = None;
                match rng.below(7) {
                    0 => key = *rng.pick(&INTERESTING),
                    1 => first = *rng.pick(&INTERESTING),
                    2 => first = first.wrapping_add(rng.below(3) as u64).wrapping_sub(1),
                    3 => raw_count = Some(rng.number()),
                    4 if !events.is_empty() => {
                        let e = rng.below(events.len());
                        mutate(rng, &mut events[e], event_seeds, 1024);
                    }
                    5 => {
                        let e = rng.below(events.len() + 1);
                        events.insert(e, rng.pick(event_seeds).clone());
                    }
                    _ if !events.is_empty() => {
                        let e = rng.below(events.len());
                        events.remove(e);
                    }
                    _ => {}
                }
                let mut payload = encode_run_record(key, first, &events);
                if let Some(count) = raw_count {
                    let mut at = 0;
                    get_varint(&payload, &mut at);
                    get_varint(&payload, &mut at);
                    let start = at;
                    get_varint(&payload, &mut at);
                    let v = if rng.chance(50) {
                        varint(count)
                    } else {
                        huge_varint(rng)
                    };
                    payload.splice(start..at, v);
                }
                input.records[i].1 = payload;
            }
            9 => input.records[i].0 = *rng.pick(&[0u8, 1, 2, 255]),
            10 => {
                input.records.remove(i);
            }
            11 => {
                let copy = input.records[i].clone();
                let at = rng.below(input.records.len() + 1);
                input.records.insert(at, copy);
            }
            12 => {
                let j = rng.below(input.records.len());
                input.records.swap(i, j);
            }
            _ if !seeds.is_empty() => {
                let other = rng.pick(seeds);
                if !other.records.is_empty() {
                    let record = rng.pick(&other.records).clone();
                    input
                        .records
                        .insert(rng.below(input.records.len() + 1), record);
                }
            }
            _ => input.flags ^= FLAG_PREALLOCATED,
        }
    }
    input.records.truncate(64);
}
