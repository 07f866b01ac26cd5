//! Randomness: a tiny seeded PRNG for deterministic fault injection, and OS randomness for
//! segment epochs (an epoch must differ between segments and between runs so that stale
//! bytes can never validate as a current record).

use std::fs::File;
use std::io::{self, Read};

/// splitmix64: small, fast, good enough for choosing which sectors survive a crash.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A random u32 from the operating system (getrandom(2), falling back to /dev/urandom).
/// Zero is avoided so an epoch is never equal to the bytes of a zero-filled header.
pub(crate) fn os_random_u32() -> io::Result<u32> {
    let mut buf = [0u8; 4];
    loop {
        fill_os_random(&mut buf)?;
        let value = u32::from_le_bytes(buf);
        if value != 0 {
            return Ok(value);
        }
    }
}

fn fill_os_random(buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: buf is a valid, writable buffer of buf.len() bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == buf.len() as isize {
        return Ok(());
    }
    let mut file = File::open("/dev/urandom")?;
    file.read_exact(buf)
}
