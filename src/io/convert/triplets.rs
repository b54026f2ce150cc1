//! Triplet layouts (`row, col, value` records, a row's entries contiguous): rows are
//! assembled run by run of equal row ids, across record batches, and handed out as CSR
//! batches whose origin names each row's first line.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;

use super::{column, floats, ids_of, integers, vocabulary, ArrowFloat, Converter, Resolved};
use crate::error::{Error, Result};
use crate::matrix::{Batch, Origin, RowIds};

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

/// The row ids of the last [`RecentIds::WINDOW`] completed triplet rows (as 64-bit
/// hashes: 24 MB at most), to catch a row id that comes back after other rows, a file
/// not grouped by row, which would otherwise give one row of X per run of its triplets.
#[derive(Clone, Debug, Default)]
pub(super) struct RecentIds {
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
        self.set.contains(&Self::key(id))
    }
    fn insert(&mut self, id: &IdValue) {
        let k = Self::key(id);
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

/// How many values at the start of `v` (not empty) equal its first.
fn run_length<T: PartialEq>(v: &[T]) -> usize {
    1 + v[1..].iter().take_while(|x| **x == v[0]).count()
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
        let ids = ids_of(column(rb, row)?, row, row0)?;
        let cols: Vec<Option<i64>> = match &self.items {
            None => integers(column(rb, col)?, col, row0)?
                .into_iter()
                .map(Some)
                .collect(),
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
                out
            }
        };
        let vals = floats::<F>(column(rb, value)?, value, row0)?;
        let vals = vals.as_primitive::<F::Arrow>().values();
        let mut done: Vec<Pending> = Vec::new();
        let n = rb.num_rows();
        let mut t = 0;
        // Run by run of entries with the same row id (a row's triplets are contiguous):
        // the id is compared, hashed and cloned once a run, not once an entry.
        while t < n {
            let (id, run) = match &ids {
                RowIds::Int64(v) => (IdValue::Int(v[t]), run_length(&v[t..])),
                RowIds::Utf8(v) => (IdValue::Str(v[t].clone()), run_length(&v[t..])),
            };
            let end = t + run;
            let line = row0 + t as u64;
            let entry = self.triplet_entry(cols[t], vals[t], line, col)?;
            match &mut self.pending {
                Some(p) if p.id == id => p.entries.extend(entry),
                _ => {
                    if let Some(prev) = self.pending.take() {
                        self.recent.insert(&prev.id);
                        done.push(prev);
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
                    let mut entries = Vec::with_capacity(end - t);
                    entries.extend(entry);
                    self.pending = Some(Pending {
                        id,
                        source: source.clone(),
                        line,
                        entries,
                    });
                }
            }
            for u in t + 1..end {
                let entry = self.triplet_entry(cols[u], vals[u], row0 + u as u64, col)?;
                if let (Some(e), Some(p)) = (entry, self.pending.as_mut()) {
                    p.entries.push(e);
                }
            }
            t = end;
        }
        self.triplet_rows(done, col)
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
        match self.pending.take() {
            Some(r) => self.triplet_rows(vec![r], &col),
            None => Ok(None),
        }
    }

    /// Completed triplet rows as a CSR batch whose origin gives, for each row, the source
    /// and line of its first entry.
    fn triplet_rows<F: ArrowFloat>(
        &mut self,
        rows: Vec<Pending>,
        col: &str,
    ) -> Result<Option<Batch<F>>> {
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut ids = match first.id {
            IdValue::Int(_) => RowIds::Int64(Vec::with_capacity(rows.len())),
            IdValue::Str(_) => RowIds::Utf8(Vec::with_capacity(rows.len())),
        };
        let mut origin = Origin::default();
        let mut entries = Vec::with_capacity(rows.len());
        let mut lines = Vec::with_capacity(rows.len());
        for (i, r) in rows.into_iter().enumerate() {
            lines.push(r.line);
            origin = origin.then(i, r.source, r.line);
            entries.push(
                r.entries
                    .into_iter()
                    .map(|(c, v)| (c as i64, F::from_f64(v)))
                    .collect(),
            );
            match (&mut ids, r.id) {
                (RowIds::Int64(all), IdValue::Int(v)) => all.push(v),
                (RowIds::Utf8(all), IdValue::Str(s)) => all.push(s),
                (all, IdValue::Int(v)) => all.append(RowIds::Int64(vec![v])),
                (all, IdValue::Str(s)) => all.append(RowIds::Utf8(vec![s])),
            }
        }
        let row_id = |i: usize| match &ids {
            RowIds::Int64(v) => v[i].to_string(),
            RowIds::Utf8(v) => format!("'{}'", v[i]),
        };
        let m = self.csr_from_rows(
            entries,
            |i| (lines[i], format!(" of row id {}", row_id(i))),
            col,
        )?;
        Ok(Some(Batch::csr(m).with_ids(ids)?.with_origin(origin)))
    }
}
