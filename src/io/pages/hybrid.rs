//! The RLE / bit-packed hybrid encoding of a data page's definition levels and
//! dictionary indices: runs read from the page's bytes, and indices gathered from the
//! dictionary into the column's values, eight at a time.

use parquet::errors::Result;

use super::{corrupt, Plain};

/// A run of an RLE / bit-packed hybrid encoding: `count` repeats of a value, or `count`
/// values of `width` bits packed from the start of `bytes`, least significant bit first.
enum Run<'a> {
    Repeat(u32, usize),
    Packed(&'a [u8], usize),
}

/// Calls `f` with the runs of `count` values of `width` bits in `data`.
fn runs<'a>(
    data: &'a [u8],
    width: u32,
    mut count: usize,
    mut f: impl FnMut(Run<'a>) -> Result<()>,
) -> Result<()> {
    if width > 32 {
        return Err(corrupt(format!("a bit width of {width}")));
    }
    let short = |left: usize| move || corrupt(format!("a page ends {left} values early"));
    let mut at = 0usize;
    while count > 0 {
        let mut header = 0u64;
        let mut shift = 0;
        loop {
            let byte = *data.get(at).ok_or_else(short(count))?;
            at += 1;
            header |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                break;
            }
            if shift > 35 {
                return Err(corrupt("a run header of more than 5 bytes".into()));
            }
        }
        if header & 1 == 1 {
            // Groups of 8 values; the last run may stop short of its groups' end.
            let n = ((header >> 1) as usize * 8).min(count);
            let bytes = (n * width as usize).div_ceil(8);
            let packed = data.get(at..at + bytes).ok_or_else(short(count))?;
            at += (header >> 1) as usize * width as usize;
            f(Run::Packed(packed, n))?;
            count -= n;
        } else {
            let n = ((header >> 1) as usize).min(count);
            let size = width.div_ceil(8) as usize;
            let raw = data.get(at..at + size).ok_or_else(short(count))?;
            at += size;
            let value = raw.iter().rev().fold(0u32, |v, &b| (v << 8) | u32::from(b));
            f(Run::Repeat(value, n))?;
            count -= n;
        }
    }
    Ok(())
}

/// Whether all `count` definition levels (one bit each) in `data` are 1.
pub(super) fn all_defined(data: &[u8], count: usize) -> Result<bool> {
    let mut all = true;
    runs(data, 1, count, |run| {
        all &= match run {
            Run::Repeat(v, n) => v == 1 || n == 0,
            Run::Packed(bytes, n) => {
                let (full, rest) = (n / 8, n % 8);
                bytes[..full].iter().all(|&b| b == 0xff)
                    && (rest == 0 || bytes[full] | (0xffu8 << rest) == 0xff)
            }
        };
        Ok(())
    })?;
    Ok(all)
}

/// Appends to `out` the dictionary values of `count` indices of `width` bits in `data`.
pub(super) fn gather<T: Plain>(
    data: &[u8],
    width: u32,
    count: usize,
    dict: &[T],
    out: &mut Vec<T>,
) -> Result<()> {
    let bad = |i: u32| {
        corrupt(format!(
            "dictionary index {i} of a dictionary of {} values",
            dict.len()
        ))
    };
    runs(data, width, count, |run| {
        match run {
            Run::Repeat(_, 0) => {}
            Run::Repeat(i, n) => {
                let v = *dict.get(i as usize).ok_or_else(|| bad(i))?;
                out.extend(std::iter::repeat_n(v, n));
            }
            Run::Packed(bytes, n) => {
                let start = out.len();
                let worst = packed(bytes, width as usize, n, dict, out);
                if worst as usize >= dict.len() && out.len() > start {
                    return Err(bad(worst));
                }
            }
        }
        Ok(())
    })
}

/// Appends to `out` the dictionary values of the `n` indices of `w` bits packed in
/// `bytes` (a run's, at least `n * w` bits); returns an index past the dictionary if
/// there is one (it appends a default value: the caller makes that an error), some index
/// within it otherwise.
fn packed<T: Plain>(bytes: &[u8], w: usize, n: usize, dict: &[T], out: &mut Vec<T>) -> u32 {
    // Whole groups of 8 values (`w` bytes each) through an unpacker of their width.
    let groups = (n / 8).min(bytes.len() / w.max(1));
    macro_rules! widths {
        ($($w:literal)*) => {
            match w {
                $($w => by_groups::<$w, T>(bytes, groups, dict, out),)*
                _ => 0,
            }
        };
    }
    let mut worst = widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25
        26 27 28 29 30 31 32);
    let done = if (1..=32).contains(&w) { groups * 8 } else { 0 };
    // The rest one at a time, through 8 bytes padded with zeros.
    let mask = if w == 0 {
        0
    } else {
        u64::MAX >> (64 - w.min(64))
    };
    for k in done..n {
        let bit = k * w;
        let mut word = [0u8; 8];
        let tail = bytes.get(bit / 8..).unwrap_or_default();
        let m = tail.len().min(8);
        word[..m].copy_from_slice(&tail[..m]);
        let i = ((u64::from_le_bytes(word) >> (bit % 8)) & mask) as u32;
        worst = worst.max(i);
        out.push(dict.get(i as usize).copied().unwrap_or_default());
    }
    worst
}

/// Bytes from a group's start that [`unpack8_words`] reads: the last value's 8-byte word
/// starts at most 28 bytes in (7 × 32 / 8).
const WINDOW: usize = 36;

/// [`packed`]'s first `groups` groups of 8 indices of `W` bits (`W` bytes a group).
/// Returns the largest index of a group holding one past the dictionary, if any (0, or
/// some index within it, otherwise).
fn by_groups<const W: usize, T: Plain>(
    bytes: &[u8],
    groups: usize,
    dict: &[T],
    out: &mut Vec<T>,
) -> u32 {
    let mut worst = 0u32;
    let mut put = |idx: [u32; 8], out: &mut Vec<T>| {
        let most = idx.iter().fold(0, |m, &i| m.max(i));
        if (most as usize) < dict.len() {
            // Straight into the spare capacity: through an array of 8 (`extend`, `map`),
            // the values took a round trip through the stack.
            out.reserve(8);
            let spare = &mut out.spare_capacity_mut()[..8];
            for (o, &i) in spare.iter_mut().zip(&idx) {
                o.write(dict[i as usize]);
            }
            // SAFETY: the 8 values past the length were written above.
            unsafe { out.set_len(out.len() + 8) };
        } else {
            worst = worst.max(most);
            out.extend(idx.map(|i| dict.get(i as usize).copied().unwrap_or_default()));
        }
    };
    // Groups with a whole window after their start are read a word a value; the last
    // few, byte by byte.
    let by_words = groups.min(bytes.len().saturating_sub(WINDOW - W) / W);
    let mut seq: Option<Sequence<W>> = None;
    // Dictionary values `from..to`: the groups of a sequence, copied when it ends.
    let (mut from, mut to) = (0, 0);
    for g in 0..by_words {
        let Some(Ok(w)) = bytes
            .get(g * W..g * W + WINDOW)
            .map(<&[u8; WINDOW]>::try_from)
        else {
            break;
        };
        if let Some(s) = seq
            .as_ref()
            .filter(|s| s.holds(w) && s.start + 8 <= dict.len())
        {
            if to != s.start {
                out.extend_from_slice(&dict[from..to]);
                from = s.start;
            }
            to = s.start + 8;
            seq = s.next();
            continue;
        }
        out.extend_from_slice(&dict[from..to]);
        (from, to) = (0, 0);
        let idx = unpack8_words::<W>(w);
        put(idx, out);
        seq = Sequence::after(idx[7]);
    }
    out.extend_from_slice(&dict[from..to]);
    for g in bytes[by_words * W..]
        .chunks_exact(W)
        .take(groups - by_words)
    {
        let Ok(g) = <&[u8; W]>::try_from(g) else {
            continue;
        };
        put(unpack8::<W>(g), out);
    }
    worst
}

/// The next group of indices of a run of consecutive ones (`start`, `start + 1`, …):
/// what a dictionary in first-appearance order encodes where the values seldom repeat
/// (floats). Where the 8 indices fit in 128 bits (`W` ≤ 16), such a group's bits are the
/// last group's plus 8 in each field, so one comparison tells it (and its values are the
/// dictionary's, copied in one piece) instead of 8 unpacked indices and 8 lookups.
struct Sequence<const W: usize> {
    start: usize,
    /// The group's bits: `start + j` in field `j`.
    bits: u128,
}

impl<const W: usize> Sequence<W> {
    /// 8 in each of the 8 fields.
    const STEP: u128 = {
        let (mut step, mut j) = (0u128, 0);
        while j < 8 && W * j < 128 {
            step |= 8 << (W * j);
            j += 1;
        }
        step
    };
    /// The group's 8 × `W` bits.
    const MASK: u128 = if 8 * W >= 128 {
        u128::MAX
    } else {
        (1 << (8 * W)) - 1
    };

    /// The sequence that continues a group ending in index `last`; `None` where its
    /// indices would not fit in `W` bits or its group in 128.
    fn after(last: u32) -> Option<Self> {
        let start = last as usize + 1;
        if W > 16 || start + 7 >= 1 << W {
            return None;
        }
        let bits = (0..8).fold(0u128, |b, j| b | ((start + j) as u128) << (W * j));
        Some(Self { start, bits })
    }

    /// Whether the group starting `w` holds this sequence's indices.
    fn holds(&self, w: &[u8; WINDOW]) -> bool {
        let mut b = [0u8; 16];
        b.copy_from_slice(&w[..16]);
        u128::from_le_bytes(b) & Self::MASK == self.bits
    }

    /// The group after this one.
    fn next(&self) -> Option<Self> {
        let start = self.start + 8;
        (start + 7 < 1 << W).then(|| Self {
            start,
            bits: self.bits + Self::STEP,
        })
    }
}

/// [`unpack8`] from a group's first [`WINDOW`] bytes: each value by one 8-byte load, a
/// shift and a mask (the bytes past the group are the next groups').
#[inline(always)]
fn unpack8_words<const W: usize>(g: &[u8; WINDOW]) -> [u32; 8] {
    let mask = u64::MAX >> (64 - W);
    std::array::from_fn(|j| {
        let bit = j * W;
        let mut word = [0u8; 8];
        word.copy_from_slice(&g[bit / 8..bit / 8 + 8]);
        ((u64::from_le_bytes(word) >> (bit % 8)) & mask) as u32
    })
}

/// The 8 values of `W` bits packed in `W` bytes, least significant bit first.
#[inline(always)]
fn unpack8<const W: usize>(g: &[u8; W]) -> [u32; 8] {
    let mask = u64::MAX >> (64 - W);
    std::array::from_fn(|j| {
        let bit = j * W;
        let (first, last) = (bit / 8, (bit + W - 1) / 8);
        let mut v = 0u64;
        for (s, &b) in g[first..=last].iter().enumerate() {
            v |= u64::from(b) << (8 * s);
        }
        ((v >> (bit % 8)) & mask) as u32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-made hybrid runs: a repeat, a bit-packed run whose last group stops short,
    /// and the errors of an index past the dictionary and of a run that ends early.
    #[test]
    fn hybrid_runs_decode_and_fail_cleanly() {
        let dict = [10.0f32, 11.0, 12.0, 13.0];
        // Repeat of index 2, 3 times: header 3 << 1, value byte 2.
        // Bit-packed, one group (header 1 << 1 | 1), 2-bit indices 0,1,2,3,3,2,1,0 of
        // which 6 are used.
        let data = [6u8, 2, 3, 0b1110_0100, 0b0001_1011];
        let mut out = Vec::new();
        gather(&data, 2, 9, &dict, &mut out).unwrap();
        assert_eq!(out, [12.0, 12.0, 12.0, 10.0, 11.0, 12.0, 13.0, 13.0, 12.0]);
        // Only the bytes of the values used must be there.
        out.clear();
        gather(&data[..4], 2, 7, &dict, &mut out).unwrap();
        assert_eq!(out.len(), 7);
        out.clear();
        let err = gather(&data, 2, 12, &dict, &mut out).unwrap_err();
        assert!(err.to_string().contains("ends 1 values early"), "{err}");
        let err = gather(&data, 2, 9, &dict[..2], &mut out).unwrap_err();
        assert!(err.to_string().contains("dictionary index"), "{err}");
        assert!(gather(&data, 40, 1, &dict, &mut out).is_err());
        // Definition levels: all ones in a repeat and in a packed run, then a zero.
        assert!(all_defined(&[20, 1], 10).unwrap());
        assert!(all_defined(&[5, 0xff, 0b0000_0111], 11).unwrap());
        assert!(!all_defined(&[5, 0xff, 0b0000_0101], 11).unwrap());
        // Every width's groups unpack as the one-at-a-time path does, by words (the
        // first groups) and byte by byte (the last few), with an index past the
        // dictionary (from width 13) reported; the padded run is read by words whole.
        for (w, pad) in (1..=32usize).flat_map(|w| [(w, 0), (w, 40)]) {
            let bytes: Vec<u8> = (0..w * 12 + pad).map(|i| (i * 37 + w) as u8).collect();
            let dict: Vec<f32> = (0..1 << w.min(12)).map(|i| i as f32).collect();
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            let wf = packed(&bytes, w, 92, &dict, &mut fast);
            let mut ws = 0;
            for k in 0..92 {
                let bit = k * w;
                let mut v = 0u64;
                for b in 0..w {
                    let at = bit + b;
                    v |= u64::from(bytes[at / 8] >> (at % 8) & 1) << b;
                }
                ws = ws.max(v as u32);
                slow.push(dict.get(v as usize).copied().unwrap_or_default());
            }
            assert_eq!(fast, slow, "width {w}");
            assert_eq!(
                wf as usize >= dict.len(),
                ws as usize >= dict.len(),
                "width {w}"
            );
            assert_eq!(w > 12, ws as usize >= dict.len(), "width {w}");
        }
    }

    /// Indices `idx` bit-packed `w` bits each, least significant bit first, with 40 bytes
    /// of padding after them.
    fn pack(idx: &[u32], w: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; (idx.len() * w).div_ceil(8) + 40];
        for (k, &v) in idx.iter().enumerate() {
            for b in 0..w {
                if v >> b & 1 == 1 {
                    bytes[(k * w + b) / 8] |= 1 << ((k * w + b) % 8);
                }
            }
        }
        bytes
    }

    /// Runs of consecutive indices (a dictionary in first-appearance order of values that
    /// seldom repeat), read by groups whole, decode as their lookups do: with repeats
    /// between them, from any start, up to the last index a width holds, and past the end
    /// of a dictionary (an error, not its values).
    #[test]
    fn consecutive_indices_decode_as_their_lookups() {
        for w in 1..=16usize {
            let top = (1u32 << w) - 1;
            let n = 200usize;
            let patterns: Vec<Vec<u32>> = vec![
                (0..n as u32).map(|i| i.min(top)).collect(),
                (0..n as u32)
                    .map(|i| {
                        if i % 37 == 5 {
                            1
                        } else {
                            (i + 3 - i / 37).min(top)
                        }
                    })
                    .collect(),
                (0..n as u32)
                    .map(|i| (top.saturating_sub(150) + i).min(top))
                    .collect(),
            ];
            for (p, idx) in patterns.iter().enumerate() {
                let bytes = pack(idx, w);
                let dict: Vec<f64> = (0..=top.min(1 << 12)).map(|i| f64::from(i) + 0.5).collect();
                let mut got = Vec::new();
                let worst = packed(&bytes, w, n, &dict, &mut got);
                let want: Vec<f64> = idx
                    .iter()
                    .map(|&i| dict.get(i as usize).copied().unwrap_or_default())
                    .collect();
                assert_eq!(got, want, "width {w}, pattern {p}");
                let past = idx.iter().any(|&i| i as usize >= dict.len());
                assert_eq!(worst as usize >= dict.len(), past, "width {w}, pattern {p}");
            }
        }
    }
}
