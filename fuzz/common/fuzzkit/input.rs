//! fuzzkit's input side: [`Rng`] (SplitMix64), the encodings inputs are built from (varints,
//! [`INTERESTING`] values, CRC32C) and the byte-level mutations ([`mutate`], [`next_input`]).

// ---------------------------------------------------------------------------------------
// Random numbers.

/// SplitMix64: tiny, fast, good enough to drive mutations, identical everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6A09_E667_F3BC_C908)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        (self.next_u64() % 100) < percent as u64
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A value that is often small, sometimes interesting, sometimes anything.
    pub fn number(&mut self) -> u64 {
        match self.below(4) {
            0 => self.below(16) as u64,
            1 => *self.pick(&INTERESTING),
            2 => self.next_u64() >> self.below(64),
            _ => self.next_u64(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Encodings.

pub const INTERESTING: [u64; 20] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x3fff,
    0x4000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    (i64::MAX as u64) - 1,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

/// Unsigned LEB128, as the journal codec and the store's record framing write it.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn varint(value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, value);
    out
}

/// A varint meant to break a reader: the largest values, overlong and overflowing forms,
/// unterminated runs of continuation bytes.
pub fn huge_varint(rng: &mut Rng) -> Vec<u8> {
    match rng.below(9) {
        0 => varint(u64::MAX),
        1 => vec![0xff; 10],
        2 => [vec![0xff; 9], vec![0x01]].concat(),
        3 => [vec![0xff; 9], vec![0x02]].concat(),
        4 => [vec![0x80; 9], vec![0x00]].concat(),
        5 => vec![0x80; 1 + rng.below(16)],
        6 => vec![0xff; 11 + rng.below(8)],
        7 => varint(u64::MAX >> rng.below(64)),
        _ => varint(*rng.pick(&INTERESTING)),
    }
}

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC32C (Castagnoli), the checksum of duro's log frames and index rows.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c_append(0, bytes)
}

/// Continues a CRC32C over more bytes (same convention as the `crc32c` crate).
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    let mut crc = !crc;
    for &b in bytes {
        crc = CRC32C_TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

// ---------------------------------------------------------------------------------------
// Mutations.

/// Applies 1 to 8 stacked mutations to `data`, then cuts it to `max_len`. `others` are
/// inputs to splice from (valid encodings of other kinds).
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>], max_len: usize) {
    let most = if rng.chance(20) { 8 } else { 3 };
    let rounds = 1 + rng.below(most);
    for _ in 0..rounds {
        mutate_once(rng, data, others);
    }
    data.truncate(max_len);
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    let len = data.len();
    match rng.below(16) {
        // Bit flip.
        0 | 1 if len > 0 => {
            let at = rng.below(len);
            data[at] ^= 1 << rng.below(8);
        }
        // A random or an interesting byte.
        2 if len > 0 => {
            let at = rng.below(len);
            data[at] = rng.byte();
        }
        3 if len > 0 => {
            let at = rng.below(len);
            data[at] = *rng.pick(&[0u8, 1, 2, 0x7f, 0x80, 0x81, 0xfe, 0xff]);
        }
        // Small arithmetic on a byte (a length or a tag off by a little).
        4 if len > 0 => {
            let at = rng.below(len);
            let delta = rng.below(9) as u8;
            data[at] = if rng.chance(50) {
                data[at].wrapping_add(delta)
            } else {
                data[at].wrapping_sub(delta)
            };
        }
        // Insert random bytes.
        5 => {
            let at = rng.below(len + 1);
            let most = if rng.chance(10) { 64 } else { 4 };
            let n = 1 + rng.below(most);
            let bytes = rng.bytes(n);
            data.splice(at..at, bytes);
        }
        // Delete a range.
        6 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(16));
            data.drain(at..at + n);
        }
        // Truncate.
        7 => {
            let at = rng.below(len + 1);
            data.truncate(at);
        }
        // Splice: our prefix, another input's suffix.
        8 if !others.is_empty() => {
            let other = rng.pick(others);
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        // Duplicate a range (repeated fields, repeated records).
        9 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            let copy = data[at..at + n].to_vec();
            let to = rng.below(len + 1);
            data.splice(to..to, copy);
        }
        // Replace a byte with a huge varint (or insert one).
        10 | 11 => {
            let at = rng.below(len + 1);
            let v = huge_varint(rng);
            let end = if at < len && rng.chance(70) {
                at + 1
            } else {
                at
            };
            data.splice(at..end, v);
        }
        // Overwrite 4 or 8 bytes with an interesting little-endian value (lengths, LSNs).
        12 | 13 if len >= 4 => {
            let value = *rng.pick(&INTERESTING);
            if len >= 8 && rng.chance(50) {
                let at = rng.below(len - 7);
                data[at..at + 8].copy_from_slice(&value.to_le_bytes());
            } else {
                let at = rng.below(len - 3);
                data[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
            }
        }
        // Replace a byte with a varint of another size (a length field that grows or shrinks).
        14 if len > 0 => {
            let at = rng.below(len);
            let v = varint(rng.number());
            data.splice(at..at + 1, v);
        }
        // Swap two bytes.
        _ if len > 1 => {
            let a = rng.below(len);
            let b = rng.below(len);
            data.swap(a, b);
        }
        _ => {
            let b = rng.byte();
            data.push(b);
        }
    }
}

/// A fresh input: a mutant of a seed most of the time, random bytes otherwise.
pub fn next_input(rng: &mut Rng, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    match rng.below(10) {
        0 => {
            let n = rng.below(max_len.min(256) + 1);
            rng.bytes(n)
        }
        1 if !seeds.is_empty() => rng.pick(seeds).clone(),
        _ if !seeds.is_empty() => {
            let mut data = rng.pick(seeds).clone();
            mutate(rng, &mut data, seeds, max_len);
            data
        }
        _ => {
            let n = rng.below(max_len + 1);
            rng.bytes(n)
        }
    }
}
