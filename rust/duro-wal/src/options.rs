//! Options of a log. Validated once in [`crate::Wal::open`]; every field that is wrong is
//! named in [`WalError::InvalidOptions`].

use crate::error::WalError;
use crate::format::{RECORD_OVERHEAD, SEGMENT_HEADER_SIZE};

/// What the writer does after writing a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fdatasync after every batch; a batch is acknowledged only after it returned OK.
    Data,
    /// No sync at all: nothing is durable. Only for tests and for measuring the overhead of
    /// everything but the disk. Never the default.
    None,
}

/// The largest segment recovery will read into memory at once.
pub const MAX_SEGMENT_SIZE: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Size of a segment file in bytes (default 8 MiB). Recovery reads the last
    /// segments whole (to tell a torn tail from corruption), so opening costs about
    /// 1 ms per MiB of the two newest segments: 32 MiB segments made an open take
    /// ~65 ms, 8 MiB ones ~9 ms.
    pub segment_size: u64,
    /// Largest payload accepted by `append` (default 4 MiB). A record of this size must fit in
    /// an empty segment.
    pub max_record_size: u32,
    /// Zero-fill each segment to `segment_size` when it is created (default true): an
    /// fdatasync that does not change the file size is ~30% cheaper.
    pub preallocate: bool,
    /// Default `SyncMode::Data`.
    pub sync: SyncMode,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 8 << 20,
            max_record_size: 4 << 20,
            preallocate: true,
            sync: SyncMode::Data,
        }
    }
}

impl WalOptions {
    pub fn validate(&self) -> Result<(), WalError> {
        if self.max_record_size == 0 {
            return Err(WalError::InvalidOptions {
                field: "max_record_size",
                reason: "must be at least 1 byte".into(),
            });
        }
        if self.segment_size > MAX_SEGMENT_SIZE {
            return Err(WalError::InvalidOptions {
                field: "segment_size",
                reason: format!(
                    "{} bytes is more than the limit of {MAX_SEGMENT_SIZE} bytes (1 GiB)",
                    self.segment_size
                ),
            });
        }
        let needed =
            (SEGMENT_HEADER_SIZE + RECORD_OVERHEAD) as u64 + u64::from(self.max_record_size);
        if self.segment_size < needed {
            return Err(WalError::InvalidOptions {
                field: "segment_size",
                reason: format!(
                    "{} bytes cannot hold a record of max_record_size ({} bytes): it must be at \
                     least {needed} bytes (segment header {SEGMENT_HEADER_SIZE} + record overhead \
                     {RECORD_OVERHEAD} + max_record_size)",
                    self.segment_size, self.max_record_size
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_durable() {
        let options = WalOptions::default();
        assert!(options.validate().is_ok());
        assert_eq!(options.sync, SyncMode::Data);
        assert!(options.preallocate);
    }

    #[test]
    fn invalid_options_name_the_field() {
        let cases = [
            (
                WalOptions {
                    max_record_size: 0,
                    ..WalOptions::default()
                },
                "max_record_size",
            ),
            (
                WalOptions {
                    segment_size: 1000,
                    ..WalOptions::default()
                },
                "segment_size",
            ),
            (
                WalOptions {
                    segment_size: 2 << 30,
                    ..WalOptions::default()
                },
                "segment_size",
            ),
        ];
        for (options, expected) in cases {
            match options.validate() {
                Err(WalError::InvalidOptions { field, .. }) => assert_eq!(field, expected),
                other => panic!("expected InvalidOptions for {expected}, got {other:?}"),
            }
        }
    }
}
