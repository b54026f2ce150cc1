//! What the ranks send each other, as bytes: a round's state (statistics, stop, failure)
//! and the small ok-or-failure statuses of [`super::agree`]. Values travel as their exact
//! little-endian bits, so a rank that decodes a message holds the very numbers the
//! sender had.

use ndarray::{Array1, Array2, ShapeBuilder};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::model::{CodesSummary, ColumnContribution, Contribution};

const OK: u8 = 0;
const FAILED: u8 = 1;

/// "All is well" (for [`super::agree`]).
pub(crate) fn status_ok() -> Vec<u8> {
    vec![OK]
}

/// "All is well", followed by a payload.
pub(crate) fn with_status_ok(payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(OK);
    out.extend(payload);
    out
}

/// The payload of an ok status.
pub(crate) fn payload(mut status: Vec<u8>) -> Vec<u8> {
    status.drain(..1.min(status.len()));
    status
}

/// "Rank `rank` failed with `message`".
pub(crate) fn status_failed(rank: usize, message: &str) -> Vec<u8> {
    let mut w = Writer(vec![FAILED]);
    w.u64(rank as u64);
    w.str(message);
    w.0
}

/// The failure a status holds, if any.
pub(crate) fn failure(status: &[u8]) -> Result<Option<(usize, String)>> {
    match status.first() {
        Some(&OK) => Ok(None),
        Some(&FAILED) => {
            let mut r = Reader(&status[1..]);
            Ok(Some((r.u64()? as usize, r.str()?)))
        }
        _ => Err(malformed()),
    }
}

/// Of two statuses (lower ranks first), the first failure, else the first.
pub(crate) fn first_failure(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    if a.first() != Some(&FAILED) && b.first() == Some(&FAILED) {
        b
    } else {
        a
    }
}

fn malformed() -> Error {
    Error::Collective("malformed message from another rank".into())
}

/// One round's state: one rank's before the reduction, every rank's after.
#[derive(Clone, Debug)]
pub(crate) struct Round<F> {
    /// The ranks that brought a batch, in rank order, with its rows.
    pub(crate) batches: Vec<(usize, usize)>,
    /// Their codes' summary, summed.
    pub(crate) summary: Option<CodesSummary>,
    /// Their statistics, summed in the tree's order.
    pub(crate) contribution: Option<Contribution<F>>,
    /// Some rank was asked to stop.
    pub(crate) stop: bool,
    /// The lowest failing rank and its message.
    pub(crate) failed: Option<(usize, String)>,
}

impl<F: Float> Round<F> {
    /// A rank with nothing to add (its share of the epoch is done).
    pub(crate) fn idle() -> Self {
        Self {
            batches: Vec::new(),
            summary: None,
            contribution: None,
            stop: false,
            failed: None,
        }
    }
    /// A rank that solved a batch.
    pub(crate) fn batch(rank: usize, c: Contribution<F>, s: CodesSummary) -> Self {
        Self {
            batches: vec![(rank, s.rows)],
            summary: Some(s),
            contribution: Some(c),
            ..Self::idle()
        }
    }
    /// A rank asked to stop.
    pub(crate) fn stop() -> Self {
        Self {
            stop: true,
            ..Self::idle()
        }
    }
    /// A rank that failed.
    pub(crate) fn failed(rank: usize, message: String) -> Self {
        Self {
            failed: Some((rank, message)),
            ..Self::idle()
        }
    }

    /// `self` (lower ranks) combined with `o` (higher ranks). Statistics of different
    /// widths (a catalogue that grew on some ranks only) are a failure.
    pub(crate) fn combine(mut self, o: Self) -> Self {
        self.failed = self.failed.or(o.failed);
        self.stop |= o.stop;
        if self.failed.is_some() || self.stop {
            self.contribution = None;
            return self;
        }
        let o_rank = o.batches.first().map_or(0, |b| b.0);
        self.batches.extend(o.batches);
        self.summary = match (self.summary, o.summary) {
            (Some(a), Some(b)) => Some(a.add(b)),
            (a, b) => a.or(b),
        };
        self.contribution = match (self.contribution, o.contribution) {
            (Some(mut a), Some(b)) => {
                if a.first.dim() != b.first.dim()
                    || a.second.dim() != b.second.dim()
                    || a.width != b.width
                    || a.columns.is_some() != b.columns.is_some()
                {
                    self.failed = Some((
                        o_rank,
                        format!(
                            "the ranks' batches have {} and {} features: a catalogue that grows during a distributed fit is not supported",
                            a.width, b.width
                        ),
                    ));
                    None
                } else {
                    a.add(&b);
                    Some(a)
                }
            }
            (a, b) => a.or(b),
        };
        self
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.u8(u8::from(self.stop));
        match &self.failed {
            Some((rank, m)) => {
                w.u8(1);
                w.u64(*rank as u64);
                w.str(m);
            }
            None => w.u8(0),
        }
        w.u64(self.batches.len() as u64);
        for &(rank, rows) in &self.batches {
            w.u64(rank as u64);
            w.u64(rows as u64);
        }
        match &self.summary {
            Some(s) => {
                w.u8(1);
                w.f64(s.loss);
                w.u64(s.rows as u64);
                w.u64(s.iterations as u64);
                w.u8(u8::from(s.converged));
            }
            None => w.u8(0),
        }
        match &self.contribution {
            Some(c) => {
                w.u8(1);
                w.u64(c.rows as u64);
                w.u64(c.width as u64);
                w.array2(&c.first);
                w.array2(&c.second);
                w.u64(c.energy.len() as u64);
                c.energy.iter().for_each(|&v| w.f64(v));
                match &c.columns {
                    Some(cc) => {
                        w.u8(1);
                        w.u64(cc.cols.len() as u64);
                        cc.cols.iter().for_each(|&j| w.0.extend(j.to_le_bytes()));
                        w.floats(&cc.a);
                        w.floats(&cc.b);
                        w.floats(&cc.n);
                    }
                    None => w.u8(0),
                }
            }
            None => w.u8(0),
        }
        w.0
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        let stop = r.u8()? != 0;
        let failed = match r.u8()? {
            0 => None,
            _ => Some((r.u64()? as usize, r.str()?)),
        };
        let n = r.len(16)?;
        let mut batches = Vec::with_capacity(n);
        for _ in 0..n {
            batches.push((r.u64()? as usize, r.u64()? as usize));
        }
        let summary = match r.u8()? {
            0 => None,
            _ => Some(CodesSummary {
                loss: r.f64()?,
                rows: r.u64()? as usize,
                iterations: r.u64()? as usize,
                converged: r.u8()? != 0,
            }),
        };
        let contribution = match r.u8()? {
            0 => None,
            _ => {
                let rows = r.u64()? as usize;
                let width = r.u64()? as usize;
                let first = r.array2()?;
                let second = r.array2()?;
                let n = r.len(8)?;
                let energy = (0..n).map(|_| r.f64()).collect::<Result<Array1<f64>>>()?;
                let columns = match r.u8()? {
                    0 => None,
                    _ => {
                        let n = r.len(4)?;
                        let mut cols = Vec::with_capacity(n);
                        for _ in 0..n {
                            cols.push(u32::from_le_bytes(r.take(4)?.try_into().expect("4")));
                        }
                        Some(ColumnContribution {
                            cols,
                            a: r.floats()?,
                            b: r.floats()?,
                            n: r.floats()?,
                        })
                    }
                };
                Some(Contribution {
                    rows,
                    width,
                    first,
                    second,
                    energy,
                    columns,
                })
            }
        };
        if !r.0.is_empty() {
            return Err(malformed());
        }
        Ok(Self {
            batches,
            summary,
            contribution,
            stop,
            failed,
        })
    }
}

/// A dense row as bytes (re-seeding from another rank's batch).
pub(crate) fn encode_row<F: Float>(row: &Array1<F>) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.floats(row.as_slice().unwrap_or(&row.to_vec()));
    w.0
}

/// A row from [`encode_row`]'s bytes.
pub(crate) fn decode_row<F: Float>(bytes: &[u8]) -> Result<Array1<F>> {
    let mut r = Reader(bytes);
    Ok(Array1::from(r.floats()?))
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend(v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend(v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend(s.as_bytes());
    }
    fn floats<F: Float>(&mut self, v: &[F]) {
        self.u64(v.len() as u64);
        self.0.reserve(v.len() * F::BYTES);
        v.iter().for_each(|&x| x.put_le(&mut self.0));
    }
    /// Shape, memory order (0: rows, 1: columns) and the values in that order, so the
    /// receiver rebuilds the same layout.
    fn array2<F: Float>(&mut self, a: &Array2<F>) {
        let (r, c) = a.dim();
        self.u64(r as u64);
        self.u64(c as u64);
        if a.is_standard_layout() || !a.t().is_standard_layout() {
            self.u8(0);
            self.u64((r * c) as u64);
            a.iter().for_each(|&x| x.put_le(&mut self.0));
        } else {
            self.u8(1);
            self.u64((r * c) as u64);
            a.t().iter().for_each(|&x| x.put_le(&mut self.0));
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(malformed());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    /// A count of items of `size` bytes each that the rest of the message can hold.
    fn len(&mut self, size: usize) -> Result<usize> {
        let n = self.u64()?;
        if n > (self.0.len() / size.max(1)) as u64 {
            return Err(malformed());
        }
        Ok(n as usize)
    }
    fn str(&mut self) -> Result<String> {
        let n = self.len(1)?;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn floats<F: Float>(&mut self) -> Result<Vec<F>> {
        let n = self.len(F::BYTES)?;
        let raw = self.take(n * F::BYTES)?;
        Ok(raw.chunks_exact(F::BYTES).map(F::from_le).collect())
    }
    fn array2<F: Float>(&mut self) -> Result<Array2<F>> {
        let r = self.u64()? as usize;
        let c = self.u64()? as usize;
        let order = self.u8()?;
        let v = self.floats::<F>()?;
        let shape = (r, c);
        let a = match order {
            0 => Array2::from_shape_vec(shape, v),
            _ => Array2::from_shape_vec(shape.f(), v),
        };
        a.map_err(|_| malformed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contribution(seed: f32, width: usize, column_major: bool) -> Contribution<f32> {
        let second = Array2::from_shape_fn((3, width), |(i, j)| seed + (i * 7 + j) as f32 / 3.0);
        let second = if column_major {
            let mut f = Array2::zeros((3, width).f());
            f.assign(&second);
            f
        } else {
            second
        };
        Contribution {
            rows: 5,
            width,
            first: Array2::from_shape_fn((3, 3), |(i, j)| seed * (i + j) as f32 + 0.1),
            second,
            energy: Array1::from(vec![1.0, 2.5, seed as f64]),
            columns: None,
        }
    }

    fn summary(loss: f64) -> CodesSummary {
        CodesSummary {
            loss,
            rows: 5,
            iterations: 3,
            converged: true,
        }
    }

    #[test]
    fn rounds_survive_the_wire_bit_for_bit() {
        let r = Round::batch(1, contribution(0.3, 4, true), summary(1.25));
        let back = Round::<f32>::decode(&r.encode()).unwrap();
        let (a, b) = (r.contribution.unwrap(), back.contribution.unwrap());
        assert_eq!(a.second, b.second);
        assert_eq!(
            a.second.t().is_standard_layout(),
            b.second.t().is_standard_layout()
        );
        assert_eq!(
            (a.first, a.energy, a.rows, a.width),
            (b.first, b.energy, b.rows, b.width)
        );
        assert_eq!(back.batches, [(1, 5)]);
        assert_eq!(back.summary, Some(summary(1.25)));
        let f = Round::<f64>::failed(3, "bad value at row 9".into());
        let back = Round::<f64>::decode(&f.encode()).unwrap();
        assert_eq!(back.failed, Some((3, "bad value at row 9".into())));
        // Truncated or padded messages are errors, not panics.
        let bytes = Round::batch(0, contribution(1.0, 2, false), summary(0.5)).encode();
        for cut in 0..bytes.len() {
            assert!(Round::<f32>::decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Round::<f32>::decode(&longer).is_err());
    }

    #[test]
    fn combining_sums_in_order_and_keeps_failures() {
        let a = Round::batch(0, contribution(0.5, 4, false), summary(1.0));
        let b = Round::batch(1, contribution(0.25, 4, false), summary(2.0));
        let both = a.clone().combine(b.clone());
        assert_eq!(both.batches, [(0, 5), (1, 5)]);
        assert_eq!(both.summary.unwrap().loss, 3.0);
        let mut want = a.contribution.clone().unwrap();
        want.add(b.contribution.as_ref().unwrap());
        assert_eq!(both.contribution.unwrap().second, want.second);
        let idle = Round::<f32>::idle().combine(a.clone());
        assert_eq!(idle.batches, [(0, 5)]);
        let failed = a
            .clone()
            .combine(Round::failed(1, "x".into()))
            .combine(Round::failed(2, "y".into()));
        assert_eq!(failed.failed, Some((1, "x".into())));
        assert!(failed.contribution.is_none());
        assert!(a.clone().combine(Round::stop()).stop);
        let wide = a.combine(Round::batch(1, contribution(0.1, 6, false), summary(1.0)));
        assert!(wide.failed.unwrap().1.contains("4 and 6 features"));
    }

    #[test]
    fn statuses() {
        assert_eq!(failure(&status_ok()).unwrap(), None);
        let f = status_failed(2, "oops");
        assert_eq!(failure(&f).unwrap(), Some((2, "oops".into())));
        assert_eq!(first_failure(status_ok(), f.clone()), f);
        assert_eq!(payload(with_status_ok(vec![4, 5])), [4, 5]);
        assert!(failure(&[9]).is_err());
    }
}
