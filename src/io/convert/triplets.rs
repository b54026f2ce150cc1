//! Triplet layouts (`row, col, value` records, a row's entries contiguous): rows are
//! assembled run by run of equal row ids, across record batches, and handed out as CSR
//! batches whose origin names each row's first line.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::ScalarBuffer;

use super::columns::{column, floats, ids_of, integer_values};
use super::{vocabulary, ArrowFloat, Converter, Resolved};
use crate::error::{Error, Result};
use crate::matrix::{Batch, CsrBuilder, Origin, RowIds, Screened};

#[derive(Clone, Debug)]
pub(super) struct Pending {
    id: IdValue,
    source: Arc<str>,
    line: u64,
    entries: Vec<(u32, f64)>,
}

#[derive(Clone, Debug, PartialEq, Hash)]
enum IdValue {
    Int(i64),
    Str(String),
}

impl std::fmt::Display for IdValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdValue::Int(v) => write!(f, "{v}"),
            IdValue::Str(s) => write!(f, "'{s}'"),
        }
    }
}

/// The row ids of the last [`RecentIds::WINDOW`] completed triplet rows, to catch a row
/// id that comes back after other rows, a file not grouped by row, which would otherwise
/// give one row of X per run of its triplets. While every id is an integer greater than
/// the one before (a file sorted by row id, the usual case) they are kept in order and
/// searched by bisection: an id past the last needs no search at all. From the first id
/// that is not, they are kept as 64-bit hashes (24 MB at most). Hashing every id cost
/// 40 % of the reader thread on 10 M triplets of 100 000 rows.
#[derive(Clone, Debug, Default)]
pub(super) struct RecentIds {
    rising: std::collections::VecDeque<i64>,
    hashed: bool,
    set: std::collections::HashSet<u64>,
    order: std::collections::VecDeque<u64>,
}

impl RecentIds {
    const WINDOW: usize = 1 << 20;

    fn key(id: &IdValue) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        id.hash(&mut h);
        h.finish()
    }
    fn contains(&self, id: &IdValue) -> bool {
        match id {
            _ if self.hashed => self.set.contains(&Self::key(id)),
            IdValue::Int(v) => {
                self.rising.back().is_some_and(|last| v <= last)
                    && self.rising.binary_search(v).is_ok()
            }
            // Every id so far was an integer.
            IdValue::Str(_) => false,
        }
    }
    fn insert(&mut self, id: &IdValue) {
        if !self.hashed {
            match id {
                IdValue::Int(v) if self.rising.back().is_none_or(|last| v > last) => {
                    self.rising.push_back(*v);
                    if self.rising.len() > Self::WINDOW {
                        self.rising.pop_front();
                    }
                    return;
                }
                _ => {
                    self.hashed = true;
                    for v in std::mem::take(&mut self.rising) {
                        self.insert_key(Self::key(&IdValue::Int(v)));
                    }
                }
            }
        }
        self.insert_key(Self::key(id));
    }
    fn insert_key(&mut self, k: u64) {
        if self.set.insert(k) {
            self.order.push_back(k);
            if self.order.len() > Self::WINDOW {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// A record batch's row ids: integers as the column's own buffer (no copy: a copy of each
/// record batch's ids was 1.2 % of a sparse fit's samples), strings owned.
enum TripletIds {
    Int(ScalarBuffer<i64>),
    Str(Vec<String>),
}

impl TripletIds {
    /// The ids of column `a` (named `name`, its first row at file line `row0`), with the
    /// errors of [`ids_of`] (nulls, unsigned values past `i64::MAX`, other types).
    fn of(a: &ArrayRef, name: &str, row0: u64) -> Result<Self> {
        if a.data_type().is_integer() {
            return Ok(TripletIds::Int(integer_values(a, name, row0)?));
        }
        Ok(match ids_of(a, name, row0)? {
            RowIds::Int64(v) => TripletIds::Int(v.into()),
            RowIds::Utf8(v) => TripletIds::Str(v),
        })
    }
}

/// How many values at the start of `v` (not empty) equal its first.
fn run_length<T: PartialEq>(v: &[T]) -> usize {
    1 + v[1..].iter().take_while(|x| **x == v[0]).count()
}

/// The rows completed in one call, built straight into CSR arrays (no vector per row): the
/// entries of the row being assembled are the builder's open row until its run ends.
struct Rows<F> {
    csr: CsrBuilder<F>,
    ids: Option<RowIds>,
    origin: Origin,
    lines: Vec<u64>,
}

impl<F: ArrowFloat> Rows<F> {
    fn new(entries: usize) -> Self {
        let mut csr = CsrBuilder::new(0);
        csr.reserve(entries);
        Self {
            csr,
            ids: None,
            origin: Origin::default(),
            lines: Vec::new(),
        }
    }

    fn push_entry(&mut self, e: Option<(u32, f64)>) {
        if let Some((c, v)) = e {
            self.csr.extend_open_row([c], &[F::from_f64(v)]);
        }
    }

    fn push_entries(&mut self, entries: &[(u32, f64)]) {
        for &(c, v) in entries {
            self.csr.extend_open_row([c], &[F::from_f64(v)]);
        }
    }

    /// The open row's entries, taken out to wait for the next record batch.
    fn take_open(&mut self) -> Vec<(u32, f64)> {
        let mut out = Vec::new();
        self.csr.drain_open_row(|c, v| out.push((c, v.as_f64())));
        out
    }

    /// Ends a pending row (one that waited for the next record batch) as the next row:
    /// its id joins the recent ones.
    fn end_pending(&mut self, p: Pending, recent: &mut RecentIds, col: &str) -> Result<()> {
        recent.insert(&p.id);
        self.push_entries(&p.entries);
        self.end_row(p.id, p.source, p.line, col)
    }

    /// Ends the open row: sorted by column in place if the file was not (a repeated
    /// column is an error naming the row's first line and its id), then closed.
    fn end_row(&mut self, id: IdValue, source: Arc<str>, line: u64, col: &str) -> Result<()> {
        let (cols, vals) = self.csr.open_row();
        if !cols.windows(2).all(|w| w[0] < w[1]) {
            let mut pairs: Vec<(u32, F)> = cols.iter().copied().zip(vals.iter().copied()).collect();
            pairs.sort_by_key(|e| e.0);
            if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(Error::Column {
                    row: line,
                    column: col.into(),
                    message: format!(
                        "column index {} appears twice in one row of row id {id}",
                        w[0].0
                    ),
                });
            }
            for ((c, v), (pc, pv)) in cols.iter_mut().zip(vals.iter_mut()).zip(pairs) {
                *c = pc;
                *v = pv;
            }
        }
        self.csr.close_row();
        self.origin = std::mem::take(&mut self.origin).then(self.lines.len(), source, line);
        self.lines.push(line);
        match (&mut self.ids, id) {
            (Some(RowIds::Int64(all)), IdValue::Int(v)) => all.push(v),
            (Some(RowIds::Utf8(all)), IdValue::Str(s)) => all.push(s),
            (ids, id) => {
                let one = match id {
                    IdValue::Int(v) => RowIds::Int64(vec![v]),
                    IdValue::Str(s) => RowIds::Utf8(vec![s]),
                };
                match ids {
                    None => *ids = Some(one),
                    Some(all) => all.append(one),
                }
            }
        }
        Ok(())
    }

    /// The completed rows as a CSR batch of width `width`, or `None` if there are none.
    fn finish(self, width: usize) -> Result<Option<Batch<F>>> {
        let Some(ids) = self.ids else {
            return Ok(None);
        };
        let mut csr = self.csr;
        csr.widen(width);
        Ok(Some(
            Batch::csr(csr.finish())
                .with_ids(ids)?
                .with_origin(self.origin),
        ))
    }
}

/// A triplet's value that no loss accepts (negative, infinite, or NaN where NaN is not a
/// missing entry), or a zero under a loss undefined at zero (`zero_beta`: its β), is an
/// error naming its line and the value column. Checked here, where
/// the line is known: once in a sparse row, entries are sorted by column, and the
/// batch's checks could only name the row's first line and a column index.
fn check_triplet_values<V: crate::float::Float>(
    vals: &[V],
    nan_is_missing: bool,
    zero_beta: Option<f64>,
    row0: u64,
    value: &str,
) -> Result<()> {
    // The common case in one vectorized pass (a scalar scan with early exit was 6 % of a
    // sparse one-pass fit's CPU); the scan below only locates and names a bad value.
    if !nan_is_missing && crate::linalg::simd::all_valid(vals, zero_beta.is_some()) {
        return Ok(());
    }
    let bad = |v: V| {
        if v.is_nan() {
            !nan_is_missing
        } else {
            v.is_infinite() || v < V::zero() || (v == V::zero() && zero_beta.is_some())
        }
    };
    match vals.iter().position(|&v| bad(v)) {
        None => Ok(()),
        Some(i) => {
            let v = vals[i];
            let message = if let (true, Some(beta)) = (v == V::zero(), zero_beta) {
                format!("zero value, undefined under the beta={beta} divergence")
            } else if v.is_finite() {
                format!("negative value {v}: NMF needs non-negative data")
            } else {
                format!("non-finite value {v}")
            };
            Err(Error::Column {
                row: row0 + i as u64,
                column: value.into(),
                message,
            })
        }
    }
}

impl Converter {
    pub(super) fn convert_triplets<F: ArrowFloat>(
        &mut self,
        rb: &RecordBatch,
        source: &Arc<str>,
        row0: u64,
        row: &str,
        col: &str,
        value: &str,
    ) -> Result<Option<Batch<F>>> {
        let ids = TripletIds::of(column(rb, row)?, row, row0)?;
        // Column indices as they are, or mapped through the item catalogue (`None`: an
        // item a fixed catalogue does not know).
        let (plain, mapped) = match &self.items {
            None => (integer_values(column(rb, col)?, col, row0)?, Vec::new()),
            Some(items) => {
                let keys = ids_of(column(rb, col)?, col, row0)?;
                let mut v = vocabulary::lock(items);
                let mut out = Vec::with_capacity(rb.num_rows());
                match keys {
                    RowIds::Int64(k) => {
                        for id in k {
                            out.push(v.column(&id.to_string())?.map(i64::from));
                        }
                    }
                    RowIds::Utf8(k) => {
                        for id in k {
                            out.push(v.column(&id)?.map(i64::from));
                        }
                    }
                }
                self.width = v.len();
                (Default::default(), out)
            }
        };
        let col_at = |t: usize| {
            if mapped.is_empty() {
                Some(plain[t])
            } else {
                mapped[t]
            }
        };
        let vals = floats::<F>(column(rb, value)?, value, row0)?;
        let vals = vals.as_primitive::<F::Arrow>().values();
        check_triplet_values(
            vals,
            self.nulls_are_missing,
            self.zeros_refused,
            row0,
            value,
        )?;
        let n = rb.num_rows();
        let mut rows = Rows::<F>::new(n);
        let mut t = 0;
        // Run by run of entries with the same row id (a row's triplets are contiguous):
        // the id is compared, hashed and cloned once a run, not once an entry. The last
        // run may continue in the next record batch: it stays pending.
        while t < n {
            let (id, run) = match &ids {
                TripletIds::Int(v) => (IdValue::Int(v[t]), run_length(&v[t..])),
                TripletIds::Str(v) => (IdValue::Str(v[t].clone()), run_length(&v[t..])),
            };
            let end = t + run;
            let line = row0 + t as u64;
            let (id, source, first_line) = match self.pending.take() {
                Some(p) if p.id == id => {
                    rows.push_entries(&p.entries);
                    (p.id, p.source, p.line)
                }
                prev => {
                    if let Some(p) = prev {
                        rows.end_pending(p, &mut self.recent, col)?;
                    }
                    if self.recent.contains(&id) {
                        return Err(Error::Column {
                            row: line,
                            column: row.into(),
                            message: format!(
                                "row id {id} comes back after other rows: a row's triplets \
                                 must be contiguous (sort or group the input by '{row}')"
                            ),
                        });
                    }
                    (id, source.clone(), line)
                }
            };
            if !self.push_run_in_range(&mut rows, &plain, vals, t..end) {
                for u in t..end {
                    let entry = self.triplet_entry(col_at(u), vals[u], row0 + u as u64, col)?;
                    rows.push_entry(entry);
                }
            }
            if end == n {
                let entries = rows.take_open();
                self.pending = Some(Pending {
                    id,
                    source,
                    line: first_line,
                    entries,
                });
            } else {
                self.recent.insert(&id);
                rows.end_row(id, source, first_line, col)?;
            }
            t = end;
        }
        Ok(rows
            .finish(self.width)?
            .map(|b| b.screened_as(self.screened())))
    }

    /// What [`check_triplet_values`] passed of every value of the batches made here.
    fn screened(&self) -> Screened {
        Screened {
            nan_allowed: self.nulls_are_missing,
            zero_allowed: self.zeros_refused.is_none(),
        }
    }

    /// Appends the entries `run` of a record batch in one go when their columns are plain
    /// indices (no item catalogue) all in range, growing the width to them unless it is
    /// fixed; `false` when not, and [`Self::triplet_entry`] takes them one by one (and
    /// names the first bad line).
    fn push_run_in_range<F: ArrowFloat>(
        &mut self,
        rows: &mut Rows<F>,
        plain: &[i64],
        vals: &[F],
        run: std::ops::Range<usize>,
    ) -> bool {
        let Some(cols) = plain.get(run.clone()) else {
            return false;
        };
        let (lo, hi) = cols
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &c| (lo.min(c), hi.max(c)));
        let limit = if self.strict_width {
            self.width as i64
        } else {
            u32::MAX as i64
        };
        if cols.is_empty() || lo < 0 || hi >= limit {
            return false;
        }
        self.width = self.width.max(hi as usize + 1);
        rows.csr
            .extend_open_row(cols.iter().map(|&c| c as u32), &vals[run]);
        true
    }

    /// One triplet's entry: `None` for an item a fixed catalogue does not know (dropped
    /// and counted; its row is still a row); a column beyond the width grows it unless
    /// the width is fixed, where it is an error naming the file line.
    #[inline]
    fn triplet_entry<V: crate::float::Float>(
        &mut self,
        c: Option<i64>,
        v: V,
        line: u64,
        col: &str,
    ) -> Result<Option<(u32, f64)>> {
        Ok(match c {
            Some(c) if !self.strict_width && c >= self.width as i64 && c < u32::MAX as i64 => {
                self.width = c as usize + 1;
                Some((c as u32, v.as_f64()))
            }
            Some(c) if c < 0 || c as usize >= self.width => {
                return Err(Error::Column {
                    row: line,
                    column: col.into(),
                    message: format!("column index {c} outside 0..{}", self.width),
                });
            }
            Some(c) => Some((c as u32, v.as_f64())),
            None => None,
        })
    }

    /// Flushes a pending triplet row at the end of the input.
    pub fn finish<F: ArrowFloat>(&mut self) -> Result<Option<Batch<F>>> {
        let col = match &self.resolved {
            Resolved::Triplets { col, .. } => col.clone(),
            _ => return Ok(None),
        };
        let Some(p) = self.pending.take() else {
            return Ok(None);
        };
        let mut rows = Rows::<F>::new(p.entries.len());
        // Past the last record batch, no caller knows the file any more: name it here.
        let file = p.source.to_string();
        rows.end_pending(p, &mut self.recent, &col)
            .map_err(|e| e.in_file(file))?;
        Ok(rows
            .finish(self.width)?
            .map(|b| b.screened_as(self.screened())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::convert::test_triplets;
    use crate::matrix::MatRef;
    use arrow_array::{Float32Array, Int64Array};

    fn records(rows: &[(i64, i64, f32)]) -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "r",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|t| t.0))) as _,
            ),
            (
                "c",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|t| t.1))) as _,
            ),
            (
                "v",
                Arc::new(Float32Array::from_iter_values(rows.iter().map(|t| t.2))) as _,
            ),
        ])
        .unwrap()
    }

    /// Every batch of triplet rows (the pending last row's too) records that its values
    /// were checked here, under the options' reading of NaN and zero, so the pipeline
    /// does not scan them again.
    #[test]
    fn triplet_batches_record_the_check_of_their_values() {
        let src: Arc<str> = "t.parquet".into();
        let first = [(7, 3, 1.0), (7, 1, 0.0), (9, 0, 3.0)];
        let mut conv = test_triplets(8);
        let a = conv.convert::<f32>(&records(&first), &src, 0).unwrap();
        let b = conv.finish::<f32>().unwrap();
        let plain = Screened {
            nan_allowed: false,
            zero_allowed: true,
        };
        for batch in [a, b] {
            assert_eq!(batch.expect("one row each").screened(), Some(plain));
        }
        let schema = records(&first).schema();
        let opts = crate::io::InputOptions::new(64)
            .layout(crate::io::Layout::Triplets {
                row: "r".into(),
                col: "c".into(),
                value: "v".into(),
            })
            .nulls_are_missing(true)
            .zeros_refused(Some(0.0));
        let mut conv = Converter::new(&schema, &opts, Some(8)).unwrap();
        let nonzero = [(7, 3, 1.0), (7, 1, f32::NAN), (9, 0, 3.0)];
        let a = conv.convert::<f32>(&records(&nonzero), &src, 0).unwrap();
        let expected = Screened {
            nan_allowed: true,
            zero_allowed: false,
        };
        assert_eq!(a.expect("row 7").screened(), Some(expected));
        // The zero of the first records is refused under these options.
        let mut conv = Converter::new(&schema, &opts, Some(8)).unwrap();
        assert!(conv.convert::<f32>(&records(&first), &src, 0).is_err());
    }

    /// Rows whose entries are out of column order, one that spans two record batches and
    /// one that ends a file: each comes out once, sorted, with its id and first line.
    #[test]
    fn rows_span_record_batches_and_come_out_sorted() {
        let mut conv = test_triplets(8);
        let src: Arc<str> = "t.parquet".into();
        let first = [(7, 3, 1.0), (7, 1, 2.0), (9, 0, 3.0), (9, 5, 4.0)];
        let second = [(9, 2, 5.0), (4, 6, 6.0), (4, 4, 7.0)];
        let a = conv
            .convert::<f32>(&records(&first), &src, 0)
            .unwrap()
            .unwrap();
        let b = conv
            .convert::<f32>(&records(&second), &src, 4)
            .unwrap()
            .unwrap();
        let c = conv.finish::<f32>().unwrap().unwrap();
        let rows = |batch: &Batch<f32>| -> Vec<(Vec<u32>, Vec<f32>)> {
            let MatRef::Csr(m) = batch.view() else {
                panic!("triplets give CSR rows")
            };
            (0..m.nrows())
                .map(|i| (m.row(i).0.to_vec(), m.row(i).1.to_vec()))
                .collect()
        };
        assert_eq!(rows(&a), vec![(vec![1, 3], vec![2.0, 1.0])]);
        assert_eq!(rows(&b), vec![(vec![0, 2, 5], vec![3.0, 5.0, 4.0])]);
        assert_eq!(rows(&c), vec![(vec![4, 6], vec![7.0, 6.0])]);
        assert_eq!(a.ids(), Some(&RowIds::Int64(vec![7])));
        assert_eq!(b.ids(), Some(&RowIds::Int64(vec![9])));
        assert_eq!(b.origin().locate(0), Some(("t.parquet", 2)));
        assert_eq!(c.origin().locate(0), Some(("t.parquet", 5)));
        assert!(conv.finish::<f32>().unwrap().is_none());
    }

    /// Row ids that come back are caught whether the ids so far rose (bisection), fell or
    /// were strings (hashes), and across the switch from one to the other; ids older than
    /// the window are forgotten in both.
    #[test]
    fn recent_ids_catch_a_returning_id() {
        let int = IdValue::Int;
        let mut r = RecentIds::default();
        for v in [3, 8, 20] {
            assert!(!r.contains(&int(v)));
            r.insert(&int(v));
        }
        assert!(!r.hashed);
        assert!(r.contains(&int(8)) && r.contains(&int(3)) && r.contains(&int(20)));
        assert!(!r.contains(&int(5)) && !r.contains(&int(21)));
        assert!(!r.contains(&IdValue::Str("8".into())));
        // Falling: hashed from here on, the earlier ids kept.
        r.insert(&int(10));
        assert!(r.hashed);
        assert!(r.contains(&int(3)) && r.contains(&int(10)) && r.contains(&int(20)));
        assert!(!r.contains(&int(11)));
        r.insert(&IdValue::Str("a".into()));
        assert!(r.contains(&IdValue::Str("a".into())) && r.contains(&int(8)));

        let mut strings = RecentIds::default();
        strings.insert(&IdValue::Str("x".into()));
        assert!(strings.hashed && strings.contains(&IdValue::Str("x".into())));
        assert!(!strings.contains(&int(1)));

        for mut r in [RecentIds::default(), strings] {
            let first = r.order.len() as i64;
            for v in first..first + RecentIds::WINDOW as i64 + 2 {
                r.insert(&int(v));
            }
            assert!(!r.contains(&int(first)) && !r.contains(&int(first + 1)));
            assert!(r.contains(&int(first + 2)));
            assert_eq!(r.rising.len().max(r.order.len()), RecentIds::WINDOW);
        }
    }

    /// The last row of the input, flushed at its end, names its file when it is bad.
    #[test]
    fn the_last_row_names_its_file() {
        let mut conv = test_triplets(8);
        let rows = [(1, 0, 1.0), (2, 3, 1.0), (2, 3, 2.0)];
        let first = conv.convert::<f32>(&records(&rows), &"t.parquet".into(), 0);
        assert_eq!(first.unwrap().unwrap().rows(), 1);
        let err = conv.finish::<f32>().unwrap_err().to_string();
        assert!(err.contains("t.parquet") && err.contains("row 1"), "{err}");
        assert!(err.contains("appears twice"), "{err}");
    }

    #[test]
    fn bad_values_name_their_line_and_the_value_column() {
        let named = |vals: &[f32], missing: bool| {
            check_triplet_values(vals, missing, None, 10, "rating").map_err(|e| e.to_string())
        };
        assert_eq!(named(&[4.0, 0.0, 5.0], false), Ok(()));
        assert_eq!(
            named(&[4.0, 3.0, -3.0], false),
            Err("row 12, column 'rating': negative value -3: NMF needs non-negative data".into())
        );
        assert_eq!(
            named(&[f32::INFINITY], true),
            Err("row 10, column 'rating': non-finite value inf".into())
        );
        assert_eq!(
            named(&[1.0, f32::NAN], false),
            Err("row 11, column 'rating': non-finite value NaN".into())
        );
        // A NaN is a missing entry where nulls are.
        assert_eq!(named(&[1.0, f32::NAN], true), Ok(()));
        // A zero is data, unless the loss is undefined there (Itakura-Saito).
        let is = |vals: &[f32]| {
            check_triplet_values(vals, false, Some(0.0), 10, "v").map_err(|e| e.to_string())
        };
        assert_eq!(is(&[4.0, 1e-30]), Ok(()));
        assert_eq!(
            is(&[4.0, 2.0, 0.0]),
            Err("row 12, column 'v': zero value, undefined under the beta=0 divergence".into())
        );
    }

    /// Row ids are read from the column's own integers: a null names its line, an unsigned
    /// id past `i64::MAX` is refused, and narrower integers are carried as `Int64` ids.
    #[test]
    fn row_ids_of_every_integer_column() {
        use arrow_array::{ArrayRef, Int32Array, UInt64Array};
        let with_ids = |ids: ArrayRef| {
            let n = ids.len() as i64;
            let c = Int64Array::from_iter_values(0..n);
            let v = Float32Array::from_iter_values((0..n).map(|i| i as f32 + 1.0));
            RecordBatch::try_from_iter([
                ("r", ids),
                ("c", Arc::new(c) as _),
                ("v", Arc::new(v) as _),
            ])
            .unwrap()
        };
        let convert = |rb: RecordBatch| {
            let mut conv = test_triplets(8);
            let batch = conv.convert::<f32>(&rb, &"t".into(), 10)?;
            let last = conv.finish::<f32>()?;
            Ok::<_, Error>((batch, last))
        };
        let nulls = with_ids(Arc::new(Int64Array::from(vec![Some(1), Some(1), None])));
        let err = convert(nulls).unwrap_err().to_string();
        assert!(err.contains("row 12") && err.contains("'r'"), "{err}");
        let huge = with_ids(Arc::new(UInt64Array::from(vec![3, u64::MAX])));
        let err = convert(huge).unwrap_err().to_string();
        assert!(err.contains("row 11") && err.contains("too large"), "{err}");
        let narrow = with_ids(Arc::new(Int32Array::from(vec![7, 7, 9])));
        let (first, last) = convert(narrow).unwrap();
        let rows: Vec<_> = first.into_iter().chain(last).collect();
        let ids: Vec<RowIds> = rows.iter().filter_map(|b| b.ids().cloned()).collect();
        let mut all = ids[0].clone();
        for more in &ids[1..] {
            all.append(more.clone());
        }
        assert_eq!(all, RowIds::Int64(vec![7, 9]));
    }

    /// A column given twice in one row names the row's first line and its id, whether
    /// the row's entries were in order or not.
    #[test]
    fn a_repeated_column_names_the_row() {
        for rows in [
            [
                (1, 0, 1.0),
                (2, 3, 1.0),
                (2, 1, 1.0),
                (2, 3, 2.0),
                (5, 0, 1.0),
            ],
            [
                (1, 0, 1.0),
                (2, 1, 1.0),
                (2, 3, 1.0),
                (2, 3, 2.0),
                (5, 0, 1.0),
            ],
        ] {
            let mut conv = test_triplets(8);
            let err = conv
                .convert::<f32>(&records(&rows), &"t".into(), 10)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("row 11") && err.contains("column 'c'"),
                "{err}"
            );
            assert!(
                err.contains("index 3 appears twice") && err.contains("row id 2"),
                "{err}"
            );
        }
    }
}
