//! The file layer the log is written through.
//!
//! Invariant: the log touches the disk only through [`Fs`] and [`FsFile`], so every write,
//! sync, rename and unlink it makes can be observed, failed or "crashed" by [`SimFs`] in tests,
//! and done for real by [`RealFs`].

use std::io;
use std::path::Path;

mod real;
mod sim;

pub use real::RealFs;
pub use sim::{is_sim_crash, Damage, Fault, OpCounts, OpKind, SimFs, TraceEntry};

/// How to open a file. Files are always opened for reading and writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Create the file if it does not exist (mode 0600 on a real file system).
    pub create: bool,
    /// Truncate the file to length 0 when opening it.
    pub truncate: bool,
}

impl OpenOptions {
    /// Open an existing file; fail with `NotFound` if it is missing.
    pub fn existing() -> OpenOptions {
        OpenOptions::default()
    }

    /// Create the file, or truncate it if it exists.
    pub fn create_truncate() -> OpenOptions {
        OpenOptions {
            create: true,
            truncate: true,
        }
    }
}

/// A directory tree. Directory entries (create, rename, remove) are durable only after
/// [`Fs::sync_dir`] of their directory returned OK.
pub trait Fs: Send + Sync {
    /// Creates `path` and its missing parents (mode 0700 on a real file system).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names (not paths) of the entries of directory `path`, in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<Box<dyn FsFile>>;
    /// Atomically replaces `to` with `from` (same directory).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable (fsync of the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
}

/// An open file. Positional I/O only, so one handle can be shared between threads.
#[allow(clippy::len_without_is_empty)]
pub trait FsFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// fdatasync: the file's data (and the size, if it changed) is durable when this returns
    /// OK. After an error the state of the written data is unknown: never retry on the same
    /// handle and treat the data as lost.
    fn sync_data(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;

    /// Reads until `buf` is full or the file ends; returns the number of bytes read.
    fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
}
