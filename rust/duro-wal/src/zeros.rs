//! Finding the non-zero bytes in a segment image.
//!
//! Recovery reads whole segments, and a preallocated segment is mostly zeros: the spare
//! successor is 8 MiB of them, and the current segment is zeros after its last record.
//! Looking for the first or last non-zero byte one byte at a time cost more than the rest
//! of opening a small log, so these test blocks of bytes at once (an OR over a block
//! compiles to vector instructions) and look at single bytes only in the block that holds
//! the answer.

/// Bytes tested at once. Large enough for the OR to vectorize, small enough that the
/// byte-wise search in the block that holds the answer stays cheap.
const BLOCK: usize = 256;

fn all_zero(block: &[u8]) -> bool {
    block.iter().fold(0u8, |acc, &b| acc | b) == 0
}

/// Index of the last non-zero byte of `bytes`.
pub(crate) fn last_nonzero(bytes: &[u8]) -> Option<usize> {
    let whole = bytes.len() - bytes.len() % BLOCK;
    if let Some(i) = bytes[whole..].iter().rposition(|&b| b != 0) {
        return Some(whole + i);
    }
    let block = bytes[..whole]
        .chunks_exact(BLOCK)
        .rposition(|block| !all_zero(block))?;
    let start = block * BLOCK;
    bytes[start..start + BLOCK]
        .iter()
        .rposition(|&b| b != 0)
        .map(|i| start + i)
}

/// Index of the first non-zero byte of `bytes`.
pub(crate) fn first_nonzero(bytes: &[u8]) -> Option<usize> {
    let whole = bytes.len() - bytes.len() % BLOCK;
    if let Some(block) = bytes[..whole]
        .chunks_exact(BLOCK)
        .position(|block| !all_zero(block))
    {
        let start = block * BLOCK;
        return bytes[start..start + BLOCK]
            .iter()
            .position(|&b| b != 0)
            .map(|i| start + i);
    }
    bytes[whole..]
        .iter()
        .position(|&b| b != 0)
        .map(|i| whole + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Mostly zeros with a few non-zero bytes at chosen places, of lengths around the block
    /// size, so the blocks' edges and the partial tail are both hit.
    fn sparse() -> impl Strategy<Value = Vec<u8>> {
        (0usize..4 * BLOCK + 7).prop_flat_map(|len| {
            let spots = if len == 0 {
                Just(Vec::new()).boxed()
            } else {
                proptest::collection::vec((0..len, 1u8..=255), 0..4).boxed()
            };
            spots.prop_map(move |spots| {
                let mut bytes = vec![0u8; len];
                for (at, value) in spots {
                    bytes[at] = value;
                }
                bytes
            })
        })
    }

    proptest! {
        #[test]
        fn last_nonzero_is_the_bytewise_answer(bytes in sparse()) {
            prop_assert_eq!(last_nonzero(&bytes), bytes.iter().rposition(|&b| b != 0));
        }

        #[test]
        fn first_nonzero_is_the_bytewise_answer(bytes in sparse()) {
            prop_assert_eq!(first_nonzero(&bytes), bytes.iter().position(|&b| b != 0));
        }
    }

    #[test]
    fn edges_of_blocks() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK] {
            let zeros = vec![0u8; len];
            assert_eq!(last_nonzero(&zeros), None);
            assert_eq!(first_nonzero(&zeros), None);
            for at in [0, len / 2, len.saturating_sub(1)] {
                if len == 0 {
                    continue;
                }
                let mut bytes = zeros.clone();
                bytes[at] = 1;
                assert_eq!(last_nonzero(&bytes), Some(at), "len {len} at {at}");
                assert_eq!(first_nonzero(&bytes), Some(at), "len {len} at {at}");
            }
        }
    }
}
