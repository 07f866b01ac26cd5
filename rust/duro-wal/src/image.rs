//! Reading a segment file for recovery: the records into memory, the zeros after them only
//! through a small reused buffer.
//!
//! A preallocated segment is mostly zeros (the spare successor is nothing else), and
//! recovery must look at every byte of it to tell a clean end from a torn or damaged one.
//! Reading the whole file into a fresh buffer cost two page faults and two copies per page
//! of zeros; the image here grows only as far as the valid records go, and the rest of the
//! file is checked chunk by chunk in one buffer that stays in cache.
//!
//! Invariants:
//! - `bytes` is always a prefix of the file as read, never longer than the file: a garbage
//!   record length can make it grow at most to the file's size.
//! - Scanning the records in `bytes` gives the same answer as scanning the whole file:
//!   before a record is validated, `ensure_record` loads all of it that the file has.

use std::path::Path;

use crate::error::WalError;
use crate::format::{decode_record_header, record_size, RECORD_HEADER_SIZE};
use crate::fs::FsFile;
use crate::options::MAX_SEGMENT_SIZE;
use crate::recovery::io_err;
use crate::zeros;

/// Bytes read at a time, into the image or into the scratch buffer.
pub(crate) const READ_CHUNK: usize = 256 << 10;

pub(crate) struct SegmentImage {
    /// The file's first bytes, as far as the scan has needed them.
    pub(crate) bytes: Vec<u8>,
    /// The file's length: as `stat` gave it, or where a read found the end.
    pub(crate) file_len: u64,
}

impl SegmentImage {
    /// Reads the first chunk of `file`; refuses a file larger than any segment.
    pub(crate) fn open(file: &dyn FsFile, path: &Path) -> Result<Self, WalError> {
        let len = file.len().map_err(io_err("stat segment", path))?;
        if len > MAX_SEGMENT_SIZE {
            return Err(WalError::Corrupt {
                file: path.to_path_buf(),
                offset: 0,
                lsn: None,
                detail: format!(
                    "the segment is {len} bytes, larger than any segment this log writes \
                     ({MAX_SEGMENT_SIZE} bytes)"
                ),
            });
        }
        let mut image = Self {
            bytes: Vec::new(),
            file_len: len,
        };
        image.ensure(file, path, READ_CHUNK)?;
        Ok(image)
    }

    /// Makes `bytes` hold the file up to `upto` (or to its end), reading whole chunks.
    fn ensure(&mut self, file: &dyn FsFile, path: &Path, upto: usize) -> Result<(), WalError> {
        let have = self.bytes.len();
        let file_len = self.file_len as usize;
        if upto <= have || have >= file_len {
            return Ok(());
        }
        let want = upto.max(have + READ_CHUNK).min(file_len);
        self.bytes.resize(want, 0);
        let n = file
            .read_full_at(&mut self.bytes[have..], have as u64)
            .map_err(io_err("read segment", path))?;
        if have + n < want {
            // The file is shorter than `stat` said: what was read is all there is.
            self.bytes.truncate(have + n);
            self.file_len = (have + n) as u64;
        }
        Ok(())
    }

    /// Loads the record that starts at `offset` in full, as far as the file holds it: its
    /// header, and when the header is intact, the length it gives.
    pub(crate) fn ensure_record(
        &mut self,
        file: &dyn FsFile,
        path: &Path,
        offset: usize,
    ) -> Result<(), WalError> {
        self.ensure(file, path, offset + RECORD_HEADER_SIZE)?;
        let header = self.bytes.get(offset..).and_then(decode_record_header);
        if let Some(header) = header {
            let end = offset.saturating_add(record_size(header.payload_len as usize));
            self.ensure(file, path, end)?;
        }
        Ok(())
    }

    /// Offset of the last non-zero byte of the file at or after `from`. The part not in
    /// `bytes` is read through `scratch` and not kept.
    pub(crate) fn last_nonzero(
        &self,
        file: &dyn FsFile,
        path: &Path,
        from: usize,
        scratch: &mut [u8],
    ) -> Result<Option<u64>, WalError> {
        let loaded = self.bytes.len();
        let mut found = self
            .bytes
            .get(from..)
            .and_then(zeros::last_nonzero)
            .map(|i| (from + i) as u64);
        let mut offset = loaded.max(from) as u64;
        while offset < self.file_len {
            let want = ((self.file_len - offset) as usize).min(scratch.len());
            let n = file
                .read_full_at(&mut scratch[..want], offset)
                .map_err(io_err("read segment", path))?;
            if let Some(i) = zeros::last_nonzero(&scratch[..n]) {
                found = Some(offset + i as u64);
            }
            if n < want {
                break;
            }
            offset += n as u64;
        }
        Ok(found)
    }
}

/// Reads all of a segment file (for the rare paths that look past the valid records).
pub(crate) fn read_whole(file: &dyn FsFile, path: &Path) -> Result<Vec<u8>, WalError> {
    let mut image = SegmentImage::open(file, path)?;
    let len = image.file_len as usize;
    image.ensure(file, path, len)?;
    Ok(image.bytes)
}
