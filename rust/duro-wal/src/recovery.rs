//! Recovery on open: scan every segment, return the valid log, repair a torn tail, refuse
//! anything that looks like damage to synced data.
//!
//! Invariants:
//! - Only the last sync group of the log can be torn: the writer syncs every batch before it
//!   writes the next one and syncs a segment fully before it writes to its successor. So a
//!   bad record is a torn tail only if no later record of the same segment epoch, with a
//!   higher LSN, carries SYNC_START (which would prove a later sync group was written after
//!   the damaged one was synced). Anything else is `Corrupt` and the log is not touched.
//! - Recovery is idempotent: the repair (copy the valid prefix of the last segment to a new
//!   file that replaces it, with zeros where the torn bytes were; delete segments past the
//!   end, fsync the directory) only removes bytes that a second scan would also discard, so
//!   a crash in the middle of it recovers to the same records.
//! - What recovery returns is on disk when `open` returns, also when a previous process
//!   saw an fsync fail and the records it read came from the page cache.
//! - A garbage length never allocates: records are validated in place in the segment image,
//!   whose size is bounded by the file size (and `MAX_SEGMENT_SIZE`).

use std::path::{Path, PathBuf};

use crate::error::WalError;
use crate::format::{
    decode_segment_header, is_tmp_segment_name, parse_segment_name, segment_tmp_name,
    validate_record_at, HeaderError, FORMAT_VERSION, MAX_SEGMENT_NO, RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
};
use crate::fs::{Fs, FsFile, OpenOptions};
use crate::image::{self, SegmentImage, READ_CHUNK};
use crate::options::WalOptions;
use crate::segment::{segment_path, OpenSegment};
use crate::zeros;
use crate::Lsn;

/// What recovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Every record in the log from the LSN the open asked for (`Wal::open_from`; all of
    /// them with `Wal::open`), in LSN order, including records the caller already released
    /// but whose segment could not be deleted yet: skip those you have already stored.
    pub records: Vec<RecoveredRecord>,
    /// The LSN of the first valid record in the log, whether or not `records` holds it
    /// (`None`: the log holds no record).
    pub first_lsn: Option<Lsn>,
    /// The torn tail that was discarded, if any.
    pub truncated: Option<TornTail>,
    /// The LSN the next append gets.
    pub next_lsn: Lsn,
    /// Number of segment files holding the log after recovery.
    pub segments: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredRecord {
    pub lsn: Lsn,
    pub record_type: u8,
    pub payload: Vec<u8>,
}

/// Bytes after the last valid record that were discarded as an unsynced, torn write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file where the discarded bytes start.
    pub file: PathBuf,
    /// Offset in `file` of the first discarded record.
    pub offset: u64,
    /// Number of non-zero bytes discarded (in `file` and any later segment).
    pub bytes_discarded: u64,
}

/// A segment the log continues in, with where to write next.
pub(crate) struct CurrentSegment {
    pub(crate) segment: OpenSegment,
    pub(crate) write_offset: u64,
    pub(crate) capacity: u64,
}

/// LSN range of a segment; `None` while it holds no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    pub(crate) segment_no: u64,
    pub(crate) lsns: Option<(Lsn, Lsn)>,
}

pub(crate) struct Recovered {
    pub(crate) recovery: Recovery,
    /// `None` for a fresh log.
    pub(crate) current: Option<CurrentSegment>,
    /// An empty, complete segment after `current` that can be used as the next one.
    pub(crate) spare: Option<OpenSegment>,
    pub(crate) segments: Vec<SegmentMeta>,
}

struct Scanned {
    segment_no: u64,
    path: PathBuf,
    file: Box<dyn FsFile>,
    epoch: u32,
    file_len: u64,
    /// LSN range of the valid records found.
    lsns: Option<(Lsn, Lsn)>,
    /// Offset just past the valid prefix.
    end: u64,
    /// Offset of the last non-zero byte after `end`, if any.
    last_nonzero: Option<u64>,
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |e| WalError::io(op, path, e)
}

/// Scans `fs`/`dir`, repairs a torn tail, and says where the log continues.
/// Records before `keep_from` are checked like the others but not copied into the result.
pub(crate) fn recover(
    fs: &dyn Fs,
    dir: &Path,
    options: &WalOptions,
    keep_from: Lsn,
) -> Result<Recovered, WalError> {
    fs.create_dir_all(dir)
        .map_err(io_err("create log directory", dir))?;
    let names = fs
        .list_dir(dir)
        .map_err(io_err("list log directory", dir))?;

    // Leftovers of a segment creation that did not finish: never part of the log.
    let mut removed_any = false;
    for name in names.iter().filter(|n| is_tmp_segment_name(n)) {
        let path = dir.join(name);
        fs.remove_file(&path)
            .map_err(io_err("remove unfinished segment", &path))?;
        removed_any = true;
    }
    if removed_any {
        fs.sync_dir(dir)
            .map_err(io_err("fsync log directory", dir))?;
    }

    let mut numbers: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    numbers.sort_unstable();
    if let Some(&too_big) = numbers.iter().find(|&&n| n > MAX_SEGMENT_NO) {
        return Err(WalError::Corrupt {
            file: segment_path(dir, too_big),
            offset: 0,
            lsn: None,
            detail: format!(
                "segment number {too_big} is beyond any this log writes ({MAX_SEGMENT_NO})"
            ),
        });
    }
    if numbers.is_empty() {
        return Ok(Recovered {
            recovery: Recovery {
                records: Vec::new(),
                first_lsn: None,
                truncated: None,
                next_lsn: 1,
                segments: 0,
            },
            current: None,
            spare: None,
            segments: Vec::new(),
        });
    }

    // Pass 1: the valid prefix of every segment.
    let mut records = Vec::new();
    let mut first_lsn = None;
    let mut scanned: Vec<Scanned> = Vec::with_capacity(numbers.len());
    // The image of the last segment holding records so far: the repair below copies from
    // it instead of reading the file again (one segment's size in memory, not the log's).
    let mut last_image: Option<(u64, Vec<u8>)> = None;
    let mut expected: Option<Lsn> = None;
    let mut scratch = vec![0u8; READ_CHUNK];
    for &segment_no in &numbers {
        let path = segment_path(dir, segment_no);
        let file = fs
            .open(&path, OpenOptions::existing())
            .map_err(io_err("open segment", &path))?;
        let mut image = SegmentImage::open(&*file, &path)?;
        let header = match decode_segment_header(&image.bytes) {
            Ok(header) => header,
            Err(HeaderError::Newer(found)) => {
                return Err(WalError::NewerFormat {
                    file: path,
                    found,
                    supported: FORMAT_VERSION,
                })
            }
            Err(problem) => {
                return Err(WalError::Corrupt {
                    file: path,
                    offset: 0,
                    lsn: None,
                    detail: format!("invalid segment header ({problem:?})"),
                })
            }
        };
        if header.segment_no != segment_no {
            return Err(WalError::Corrupt {
                file: path,
                offset: 16,
                lsn: None,
                detail: format!(
                    "the header says segment {} but the file name says {segment_no}",
                    header.segment_no
                ),
            });
        }
        let mut offset = SEGMENT_HEADER_SIZE;
        let mut lsns: Option<(Lsn, Lsn)> = None;
        loop {
            image.ensure_record(&*file, &path, offset)?;
            let Some(valid) = validate_record_at(&image.bytes, offset, header.epoch) else {
                break;
            };
            let lsn = valid.header.lsn;
            let in_order = match expected {
                Some(next) => lsn == next,
                None => lsn >= 1,
            };
            if !in_order {
                if offset == SEGMENT_HEADER_SIZE {
                    // A segment is written only after its predecessor was fully synced, so
                    // a valid first record that does not continue the LSNs is a hole: in
                    // the predecessor if it ends in an invalid record, else between them.
                    if let Some(previous) = scanned.last().filter(|p| p.last_nonzero.is_some()) {
                        return Err(WalError::Corrupt {
                            file: previous.path.clone(),
                            offset: previous.end,
                            lsn: expected,
                            detail: format!(
                                "the record there is invalid, but the next segment {} \
                                 continues the log at LSN {lsn} (the segment was synced \
                                 before its successor was written)",
                                path.display()
                            ),
                        });
                    }
                    return Err(WalError::Corrupt {
                        file: path,
                        offset: offset as u64,
                        lsn: expected,
                        detail: format!(
                            "the segment starts at LSN {lsn}, but the log before it ends \
                             before LSN {}: records are missing",
                            expected.unwrap_or(1)
                        ),
                    });
                }
                break;
            }
            first_lsn.get_or_insert(lsn);
            if lsn >= keep_from {
                let payload_end = valid.payload_offset + valid.header.payload_len as usize;
                records.push(RecoveredRecord {
                    lsn,
                    record_type: valid.header.record_type,
                    payload: image.bytes[valid.payload_offset..payload_end].to_vec(),
                });
            }
            lsns = Some((lsns.map_or(lsn, |(first, _)| first), lsn));
            expected = Some(lsn + 1);
            offset = valid.end;
        }
        let last_nonzero = image.last_nonzero(&*file, &path, offset, &mut scratch)?;
        let file_len = image.file_len;
        if lsns.is_some() {
            last_image = Some((segment_no, image.bytes));
        }
        scanned.push(Scanned {
            segment_no,
            path,
            file,
            epoch: header.epoch,
            file_len,
            lsns,
            end: offset as u64,
            last_nonzero,
        });
    }

    // The last segment is the last one holding a valid record; every segment before it
    // must be complete: valid records, then only zeros.
    let last = scanned.iter().rposition(|s| s.lsns.is_some());
    let mut next_lsn = expected.unwrap_or(1);
    if let Some(last) = last {
        for (i, s) in scanned[..last].iter().enumerate() {
            let next_in_log = scanned[i + 1..=last]
                .iter()
                .find_map(|later| later.lsns.map(|(first, _)| first));
            if s.lsns.is_none() {
                return Err(WalError::Corrupt {
                    file: s.path.clone(),
                    offset: SEGMENT_HEADER_SIZE as u64,
                    lsn: next_in_log,
                    detail: "a segment before the end of the log holds no valid record".into(),
                });
            }
            if s.last_nonzero.is_some() {
                let lsn = s.lsns.map(|(_, last_lsn)| last_lsn + 1);
                return Err(WalError::Corrupt {
                    file: s.path.clone(),
                    offset: s.end,
                    lsn,
                    detail: "an invalid record in a segment that later segments continue \
                             (it was synced before the next segment was written)"
                        .into(),
                });
            }
        }
        next_lsn = scanned[last]
            .lsns
            .map_or(next_lsn, |(_, last_lsn)| last_lsn + 1);
    }

    // Everything after the valid log: the tail of the last segment and any later segment.
    let keep = last.unwrap_or(0);
    let expected_at_end: Lsn = if last.is_some() { next_lsn } else { 0 };
    let tail_dirty = scanned[keep..].iter().any(|s| s.last_nonzero.is_some());
    let mut truncated = None;
    if tail_dirty {
        // Is there a later sync group? Then the damaged one had been synced: corruption.
        for (i, s) in scanned[keep..].iter().enumerate() {
            if s.last_nonzero.is_none() {
                continue;
            }
            // From the first invalid record itself: a valid record with a gap in its LSN
            // that starts a sync group is evidence too.
            let from = if i == 0 {
                s.end as usize
            } else {
                SEGMENT_HEADER_SIZE
            };
            let image = image::read_whole(&*s.file, &s.path)?;
            if let Some((offset, lsn)) = find_sync_start(&image, from, s.epoch, expected_at_end) {
                let first = &scanned[keep];
                return Err(WalError::Corrupt {
                    file: first.path.clone(),
                    offset: first.end,
                    lsn: last.map(|_| next_lsn),
                    detail: format!(
                        "the record there is invalid, but {} offset {offset} holds a valid \
                         record (LSN {lsn}) that starts a later sync group, so the damaged \
                         record had been synced",
                        s.path.display()
                    ),
                });
            }
        }
        let mut bytes_discarded = 0u64;
        let mut start: Option<(PathBuf, u64)> = None;
        for (i, s) in scanned[keep..].iter().enumerate() {
            if let Some(last_nz) = s.last_nonzero {
                let from = if i == 0 {
                    s.end
                } else {
                    SEGMENT_HEADER_SIZE as u64
                };
                bytes_discarded += last_nz + 1 - from.min(last_nz + 1);
                if start.is_none() {
                    start = Some((s.path.clone(), from));
                }
            }
        }
        if let Some((file, offset)) = start {
            truncated = Some(TornTail {
                file,
                offset,
                bytes_discarded,
            });
        }
    }

    // Repair. The segment the log continues in is made durable as it was read: its valid
    // prefix is copied into a new file (tmp → fdatasync → rename → fsync dir); a torn tail
    // is not copied.
    //
    // Why a copy and not an fsync of the old file: after a failed fsync (a previous process
    // that failed stop), the kernel may have dropped the dirty pages of the last group while
    // they stay readable from the page cache, and a later fsync does not write them again.
    // Appending after them would build acknowledged records on bytes that are not on disk;
    // a power loss would then leave a hole before them. Writing the bytes anew puts them on
    // disk or fails the open. Why not a rewrite in place: a crash during it could tear
    // records that were acknowledged. The copy never touches the old file; a crash before
    // the rename leaves a `.tmp` file, which the next open deletes.
    let mut rest = scanned.split_off(keep);
    let mut current = rest.remove(0);

    // The segments past the end: an empty, complete successor is kept as the next segment;
    // anything else is deleted. (They hold nothing of the valid log, so the order of this
    // and the copy below does not matter to a crash.)
    let mut spare = None;
    let mut removed_any = false;
    let expected_len = if options.preallocate {
        options.segment_size
    } else {
        SEGMENT_HEADER_SIZE as u64
    };
    for s in rest {
        let reusable = spare.is_none()
            && s.segment_no == current.segment_no + 1
            && s.last_nonzero.is_none()
            && s.file_len == expected_len;
        if reusable {
            spare = Some(OpenSegment {
                segment_no: s.segment_no,
                epoch: s.epoch,
                file: s.file,
                path: s.path,
            });
        } else {
            fs.remove_file(&s.path)
                .map_err(io_err("remove segment past the end of the log", &s.path))?;
            removed_any = true;
        }
    }
    if removed_any {
        fs.sync_dir(dir)
            .map_err(io_err("fsync log directory", dir))?;
    }

    let mut capacity = current.file_len.max(options.segment_size);
    if current.lsns.is_some() {
        // With a spare successor, the copy holds only the valid records and the log goes
        // on in the spare (no zeros to write and sync: opening stays cheap). Without one,
        // the copy keeps the segment's length, zeros included, and the log goes on in it.
        let keep_length = spare.is_none();
        let image = last_image
            .take()
            .filter(|(no, _)| *no == current.segment_no)
            .map(|(_, image)| image);
        current.file = copy_valid_prefix(fs, dir, &current, keep_length, image)?;
        if !keep_length {
            capacity = current.end;
        }
    } else {
        // Only a header (synced when the segment was created), and maybe a torn first group.
        if let Some(last_nz) = current.last_nonzero {
            zero_fill(&*current.file, &current.path, current.end, last_nz + 1)?;
        }
        current
            .file
            .sync_data()
            .map_err(io_err("fdatasync recovered segment", &current.path))?;
    }

    let mut segments: Vec<SegmentMeta> = scanned
        .iter()
        .map(|s| SegmentMeta {
            segment_no: s.segment_no,
            lsns: s.lsns,
        })
        .collect();
    segments.push(SegmentMeta {
        segment_no: current.segment_no,
        lsns: current.lsns,
    });
    Ok(Recovered {
        recovery: Recovery {
            records,
            first_lsn,
            truncated,
            next_lsn,
            segments: segments.len(),
        },
        current: Some(CurrentSegment {
            write_offset: current.end,
            capacity,
            segment: OpenSegment {
                segment_no: current.segment_no,
                epoch: current.epoch,
                file: current.file,
                path: current.path,
            },
        }),
        spare,
        segments,
    })
}

/// The first record at or after `from` that fully validates in `epoch`, carries SYNC_START
/// and has an LSN above `after`: proof that a sync group was written after `after`.
fn find_sync_start(image: &[u8], from: usize, epoch: u32, after: Lsn) -> Option<(u64, Lsn)> {
    let mut offset = from;
    while offset + RECORD_HEADER_SIZE <= image.len() {
        // A header has a non-zero byte among its 24; skip zero runs (a preallocated segment)
        // in one pass instead of trying every offset.
        let Some(next_nonzero) = zeros::first_nonzero(&image[offset..]) else {
            break;
        };
        if next_nonzero >= RECORD_HEADER_SIZE {
            offset += next_nonzero + 1 - RECORD_HEADER_SIZE;
        }
        if let Some(valid) = validate_record_at(image, offset, epoch) {
            if valid.header.sync_start() && valid.header.lsn > after {
                return Some((offset as u64, valid.header.lsn));
            }
        }
        offset += 1;
    }
    None
}

/// Writes the valid prefix of `segment` to a new file that replaces it, durably: followed
/// by zeros to the old length with `keep_length`, else ending after the last valid record.
/// `image` is the segment's bytes as the scan read them (read again if `None`). Returns
/// the new file, open for the writer.
fn copy_valid_prefix(
    fs: &dyn Fs,
    dir: &Path,
    segment: &Scanned,
    keep_length: bool,
    image: Option<Vec<u8>>,
) -> Result<Box<dyn FsFile>, WalError> {
    let mut image = match image {
        Some(image) => image,
        None => image::read_whole(&*segment.file, &segment.path)?,
    };
    let end = segment.end as usize;
    if image.len() < end {
        return Err(WalError::io(
            "re-read recovered segment",
            &segment.path,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the segment shrank during recovery",
            ),
        ));
    }
    // The image holds the valid records and maybe some bytes after them (the scan reads
    // in chunks): drop those, and with `keep_length` pad with zeros to the file's length.
    image.truncate(end);
    if keep_length {
        image.resize(segment.file_len as usize, 0);
    }
    let tmp = dir.join(segment_tmp_name(segment.segment_no));
    let file = fs
        .open(&tmp, OpenOptions::create_truncate())
        .map_err(io_err("create copy of recovered segment", &tmp))?;
    for (i, piece) in image.chunks(1 << 20).enumerate() {
        file.write_all_at(piece, (i << 20) as u64)
            .map_err(io_err("write copy of recovered segment", &tmp))?;
    }
    file.sync_data()
        .map_err(io_err("fdatasync copy of recovered segment", &tmp))?;
    fs.rename(&tmp, &segment.path)
        .map_err(io_err("rename copy of recovered segment", &segment.path))?;
    fs.sync_dir(dir)
        .map_err(io_err("fsync log directory", dir))?;
    Ok(file)
}

fn zero_fill(file: &dyn FsFile, path: &Path, from: u64, to: u64) -> Result<(), WalError> {
    let zeros = vec![0u8; (to - from).min(1 << 20) as usize];
    let mut offset = from;
    while offset < to {
        let n = (to - offset).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset)
            .map_err(io_err("zero-fill torn tail", path))?;
        offset += n as u64;
    }
    Ok(())
}
