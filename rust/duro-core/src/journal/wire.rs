//! Primitive encodings shared by the journal codec: LEB128 varints and
//! length-prefixed bytes. The reader never allocates more than the input
//! holds, so garbage lengths cannot exhaust memory.

use crate::error::DecodeError;

pub(crate) fn put_u8(out: &mut Vec<u8>, value: u8) {
    out.push(value);
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `None` is 0, `Some(v)` is `v + 1`. Values are milliseconds, far below `u64::MAX`.
pub(crate) fn put_opt_varint(out: &mut Vec<u8>, value: Option<u64>) {
    put_varint(out, value.map_or(0, |v| v.saturating_add(1)));
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, offset: 0 }
    }

    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.bytes.get(self.offset).ok_or(DecodeError::Truncated {
            offset: self.offset,
            needed: 1,
        })?;
        self.offset += 1;
        Ok(byte)
    }

    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.offset;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid {
                what: "boolean",
                offset: at,
            }),
        }
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.offset;
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = (byte & 0x7f) as u64;
            if shift == 63 && bits > 1 {
                return Err(DecodeError::Invalid {
                    what: "varint (overflow)",
                    offset: start,
                });
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid {
            what: "varint (too long)",
            offset: start,
        })
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let start = self.offset;
        let value = self.varint()?;
        u32::try_from(value).map_err(|_| DecodeError::Invalid {
            what: "32-bit integer",
            offset: start,
        })
    }

    pub(crate) fn opt_varint(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(match self.varint()? {
            0 => None,
            v => Some(v - 1),
        })
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len_offset = self.offset;
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Invalid {
            what: "length",
            offset: len_offset,
        })?;
        if len > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: self.offset,
                needed: len - self.remaining(),
            });
        }
        let slice = &self.bytes[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.offset;
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Invalid {
                what: "UTF-8 string",
                offset: at,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_bounds() {
        for value in [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut reader = Reader::new(&out);
            assert_eq!(reader.varint().unwrap(), value);
            assert_eq!(reader.remaining(), 0);
        }
        // 10 continuation bytes: too long.
        let mut reader = Reader::new(&[0xff; 11]);
        assert!(reader.varint().is_err());
    }

    #[test]
    fn huge_length_is_truncation_not_allocation() {
        let mut out = Vec::new();
        put_varint(&mut out, u64::MAX / 2);
        let mut reader = Reader::new(&out);
        assert!(matches!(reader.bytes(), Err(DecodeError::Truncated { .. })));
    }
}
