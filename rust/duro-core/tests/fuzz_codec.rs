//! Bounded fuzzing of the journal event codec (`decode_event`) on arbitrary bytes: mutants
//! of every event kind's encoding (bit flips, inserts, deletes, truncation, splicing,
//! length-field corruption, huge varints) and random bytes. No panic; whatever decodes
//! survives a round trip; decoding allocates at most the input's size (strings and byte
//! fields are copies of input bytes, never sized by a length field).
//!
//! Prints `fuzz decode_event: <n> inputs, 0 panics`. More inputs: `DURO_FUZZ_SCALE=50`;
//! another seed: `DURO_FUZZ_SEED=<u64>`. The long, coverage-guided mode is `fuzz/` (AFL).

#[path = "../../../fuzz/common/events.rs"]
mod events;
#[path = "../../../fuzz/common/fuzzkit.rs"]
mod fuzzkit;

use duro_core::journal::{decode_event, Event};
use fuzzkit::{
    next_input, scaled, seed, thread_allocated, thread_allocated_reset, Campaign, CountingAlloc,
    Limits, Rng,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn fuzz_decode_event() {
    let seeds = events::event_seeds();
    let mut rng = Rng::new(seed());
    let mut campaign = Campaign::new(
        "decode_event",
        Limits {
            largest_allocation: 64 << 10,
            peak_growth: 256 << 10,
        },
    );
    let total = scaled(2_000_000);
    for i in 0..total {
        let input = if i < seeds.len() as u64 {
            seeds[i as usize].clone()
        } else {
            next_input(&mut rng, &seeds, 2048)
        };
        campaign.run(&input, |data| {
            thread_allocated_reset();
            let decoded = decode_event(data);
            let (allocated, _) = thread_allocated();
            if allocated > data.len() {
                return Err(format!(
                    "decoding {} bytes allocated {allocated} bytes",
                    data.len()
                ));
            }
            drop(decoded);
            events::codec_target(data)
        });
    }
    campaign.finish();
}

/// The seeds decode to what was encoded (so the fuzzer starts from valid encodings).
#[test]
fn seeds_are_valid_encodings() {
    let _one_at_a_time = fuzzkit::exclusive();
    for (event, bytes) in events::sample_events().iter().zip(events::event_seeds()) {
        assert_eq!(&decode_event(&bytes).unwrap(), event);
    }
    let kinds: std::collections::HashSet<&str> = events::sample_events()
        .iter()
        .map(Event::kind_name)
        .collect();
    assert_eq!(kinds.len(), 14, "every event kind is a seed");
}

/// Inputs that once needed care, kept as regression tests.
#[test]
fn known_hard_inputs() {
    let _one_at_a_time = fuzzkit::exclusive();
    let cases: &[&[u8]] = &[
        b"",
        b"\x00",
        b"\x0f",
        b"\xff",
        // A length of u64::MAX, of 2^63, and an unterminated length.
        b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        b"\x01\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
        b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",
        b"\x07\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80",
        // An overlong (but valid) zero, then a step seq above u32::MAX.
        b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00",
        b"\x02\x80\x80\x80\x80\x10\x00\x00\x00\x00",
        // Compensation with failed_seq = u32::MAX + 1 (stored + 1), and u64::MAX.
        b"\x0b\x00\x00\x00\x81\x80\x80\x80\x10\x00",
        b"\x0b\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00",
        // Invalid UTF-8 in a name, a boolean of 2, an unknown step kind.
        b"\x07\x02\xc3\x28\x00\x00",
        b"\x0a\x02\x00",
        b"\x02\x00\x05\x00\x00\x00",
    ];
    for case in cases {
        thread_allocated_reset();
        let result = decode_event(case);
        let (allocated, _) = thread_allocated();
        assert!(allocated <= case.len(), "{case:?} allocated {allocated}");
        if let Ok(event) = result {
            assert_eq!(events::codec_target(case), Ok(()), "{event:?}");
        }
    }
}
