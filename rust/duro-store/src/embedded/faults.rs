//! A testing hook: I/O errors injected at the run index's commits.
//!
//! SQLite writes the index through its own file layer, which the log's
//! fault-injecting [`Fs`](duro_wal::fs::Fs) does not reach. This hook sits at
//! each place the store commits the index instead ([`IndexCommitSite`]): when
//! it returns an error, the commit does not happen and the store sees the
//! error SQLite gives for that failure (`SQLITE_IOERR_WRITE` /
//! `SQLITE_IOERR_FSYNC` for EIO, `SQLITE_FULL` for ENOSPC). It is for tests
//! only; without one (the default) the store checks one `Option` per commit.
//!
//! Open a store with it through [`EmbeddedStore::open_with_index_faults`](super::EmbeddedStore::open_with_index_faults).

use std::sync::atomic::{AtomicU64, Ordering};

/// Where the store commits the run index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexCommitSite {
    /// The indexer's ordinary commit of a batch of durable log records (`synchronous=NORMAL`).
    Batch,
    /// The synced commit (`synchronous=FULL`) that must succeed before applied log
    /// segments are released.
    Release,
    /// Applying the log to the index while opening (the catch-up, or the rebuild after a
    /// crash or a lost index), one commit per chunk of records.
    OpenApply,
    /// The synced commit at the end of opening.
    OpenSync,
}

impl IndexCommitSite {
    /// Every site, in the order a store meets them.
    pub const ALL: [IndexCommitSite; 4] = [
        IndexCommitSite::OpenApply,
        IndexCommitSite::OpenSync,
        IndexCommitSite::Batch,
        IndexCommitSite::Release,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IndexCommitSite::Batch => "batch commit",
            IndexCommitSite::Release => "synced commit before releasing log segments",
            IndexCommitSite::OpenApply => "applying the log on open",
            IndexCommitSite::OpenSync => "synced commit on open",
        }
    }

    /// Whether this commit is a sync (`synchronous=FULL`): an EIO there is an fsync error.
    pub fn is_sync(self) -> bool {
        matches!(self, IndexCommitSite::Release | IndexCommitSite::OpenSync)
    }
}

/// Consulted before each commit of the run index (a testing hook).
pub trait IndexFaults: Send + Sync {
    /// `Some(error)` fails this commit with `error` (EIO or ENOSPC); `None` lets it run.
    fn before_commit(&self, site: IndexCommitSite) -> Option<std::io::Error>;
}

/// A ready-made [`IndexFaults`]: fails the `nth` commit at one site (counting from 1),
/// once or every commit there from then on.
#[derive(Debug)]
pub struct IndexFault {
    site: IndexCommitSite,
    nth: u64,
    errno: i32,
    persistent: bool,
    calls: AtomicU64,
    fired: AtomicU64,
}

impl IndexFault {
    /// Fails only the `nth` commit at `site` with `errno`.
    pub fn once(site: IndexCommitSite, nth: u64, errno: i32) -> IndexFault {
        IndexFault::new(site, nth, errno, false)
    }

    /// Fails the `nth` commit at `site` and every later one there.
    pub fn persistent(site: IndexCommitSite, nth: u64, errno: i32) -> IndexFault {
        IndexFault::new(site, nth, errno, true)
    }

    fn new(site: IndexCommitSite, nth: u64, errno: i32, persistent: bool) -> IndexFault {
        IndexFault {
            site,
            nth: nth.max(1),
            errno,
            persistent,
            calls: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        }
    }

    /// Commits at the site so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Errors returned so far.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::SeqCst)
    }
}

impl IndexFaults for IndexFault {
    fn before_commit(&self, site: IndexCommitSite) -> Option<std::io::Error> {
        if site != self.site {
            return None;
        }
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fire = if self.persistent {
            call >= self.nth
        } else {
            call == self.nth
        };
        if !fire {
            return None;
        }
        self.fired.fetch_add(1, Ordering::SeqCst);
        Some(std::io::Error::from_raw_os_error(self.errno))
    }
}

/// The error SQLite itself returns when its write or fsync fails with `io`.
pub(crate) fn sqlite_error(site: IndexCommitSite, io: &std::io::Error) -> rusqlite::Error {
    let code = match io.raw_os_error() {
        Some(libc::ENOSPC) => rusqlite::ffi::SQLITE_FULL,
        _ if site.is_sync() => rusqlite::ffi::SQLITE_IOERR_FSYNC,
        _ => rusqlite::ffi::SQLITE_IOERR_WRITE,
    };
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(code),
        Some(format!("{io} (injected at the index's {})", site.name())),
    )
}
