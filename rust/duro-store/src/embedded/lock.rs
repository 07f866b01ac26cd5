//! One process per embedded store: an exclusive `flock` on `<dir>/LOCK`,
//! held for the store's lifetime. The kernel drops it when the process dies,
//! so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path: PathBuf = dir.join("LOCK");
        let io_err = |op: &'static str| {
            let path = path.clone();
            move |source| StoreError::Io { op, path, source }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open the lock file"))?;
        // A lock this process released a moment ago can still be held by a child that
        // another thread forked (it inherits the descriptor until its exec closes it):
        // when the holder is this process, try again for a short while before saying so.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(250);
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.seek(SeekFrom::Start(0));
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().to_owned();
                if holder == std::process::id().to_string() {
                    if std::time::Instant::now() < deadline {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                    return Err(StoreError::LockedHere {
                        path: dir.to_path_buf(),
                    });
                }
                return Err(StoreError::Locked {
                    path: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder
                    },
                });
            }
            return Err(StoreError::Io {
                op: "lock",
                path,
                source: error,
            });
        }
        file.set_len(0).map_err(io_err("write the lock file"))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io_err("write the lock file"))?;
        write!(file, "{}", std::process::id()).map_err(io_err("write the lock file"))?;
        Ok(DirLock { _file: file })
    }
}
