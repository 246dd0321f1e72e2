//! The mutations: what an attacker or a broken network does to a valid frame. Most mutations
//! keep the first four bytes (API key and version) so that the body decoders of real APIs are
//! exercised rather than the early version check; the rest are free.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// 32-bit values that break length and count handling.
const INTERESTING_I32: [i32; 10] = [
    -1,
    0,
    1,
    0x7F,
    0xFFFF,
    0x7FFF_FFFF,
    i32::MIN,
    0x0100_0000,
    0x3FFF_FFFF,
    0x7FFF_FFFE,
];
/// 16-bit values for string lengths and counts.
const INTERESTING_I16: [i16; 6] = [-1, 0, 0x7FFF, i16::MIN, 0x0100, 0x7FFE];
/// Unsigned varints (compact lengths, tagged-field counts) claiming huge sizes.
const HUGE_VARINTS: [&[u8]; 4] = [
    &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
    &[0xFF, 0xFF, 0xFF, 0x7F],
    &[0x80, 0x80, 0x80, 0x80, 0x08],
    &[0xFF, 0xFF, 0x03],
];

/// A seeded source of mutated frames.
pub struct Mutator {
    rng: StdRng,
}

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// One mutation of `frame`; `other` is a second frame to splice from.
    pub fn mutate(&mut self, frame: &[u8], other: &[u8]) -> Bytes {
        let mut out = frame.to_vec();
        let keep_header = self.rng.random_bool(0.9);
        let rounds = self.rng.random_range(1..=4);
        for _ in 0..rounds {
            let from = if keep_header && out.len() > 8 { 4 } else { 0 };
            self.mutate_once(&mut out, from, other);
        }
        Bytes::from(out)
    }

    fn mutate_once(&mut self, out: &mut Vec<u8>, from: usize, other: &[u8]) {
        let rng = &mut self.rng;
        let pos = |rng: &mut StdRng, len: usize| {
            if len > from {
                rng.random_range(from..len)
            } else {
                len
            }
        };
        match rng.random_range(0..10) {
            0 => {
                // flip one to eight bits
                for _ in 0..rng.random_range(1..=8) {
                    if out.len() > from {
                        let at = pos(rng, out.len());
                        out[at] ^= 1 << rng.random_range(0..8);
                    }
                }
            }
            1 => {
                if out.len() > from {
                    let at = pos(rng, out.len());
                    out[at] = rng.random();
                }
            }
            2 => {
                let v = INTERESTING_I32[rng.random_range(0..INTERESTING_I32.len())];
                overwrite(out, pos(rng, out.len()), &v.to_be_bytes());
            }
            3 => {
                let v = INTERESTING_I16[rng.random_range(0..INTERESTING_I16.len())];
                overwrite(out, pos(rng, out.len()), &v.to_be_bytes());
            }
            4 => {
                let v = HUGE_VARINTS[rng.random_range(0..HUGE_VARINTS.len())];
                let at = pos(rng, out.len());
                if rng.random_bool(0.5) {
                    overwrite(out, at, v);
                } else {
                    out.splice(at..at, v.iter().copied());
                }
            }
            5 => {
                let at = pos(rng, out.len());
                out.truncate(at);
            }
            6 => {
                let at = pos(rng, out.len());
                let n = rng.random_range(1..=16);
                let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                out.splice(at..at, junk);
            }
            7 => {
                if out.len() > from + 1 {
                    let a = pos(rng, out.len());
                    let b = (a + rng.random_range(1..=32)).min(out.len());
                    out.drain(a..b);
                }
            }
            8 => {
                if out.len() > from + 1 {
                    let a = pos(rng, out.len());
                    let b = (a + rng.random_range(1..=64)).min(out.len());
                    let copy = out[a..b].to_vec();
                    let at = pos(rng, out.len());
                    out.splice(at..at, copy);
                }
            }
            _ => {
                // splice: our head, the other frame's tail
                if !other.is_empty() {
                    let at = pos(rng, out.len());
                    let tail_from = rng.random_range(0..other.len());
                    out.truncate(at);
                    out.extend_from_slice(&other[tail_from..]);
                }
            }
        }
    }

    /// Bytes with no structure at all.
    pub fn random_bytes(&mut self, max_len: usize) -> Bytes {
        let n = self.rng.random_range(0..=max_len);
        Bytes::from((0..n).map(|_| self.rng.random()).collect::<Vec<u8>>())
    }
}

fn overwrite(out: &mut Vec<u8>, at: usize, value: &[u8]) {
    if at >= out.len() {
        out.extend_from_slice(value);
        return;
    }
    for (i, b) in value.iter().enumerate() {
        match out.get_mut(at + i) {
            Some(slot) => *slot = *b,
            None => out.push(*b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_frames() {
        let frame: Vec<u8> = (0..100u8).collect();
        let mut a = Mutator::new(7);
        let mut b = Mutator::new(7);
        for _ in 0..1000 {
            assert_eq!(a.mutate(&frame, &frame), b.mutate(&frame, &frame));
        }
    }

    #[test]
    fn mutations_change_frames_and_mostly_keep_the_api_key() {
        let frame: Vec<u8> = (0..100u8).collect();
        let mut m = Mutator::new(1);
        let mutated: Vec<Bytes> = (0..1000).map(|_| m.mutate(&frame, &frame)).collect();
        let changed = mutated.iter().filter(|f| f[..] != frame[..]).count();
        let kept = mutated
            .iter()
            .filter(|f| f.len() >= 4 && f[..4] == frame[..4])
            .count();
        assert!(changed > 900, "{changed}");
        assert!(kept > 800, "{kept}");
    }
}
