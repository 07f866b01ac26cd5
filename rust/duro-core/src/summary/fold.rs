//! The byte encoding of a [`SummaryFold`], which a store keeps beside a run's
//! summary so the summary can go on folding without re-reading the journal.

use crate::error::DecodeError;
use crate::journal::{Seq, StepKind};

use super::{RunStatus, SummaryFold};

/// Version byte of [`SummaryFold::encode`].
const FOLD_FORMAT: u8 = 1;

impl SummaryFold {
    /// The fold as bytes, for a store that keeps it beside the summary so a run's summary
    /// can go on folding without re-reading its journal. Format (version 1): the version
    /// byte, then `start_at_ms`, `deadline_ms` as optional varints; `open` as a presence
    /// byte then seq (varint) and kind code; `open_name` as a presence byte then a
    /// length-prefixed string; `input_pending` (bool byte); `timer` as a presence byte then
    /// seq and time (varints); `retry_at_ms` (optional varint); `paused`, `turned_back`
    /// (bool bytes); `outcome` as 0 or 1 + its index in [`RunStatus::ALL`].
    pub fn encode(&self) -> Vec<u8> {
        use crate::journal::wire::{put_bytes, put_opt_varint, put_u8, put_varint};
        let mut out = Vec::with_capacity(24);
        put_u8(&mut out, FOLD_FORMAT);
        put_opt_varint(&mut out, self.start_at_ms);
        put_opt_varint(&mut out, self.deadline_ms);
        match self.open {
            Some((seq, kind)) => {
                put_u8(&mut out, 1);
                put_varint(&mut out, u64::from(seq));
                put_u8(&mut out, kind.code());
            }
            None => put_u8(&mut out, 0),
        }
        match &self.open_name {
            Some(name) => {
                put_u8(&mut out, 1);
                put_bytes(&mut out, name.as_bytes());
            }
            None => put_u8(&mut out, 0),
        }
        put_u8(&mut out, u8::from(self.input_pending));
        match self.timer {
            Some((seq, at)) => {
                put_u8(&mut out, 1);
                put_varint(&mut out, u64::from(seq));
                put_varint(&mut out, at);
            }
            None => put_u8(&mut out, 0),
        }
        put_opt_varint(&mut out, self.retry_at_ms);
        put_u8(&mut out, u8::from(self.paused));
        put_u8(&mut out, u8::from(self.turned_back));
        let outcome = self.outcome.map_or(0, |status| {
            1 + RunStatus::ALL
                .iter()
                .position(|s| *s == status)
                .unwrap_or(0) as u8
        });
        put_u8(&mut out, outcome);
        out
    }

    /// Reads [`SummaryFold::encode`]'s bytes; an error for anything else (the caller
    /// then folds the journal again).
    pub fn decode(bytes: &[u8]) -> Result<SummaryFold, DecodeError> {
        use crate::journal::wire::Reader;
        let mut r = Reader::new(bytes);
        let at = r.offset();
        if r.u8()? != FOLD_FORMAT {
            return Err(DecodeError::Invalid {
                what: "summary fold version",
                offset: at,
            });
        }
        let present = |r: &mut Reader<'_>| r.bool();
        let seq = |r: &mut Reader<'_>| {
            let at = r.offset();
            Seq::try_from(r.varint()?).map_err(|_| DecodeError::Invalid {
                what: "seq",
                offset: at,
            })
        };
        let start_at_ms = r.opt_varint()?;
        let deadline_ms = r.opt_varint()?;
        let open = if present(&mut r)? {
            let s = seq(&mut r)?;
            let at = r.offset();
            let kind = StepKind::from_code(r.u8()?).ok_or(DecodeError::Invalid {
                what: "step kind",
                offset: at,
            })?;
            Some((s, kind))
        } else {
            None
        };
        let open_name = if present(&mut r)? {
            Some(r.string()?)
        } else {
            None
        };
        let input_pending = r.bool()?;
        let timer = if present(&mut r)? {
            let s = seq(&mut r)?;
            Some((s, r.varint()?))
        } else {
            None
        };
        let retry_at_ms = r.opt_varint()?;
        let paused = r.bool()?;
        let turned_back = r.bool()?;
        let at = r.offset();
        let outcome = match r.u8()? {
            0 => None,
            n => Some(
                *RunStatus::ALL
                    .get(usize::from(n) - 1)
                    .ok_or(DecodeError::Invalid {
                        what: "run status",
                        offset: at,
                    })?,
            ),
        };
        if r.remaining() != 0 {
            return Err(DecodeError::TrailingBytes {
                extra: r.remaining(),
            });
        }
        Ok(SummaryFold {
            start_at_ms,
            deadline_ms,
            open,
            open_name,
            input_pending,
            timer,
            retry_at_ms,
            paused,
            turned_back,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_fold() -> impl Strategy<Value = SummaryFold> {
        let kind = prop::sample::select(StepKind::ALL.to_vec());
        let status = prop::sample::select(RunStatus::ALL.to_vec());
        (
            (
                prop::option::of(any::<u64>()),
                prop::option::of(any::<u64>()),
                prop::option::of((any::<u32>(), kind)),
                prop::option::of(".{0,12}"),
                any::<bool>(),
            ),
            (
                prop::option::of((any::<u32>(), any::<u64>())),
                prop::option::of(any::<u64>()),
                any::<bool>(),
                any::<bool>(),
                prop::option::of(status),
            ),
        )
            .prop_map(
                |(
                    (start, deadline, open, name, pending),
                    (timer, retry, paused, back, outcome),
                )| {
                    SummaryFold {
                        // Times are milliseconds: u64::MAX is not one (optional varints add 1).
                        start_at_ms: start.map(|v| v >> 1),
                        deadline_ms: deadline.map(|v| v >> 1),
                        open,
                        open_name: name,
                        input_pending: pending,
                        timer,
                        retry_at_ms: retry.map(|v| v >> 1),
                        paused,
                        turned_back: back,
                        outcome,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn a_fold_reads_back_as_written(fold in arb_fold()) {
            prop_assert_eq!(SummaryFold::decode(&fold.encode()).unwrap(), fold);
        }

        #[test]
        fn garbage_is_an_error_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let _ = SummaryFold::decode(&bytes);
        }

        #[test]
        fn a_cut_or_extended_fold_is_an_error(fold in arb_fold(), cut in 1usize..8) {
            let bytes = fold.encode();
            prop_assert!(SummaryFold::decode(&bytes[..bytes.len().saturating_sub(cut)]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(SummaryFold::decode(&longer).is_err());
        }
    }
}
