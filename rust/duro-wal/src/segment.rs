//! Creating segment files, and the preparer thread that creates the next one ahead of time.
//!
//! Invariant: a file named `NNN.wal` always has a complete, synced header (and, when
//! preallocating, synced zeros to its full size): it is written as `NNN.wal.tmp`, fsynced,
//! renamed, and the directory is fsynced before the segment is used. A crash in between
//! leaves only a `.tmp` file, which the next open deletes.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use crate::error::WalError;
use crate::format::{
    encode_segment_header, segment_file_name, segment_tmp_name, SegmentHeader, FORMAT_VERSION,
    SEGMENT_HEADER_SIZE,
};
use crate::fs::{Fs, FsFile, OpenOptions};
use crate::options::WalOptions;
use crate::rng::{os_random_u32, SplitMix64};

/// Zeros are written in pieces of this size when preallocating.
const ZERO_CHUNK: usize = 1 << 20;

/// An open segment the writer can write into.
pub(crate) struct OpenSegment {
    pub(crate) segment_no: u64,
    pub(crate) epoch: u32,
    pub(crate) file: Box<dyn FsFile>,
    pub(crate) path: PathBuf,
}

pub(crate) fn segment_path(dir: &Path, segment_no: u64) -> PathBuf {
    dir.join(segment_file_name(segment_no))
}

/// A new random epoch for a segment. OS randomness, with a fallback that still differs
/// between segments and runs (an epoch only has to make stale bytes fail to validate).
pub(crate) fn new_epoch(segment_no: u64) -> u32 {
    match os_random_u32() {
        Ok(epoch) => epoch,
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let mut rng = SplitMix64::new(nanos ^ segment_no.rotate_left(32));
            loop {
                let epoch = rng.next_u64() as u32;
                if epoch != 0 {
                    return epoch;
                }
            }
        }
    }
}

/// Creates segment `segment_no`: tmp file → header (+ zeros) → fsync → rename → fsync dir.
pub(crate) fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    segment_no: u64,
    epoch: u32,
    options: &WalOptions,
) -> Result<OpenSegment, WalError> {
    let tmp = dir.join(segment_tmp_name(segment_no));
    let path = segment_path(dir, segment_no);
    let file = fs
        .open(&tmp, OpenOptions::create_truncate())
        .map_err(|e| WalError::io("create segment", &tmp, e))?;
    let header = encode_segment_header(&SegmentHeader {
        version: FORMAT_VERSION,
        epoch,
        segment_no,
    });
    if options.preallocate {
        let total = options.segment_size.max(SEGMENT_HEADER_SIZE as u64);
        let mut chunk = vec![0u8; ZERO_CHUNK.min(total as usize)];
        chunk[..SEGMENT_HEADER_SIZE].copy_from_slice(&header);
        let mut offset = 0u64;
        while offset < total {
            let n = (total - offset).min(chunk.len() as u64) as usize;
            file.write_all_at(&chunk[..n], offset)
                .map_err(|e| WalError::io("preallocate segment", &tmp, e))?;
            if offset == 0 {
                chunk[..SEGMENT_HEADER_SIZE].fill(0);
            }
            offset += n as u64;
        }
    } else {
        file.write_all_at(&header, 0)
            .map_err(|e| WalError::io("write segment header", &tmp, e))?;
    }
    file.sync_data()
        .map_err(|e| WalError::io("fdatasync new segment", &tmp, e))?;
    fs.rename(&tmp, &path)
        .map_err(|e| WalError::io("rename new segment", &path, e))?;
    fs.sync_dir(dir)
        .map_err(|e| WalError::io("fsync log directory", dir, e))?;
    Ok(OpenSegment {
        segment_no,
        epoch,
        file,
        path,
    })
}

#[derive(Default)]
struct PrepState {
    requests: VecDeque<(u64, u32)>,
    /// A request held back until `release_deferred` (or a `take` of it): the spare an open
    /// asks for is made after the log's first sync, not during it (see `defer`).
    deferred: Option<(u64, u32)>,
    ready: BTreeMap<u64, Result<OpenSegment, WalError>>,
    in_progress: Option<u64>,
    stop: bool,
    exited: bool,
}

impl PrepState {
    /// Moves the deferred request, if any, to the queue the preparer works on; says
    /// whether there was one (the preparer must then be woken).
    fn release_deferred(&mut self) -> bool {
        let Some(request) = self.deferred.take() else {
            return false;
        };
        self.requests.push_back(request);
        true
    }
}

/// Creates requested segments on its own thread so that rotation does not wait for the
/// zero-fill and its fsync.
pub(crate) struct Preparer {
    state: Mutex<PrepState>,
    cv: Condvar,
}

impl Preparer {
    pub(crate) fn new() -> Arc<Preparer> {
        Arc::new(Preparer {
            state: Mutex::new(PrepState::default()),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PrepState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn start(
        self: &Arc<Self>,
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        options: WalOptions,
        created: Arc<AtomicU64>,
    ) -> std::io::Result<JoinHandle<()>> {
        let preparer = Arc::clone(self);
        thread::Builder::new()
            .name("duro-wal-prepare".into())
            .spawn(move || preparer.run(&*fs, &dir, &options, &created))
    }

    fn run(&self, fs: &dyn Fs, dir: &Path, options: &WalOptions, created: &AtomicU64) {
        let _exit = ExitGuard(self);
        loop {
            let (segment_no, epoch) = {
                let mut state = self.lock();
                loop {
                    if state.stop {
                        return;
                    }
                    if let Some(request) = state.requests.pop_front() {
                        state.in_progress = Some(request.0);
                        break request;
                    }
                    state = self.cv.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            };
            let result = create_segment(fs, dir, segment_no, epoch, options);
            if result.is_ok() {
                created.fetch_add(1, Ordering::Relaxed);
            }
            let mut state = self.lock();
            state.ready.insert(segment_no, result);
            state.in_progress = None;
            self.cv.notify_all();
        }
    }

    /// Asks for a segment, to be made only once `release_deferred` is called (the writer
    /// does after each sync), the segment is taken, or a later one is deferred. The log
    /// asks for every spare this way when it moves into a segment (and at open): made at
    /// once, the zero-fill and sync of a whole segment ran during the first sync in the
    /// new segment and made it wait for the spare's megabytes (4-8 ms instead of well under
    /// one on ext4, where both go through the same journal commit). After a crash, the
    /// resumed runs wait for exactly that first sync.
    pub(crate) fn defer(&self, segment_no: u64, epoch: u32) {
        let mut state = self.lock();
        let released = state.release_deferred();
        state.deferred = Some((segment_no, epoch));
        if released {
            self.cv.notify_all();
        }
    }

    /// Lets the preparer make the deferred segment, if any.
    pub(crate) fn release_deferred(&self) {
        if self.lock().release_deferred() {
            self.cv.notify_all();
        }
    }

    /// Hands over a segment that already exists (reused by recovery).
    pub(crate) fn put_ready(&self, segment: OpenSegment) {
        let mut state = self.lock();
        state.ready.insert(segment.segment_no, Ok(segment));
        self.cv.notify_all();
    }

    /// Waits for segment `segment_no` (requested earlier) and takes it.
    pub(crate) fn take(&self, segment_no: u64) -> Result<OpenSegment, WalError> {
        let mut state = self.lock();
        // Needed before a sync released it (a first batch larger than the rest of its
        // segment): made now.
        if state.deferred.is_some_and(|(no, _)| no == segment_no) && state.release_deferred() {
            self.cv.notify_all();
        }
        loop {
            if let Some(result) = state.ready.remove(&segment_no) {
                return result;
            }
            if state.exited || state.stop {
                return Err(WalError::Closed);
            }
            let coming = state.in_progress == Some(segment_no)
                || state.requests.iter().any(|(no, _)| *no == segment_no);
            if !coming {
                // Never requested: a bug, but never hang on it.
                return Err(WalError::Poisoned {
                    cause: format!("internal error: segment {segment_no} was never prepared"),
                });
            }
            state = self.cv.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(crate) fn stop(&self) {
        let mut state = self.lock();
        state.stop = true;
        self.cv.notify_all();
    }
}

struct ExitGuard<'a>(&'a Preparer);

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.exited = true;
        self.0.cv.notify_all();
    }
}
