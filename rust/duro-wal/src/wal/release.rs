//! The table of segments (which LSNs each holds durably) and the release of segments
//! whose records the caller has stored elsewhere.
//!
//! Invariants:
//! - A segment is deleted by `release_through` only when every record in it is released and
//!   a later segment holds a synced record, so after any crash the log still knows where its
//!   LSNs continue.

use std::sync::atomic::Ordering;

use crate::error::WalError;
use crate::recovery::SegmentMeta;
use crate::segment::segment_path;
use crate::Lsn;

use super::shared::{lock, Shared};

impl Shared {
    pub(super) fn release_through(&self, lsn: Lsn) -> Result<(), WalError> {
        let lsn = lsn.min(self.durable_lsn.load(Ordering::Acquire));
        let doomed: Vec<u64> = {
            let mut segments = lock(&self.segments);
            // The segment holding the last synced record must stay: it tells the next open
            // where LSNs continue even if everything after it is torn.
            let Some(anchor) = segments
                .iter()
                .rev()
                .find(|s| s.lsns.is_some())
                .map(|s| s.segment_no)
            else {
                return Ok(());
            };
            let count = segments
                .iter()
                .take_while(|s| {
                    s.segment_no < anchor && s.lsns.is_some_and(|(_, last)| last <= lsn)
                })
                .count();
            segments.drain(..count).map(|s| s.segment_no).collect()
        };
        if doomed.is_empty() {
            return Ok(());
        }
        // Oldest first, each unlink made durable before the next: a file system may persist
        // unlinks out of order, and a crash must leave a suffix of the log, never a hole.
        for &segment_no in &doomed {
            let path = segment_path(&self.dir, segment_no);
            self.fs
                .remove_file(&path)
                .map_err(|e| WalError::io("remove released segment", &path, e))?;
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| WalError::io("fsync log directory", &self.dir, e))?;
            self.counters
                .segments_removed
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(super) fn note_durable_in_segment(&self, segment_no: u64, first: Lsn, last: Lsn) {
        let mut segments = lock(&self.segments);
        match segments
            .iter_mut()
            .rev()
            .find(|s| s.segment_no == segment_no)
        {
            Some(meta) => {
                meta.lsns = Some((meta.lsns.map_or(first, |(f, _)| f), last));
            }
            None => segments.push(SegmentMeta {
                segment_no,
                lsns: Some((first, last)),
            }),
        }
    }
}
