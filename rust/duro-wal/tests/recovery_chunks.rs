//! Recovery of segments larger than the chunk recovery reads at a time (256 KiB): records
//! that straddle chunk boundaries, torn tails and damage far past the first chunk, and
//! non-zero bytes deep in the zeros of a preallocated segment. The other recovery tests use
//! 64 KiB segments, which one chunk covers.

mod common;

use common::*;
use duro_wal::fs::SimFs;
use duro_wal::{Record, WalError, WalOptions, RECORD_OVERHEAD, SEGMENT_HEADER_SIZE};

const CHUNK: u64 = 256 << 10;

fn big_options() -> WalOptions {
    WalOptions {
        segment_size: 2 << 20,
        max_record_size: 700 << 10,
        ..small_options()
    }
}

/// Sizes chosen so records start before and end after the chunk boundaries at 256, 512
/// and 768 KiB.
const SIZES: [usize; 5] = [200_000, 300_000, 10, 250_000, 400_000];

fn write(sizes: &[usize]) -> (SimFs, Vec<Vec<u8>>, Vec<u64>) {
    one_group_per_record(sizes, &big_options())
}

fn payloads_of(recovery: &duro_wal::Recovery) -> Vec<Vec<u8>> {
    recovery.records.iter().map(|r| r.payload.clone()).collect()
}

#[test]
fn records_across_chunk_boundaries_are_recovered_whole() {
    let (fs, payloads, offsets) = write(&SIZES);
    // The layout really straddles the boundaries this test is about.
    let ends: Vec<u64> = offsets
        .iter()
        .zip(&payloads)
        .map(|(o, p)| o + (p.len() + RECORD_OVERHEAD) as u64)
        .collect();
    for boundary in [CHUNK, 2 * CHUNK, 3 * CHUNK] {
        assert!(
            offsets
                .iter()
                .zip(&ends)
                .any(|(&s, &e)| s < boundary && e > boundary),
            "no record straddles {boundary}"
        );
    }
    let (wal, recovery) = open_sim(&copy(&fs), big_options()).unwrap();
    assert_eq!(payloads_of(&recovery), payloads);
    assert_eq!(recovery.truncated, None);
    assert_eq!(wal.next_lsn(), SIZES.len() as u64 + 1);
}

#[test]
fn torn_last_record_past_the_first_chunk_keeps_the_exact_prefix() {
    let (fs, payloads, offsets) = write(&SIZES);
    let path = segment_path(1);
    let last = SIZES.len() - 1;
    let start = offsets[last];
    let end = start + (payloads[last].len() + RECORD_OVERHEAD) as u64;
    // Cuts in the header, at and around chunk boundaries inside the record, at its end - 1.
    let mut cuts = vec![start + 1, start + 23, end - 1];
    for boundary in [3 * CHUNK, 4 * CHUNK] {
        if boundary > start && boundary < end {
            cuts.extend([boundary - 1, boundary, boundary + 1]);
        }
    }
    for cut in cuts {
        for zero_instead in [false, true] {
            let image = copy(&fs);
            if zero_instead {
                image.overwrite(&path, cut, &vec![0u8; (end - cut) as usize]);
            } else {
                image.truncate_file(&path, cut);
            }
            let (wal, recovery) = open_sim(&image, big_options())
                .unwrap_or_else(|e| panic!("cut at {cut} (zeros {zero_instead}): {e}"));
            assert_eq!(
                payloads_of(&recovery),
                payloads[..last].to_vec(),
                "cut at {cut}"
            );
            let torn = recovery.truncated.clone().expect("a torn tail is reported");
            assert_eq!((torn.file, torn.offset), (path.clone(), start));
            // The repaired log takes appends and recovers them with the prefix.
            wal.append_ticket(&[Record::new(2, b"after")])
                .unwrap()
                .wait()
                .unwrap();
            wal.close().unwrap();
            let (_, again) = open_sim(&image, big_options()).unwrap();
            assert_eq!(again.records.len(), last + 1, "cut at {cut}");
            assert_eq!(again.truncated, None);
        }
    }
}

#[test]
fn a_nonzero_byte_deep_in_the_zeros_is_a_torn_tail_of_its_size() {
    let (fs, payloads, offsets) = write(&SIZES[..2]);
    let path = segment_path(1);
    let end = offsets[1] + (payloads[1].len() + RECORD_OVERHEAD) as u64;
    // In the chunk where the records end, in the next one, at a chunk's first and last
    // byte, and in the segment's last byte.
    let segment_size = big_options().segment_size;
    for at in [
        end + 5,
        end + CHUNK,
        4 * CHUNK,
        5 * CHUNK - 1,
        segment_size - 1,
    ] {
        let image = copy(&fs);
        image.overwrite(&path, at, &[0x5A]);
        let (_wal, recovery) = open_sim(&image, big_options()).unwrap();
        assert_eq!(payloads_of(&recovery), payloads, "byte at {at}");
        let torn = recovery.truncated.clone().expect("a torn tail is reported");
        assert_eq!(
            (torn.file, torn.offset, torn.bytes_discarded),
            (path.clone(), end, at + 1 - end),
            "byte at {at}"
        );
    }
}

#[test]
fn a_nonzero_byte_deep_in_the_spare_segment_is_found() {
    let (fs, payloads, _) = write(&SIZES[..2]);
    let spare = segment_path(2);
    assert!(
        fs.read_file(&spare).is_some(),
        "the writer prepared a spare"
    );
    let at = 3 * CHUNK + 7;
    let image = copy(&fs);
    image.overwrite(&spare, at, &[0xA5]);
    let (wal, recovery) = open_sim(&image, big_options()).unwrap();
    assert_eq!(payloads_of(&recovery), payloads);
    let torn = recovery.truncated.clone().expect("a torn tail is reported");
    assert_eq!(torn.file, spare);
    assert_eq!(torn.offset, SEGMENT_HEADER_SIZE as u64);
    assert_eq!(torn.bytes_discarded, at + 1 - SEGMENT_HEADER_SIZE as u64);
    // The damaged spare is not reused as it was: appends after recovery recover cleanly.
    wal.append_ticket(&[Record::new(2, b"after")])
        .unwrap()
        .wait()
        .unwrap();
    wal.close().unwrap();
    let (_, again) = open_sim(&image, big_options()).unwrap();
    assert_eq!(again.records.len(), 3);
    assert_eq!(again.truncated, None);
}

#[test]
fn a_flipped_bit_past_the_first_chunk_before_a_later_group_is_corruption() {
    let (fs, _, offsets) = write(&SIZES);
    let path = segment_path(1);
    // Record 4 (LSN 4) spans 512 KiB; record 5 is a later sync group.
    let victim = 3;
    for at in [offsets[victim] + 30, 2 * CHUNK + 1] {
        assert!(at > offsets[victim] && at < offsets[victim + 1]);
        let image = copy(&fs);
        assert!(image.flip_bit(&path, at, 3));
        match open_sim(&image, big_options()) {
            Err(WalError::Corrupt {
                file, offset, lsn, ..
            }) => {
                assert_eq!(
                    (file, offset, lsn),
                    (path.clone(), offsets[victim], Some(4))
                );
            }
            Err(other) => panic!("flip at {at}: expected Corrupt, got {other}"),
            Ok((_, r)) => panic!("flip at {at}: opened with {} records", r.records.len()),
        }
    }
}
