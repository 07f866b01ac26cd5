//! The on-disk format: segment file names, the segment header and the record frame.
//!
//! Invariant: every byte the log writes is produced by an encoder in this module, and every
//! byte recovery trusts has passed a decoder in this module.

use crate::Lsn;

/// The newest segment format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
pub const SEGMENT_MAGIC: [u8; 8] = *b"DUROWAL\0";
pub const SEGMENT_HEADER_SIZE: usize = 32;
pub const RECORD_HEADER_SIZE: usize = 24;
pub const RECORD_TRAILER_SIZE: usize = 4;
/// Bytes a record takes on disk besides its payload.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_SIZE + RECORD_TRAILER_SIZE;
/// Flag bit 0: the first record written after an fdatasync (first of its sync group).
pub const FLAG_SYNC_START: u8 = 1;
const KNOWN_FLAGS: u8 = FLAG_SYNC_START;

pub const SEGMENT_SUFFIX: &str = ".wal";
pub const TMP_SUFFIX: &str = ".wal.tmp";

/// `{segment_no:020}.wal`: zero-padded so names sort in segment order.
pub fn segment_file_name(segment_no: u64) -> String {
    format!("{segment_no:020}{SEGMENT_SUFFIX}")
}

pub fn segment_tmp_name(segment_no: u64) -> String {
    format!("{segment_no:020}{TMP_SUFFIX}")
}

/// The segment number of a `{20 digits}.wal` name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A `{20 digits}.wal.tmp` name: a segment whose creation did not finish.
pub fn is_tmp_segment_name(name: &str) -> bool {
    name.strip_suffix(TMP_SUFFIX)
        .is_some_and(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u32,
    pub epoch: u32,
    pub segment_no: u64,
}

// Format: segment header, 32 bytes, little-endian, at offset 0 of every segment file.
//
//   0..8    magic            b"DUROWAL\0"
//   8..12   format version   u32 (1)
//   12..16  segment epoch    u32, random from the OS, new for every segment, never 0
//   16..24  segment number   u64, equal to the number in the file name
//   24..28  reserved         u32, 0
//   28..32  header CRC32C    over bytes 0..28
//
// Records follow from offset 32. A preallocated segment is zero-filled to its size when it
// is created, so the end of the records is the first record header that is all zeros.
pub fn encode_segment_header(header: &SegmentHeader) -> [u8; SEGMENT_HEADER_SIZE] {
    let mut bytes = [0u8; SEGMENT_HEADER_SIZE];
    bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
    bytes[8..12].copy_from_slice(&header.version.to_le_bytes());
    bytes[12..16].copy_from_slice(&header.epoch.to_le_bytes());
    bytes[16..24].copy_from_slice(&header.segment_no.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Why a segment header was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    Short,
    BadMagic,
    Newer(u32),
    BadVersion(u32),
    BadCrc,
}

pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
    if bytes.len() < SEGMENT_HEADER_SIZE {
        return Err(HeaderError::Short);
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let version = read_u32(bytes, 8);
    // The version is checked before the CRC: a newer format may checksum its header
    // differently, and "newer format" is the message that helps.
    if version > FORMAT_VERSION {
        return Err(HeaderError::Newer(version));
    }
    if version == 0 {
        return Err(HeaderError::BadVersion(version));
    }
    if crc32c::crc32c(&bytes[0..28]) != read_u32(bytes, 28) || read_u32(bytes, 24) != 0 {
        return Err(HeaderError::BadCrc);
    }
    Ok(SegmentHeader {
        version,
        epoch: read_u32(bytes, 12),
        segment_no: read_u64(bytes, 16),
    })
}

/// Bytes a record with a payload of `payload_len` bytes takes on disk.
pub fn record_size(payload_len: usize) -> usize {
    RECORD_OVERHEAD + payload_len
}

// Format: record frame, little-endian, records packed back to back after the segment header.
//
//   0..4    payload_len      u32
//   4       record_type      u8, 1..=255 (0 is reserved: a zero header means "no more records")
//   5       flags            u8, bit 0 = SYNC_START, other bits 0
//   6..8    reserved         u16, 0
//   8..16   lsn              u64, contiguous across the whole log
//   16..20  epoch            u32, equal to the epoch in the segment header
//   20..24  header CRC32C    over bytes 0..20
//   24..24+payload_len       payload
//   then    payload CRC32C   u32 over the payload
//
// SYNC_START is set on the first record written after each fdatasync, so recovery can tell
// a torn, never-synced tail (no SYNC_START after the damage) from damage to data that was
// synced (a later sync group starts after it).
/// Appends one encoded record to `buf`. The caller has checked the payload length.
#[inline]
pub fn encode_record(
    buf: &mut Vec<u8>,
    record_type: u8,
    flags: u8,
    lsn: Lsn,
    epoch: u32,
    payload: &[u8],
) {
    let mut header = [0u8; RECORD_HEADER_SIZE];
    header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4] = record_type;
    header[5] = flags;
    header[8..16].copy_from_slice(&lsn.to_le_bytes());
    header[16..20].copy_from_slice(&epoch.to_le_bytes());
    let header_crc = crc32c::crc32c(&header[0..20]);
    header[20..24].copy_from_slice(&header_crc.to_le_bytes());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(payload);
    buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
}

/// Sets SYNC_START on the encoded record at the start of `record` and fixes its header CRC.
pub fn set_sync_start(record: &mut [u8]) {
    if record.len() < RECORD_HEADER_SIZE {
        return;
    }
    record[5] |= FLAG_SYNC_START;
    let crc = crc32c::crc32c(&record[0..20]);
    record[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// A record header whose CRC and reserved fields are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub payload_len: u32,
    pub record_type: u8,
    pub flags: u8,
    pub lsn: Lsn,
    pub epoch: u32,
}

impl RecordHeader {
    pub fn sync_start(&self) -> bool {
        self.flags & FLAG_SYNC_START != 0
    }
}

/// Decodes the record header at the start of `bytes`; `None` unless it is whole and valid.
pub fn decode_record_header(bytes: &[u8]) -> Option<RecordHeader> {
    let header = bytes.get(..RECORD_HEADER_SIZE)?;
    if crc32c::crc32c(&header[0..20]) != read_u32(header, 20) {
        return None;
    }
    let record_type = header[4];
    let flags = header[5];
    if record_type == 0 || flags & !KNOWN_FLAGS != 0 || header[6] != 0 || header[7] != 0 {
        return None;
    }
    Some(RecordHeader {
        payload_len: read_u32(header, 0),
        record_type,
        flags,
        lsn: read_u64(header, 8),
        epoch: read_u32(header, 16),
    })
}

/// A record that fully validated at some offset of a segment image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidRecord {
    pub header: RecordHeader,
    /// Offset of the payload in the segment image.
    pub payload_offset: usize,
    /// Offset just past the record.
    pub end: usize,
}

/// Validates the whole record at `offset` of `segment`: header CRC, the segment's epoch, the
/// payload fitting inside the segment, payload CRC. `None` if anything is off. Never
/// allocates: a garbage length can cost at most a bounds check.
/// The largest LSN and segment number a log may hold. Far beyond anything
/// real (2^62 records), and far enough below `u64::MAX` that counting on
/// from any valid value can never overflow: a larger one is corruption.
pub const MAX_LSN: u64 = 1 << 62;
pub const MAX_SEGMENT_NO: u64 = 1 << 62;

pub fn validate_record_at(segment: &[u8], offset: usize, epoch: u32) -> Option<ValidRecord> {
    let header = decode_record_header(segment.get(offset..)?)?;
    if header.epoch != epoch || header.lsn == 0 || header.lsn > MAX_LSN {
        return None;
    }
    let payload_offset = offset + RECORD_HEADER_SIZE;
    let payload_end = payload_offset.checked_add(header.payload_len as usize)?;
    let end = payload_end.checked_add(RECORD_TRAILER_SIZE)?;
    if end > segment.len() {
        return None;
    }
    let payload = &segment[payload_offset..payload_end];
    if crc32c::crc32c(payload) != read_u32(segment, payload_end) {
        return None;
    }
    Some(ValidRecord {
        header,
        payload_offset,
        end,
    })
}

pub fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(raw)
}

pub fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trip() {
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            epoch: 0xDEAD_BEEF,
            segment_no: 42,
        };
        let bytes = encode_segment_header(&header);
        assert_eq!(decode_segment_header(&bytes), Ok(header));
        let mut newer = bytes;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(decode_segment_header(&newer), Err(HeaderError::Newer(2)));
        let mut flipped = bytes;
        flipped[20] ^= 1;
        assert_eq!(decode_segment_header(&flipped), Err(HeaderError::BadCrc));
        assert_eq!(
            decode_segment_header(&[0u8; 32]),
            Err(HeaderError::BadMagic)
        );
        assert_eq!(decode_segment_header(&bytes[..10]), Err(HeaderError::Short));
    }

    #[test]
    fn record_round_trip_and_sync_start() {
        let mut buf = vec![0u8; 3];
        encode_record(&mut buf, 7, 0, 99, 1234, b"hello");
        assert_eq!(buf.len(), 3 + record_size(5));
        let valid = validate_record_at(&buf, 3, 1234).expect("valid");
        assert_eq!(valid.header.lsn, 99);
        assert_eq!(valid.header.record_type, 7);
        assert!(!valid.header.sync_start());
        assert_eq!(
            &buf[valid.payload_offset..valid.payload_offset + 5],
            b"hello"
        );
        assert!(validate_record_at(&buf, 3, 1235).is_none(), "other epoch");
        set_sync_start(&mut buf[3..]);
        assert!(validate_record_at(&buf, 3, 1234)
            .expect("valid")
            .header
            .sync_start());
        for i in 3..buf.len() {
            let mut damaged = buf.clone();
            damaged[i] ^= 0x10;
            assert!(
                validate_record_at(&damaged, 3, 1234).is_none(),
                "flip at {i}"
            );
        }
    }

    #[test]
    fn zero_header_never_validates() {
        assert!(decode_record_header(&[0u8; RECORD_HEADER_SIZE]).is_none());
        assert!(validate_record_at(&[0u8; 64], 0, 0).is_none());
    }

    #[test]
    fn garbage_length_is_bounded() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 1, 0, 1, 5, b"x");
        // A header claiming a 4 GiB payload with a valid header CRC.
        buf[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32c::crc32c(&buf[0..20]);
        buf[20..24].copy_from_slice(&crc.to_le_bytes());
        assert!(decode_record_header(&buf).is_some());
        assert!(validate_record_at(&buf, 0, 5).is_none());
    }

    #[test]
    fn names() {
        assert_eq!(segment_file_name(7), "00000000000000000007.wal");
        assert_eq!(parse_segment_name("00000000000000000007.wal"), Some(7));
        assert_eq!(parse_segment_name("7.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000007.wal.tmp"), None);
        assert!(is_tmp_segment_name("00000000000000000007.wal.tmp"));
        assert!(!is_tmp_segment_name("x.wal.tmp"));
    }
}
