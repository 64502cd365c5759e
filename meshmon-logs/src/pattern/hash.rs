//! A small deterministic hash (FxHash's multiply-rotate) for bucket keys: stable across
//! runs and platforms, so persisted pattern sets rebuild the same index.

use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0x517c_c1b7_2722_0a95;

/// Deterministic streaming hash of bytes and integers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Fx(u64);

impl Fx {
    #[inline]
    pub(crate) fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }

    #[inline]
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            self.word(u64::from_le_bytes(a));
        }
        let rem = chunks.remainder();
        let mut a = [0u8; 8];
        a[..rem.len()].copy_from_slice(rem);
        self.word(u64::from_le_bytes(a) ^ ((rem.len() as u64) << 59));
    }

    #[inline]
    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// A pass-through hasher for maps keyed by already-hashed `u64`s.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut f = Fx(self.0);
        f.bytes(bytes);
        self.0 = f.finish();
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i).wrapping_mul(K);
    }
}

pub(crate) type IdBuild = BuildHasherDefault<IdHasher>;
