//! Record batch → rows: resolves the layout against a schema once, then converts each
//! record batch into a dense or CSR batch with its ids and origin (file and row). Only
//! structure is checked here (columns, types, nulls, indices); values are checked by the
//! pipeline's one validator.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow_cast::cast;
use arrow_schema::{DataType, Schema};
use ndarray::Array2;

use super::list_rows;
use super::vocabulary;
use super::{ArrowFloat, InputOptions, Layout};
use crate::error::{Error, Result};
use crate::matrix::{Batch, CsrBuilder, CsrMatrix, Origin, RowIds};
pub(super) use columns::is_feature_type;
use columns::{
    column, fields_by_name, first_null, floats, floats_or_nan, ids_of, integers, looks_like_an_id,
    null_error, positions, warn_if_row_numbers, warn_left_out,
};
use triplets::{Pending, RecentIds};

mod columns;
mod triplets;

/// The unit tests' triplet converter: columns `r`, `c` (Int64) and `v` (Float32), a
/// matrix `width` wide.
#[cfg(test)]
pub(super) fn test_triplets(width: usize) -> Converter {
    let schema = Schema::new(vec![
        arrow_schema::Field::new("r", DataType::Int64, false),
        arrow_schema::Field::new("c", DataType::Int64, false),
        arrow_schema::Field::new("v", DataType::Float32, false),
    ]);
    let layout = Layout::Triplets {
        row: "r".into(),
        col: "c".into(),
        value: "v".into(),
    };
    Converter::new(&schema, &InputOptions::new(64).layout(layout), Some(width)).unwrap()
}

/// Values a row of a `FixedSizeList` column may hold, at most (2²⁴): the width of a
/// dense row, whose batches hold at least 16 rows of it.
const MAX_LIST_WIDTH: usize = 1 << 24;

#[derive(Clone, Debug)]
enum Resolved {
    /// Shared: a converter clones its layout at every record batch.
    Columns(Arc<[String]>),
    FixedList(String, usize),
    Triplets {
        row: String,
        col: String,
        value: String,
    },
    SparseList(String),
}

/// A layout resolved against a schema: which columns hold what.
#[derive(Clone, Debug)]
pub(crate) struct Converter {
    resolved: Resolved,
    id: Option<String>,
    names: Vec<String>,
    width: usize,
    /// Triplets: the row being assembled across record batches, with the source and line
    /// of its first entry.
    pending: Option<Pending>,
    /// Triplets: the ids of the rows completed last.
    recent: RecentIds,
    /// Dense columns: whether the first record batch was looked at for row numbers.
    looked_for_ids: bool,
    /// Dense columns: where the chosen columns are in the schema of the record batches
    /// converted last. An input's record batches (and the slices of them) share one
    /// schema, so the names are looked up once per input, not once per slice.
    positions: Option<(arrow_schema::SchemaRef, Vec<usize>)>,
    /// Triplets with item ids: the catalogue mapping them to columns.
    items: Option<vocabulary::Shared>,
    /// Dense columns: nulls are missing entries (NaN), not errors.
    nulls_are_missing: bool,
    /// Triplets: the β of a loss undefined at zero, whose stored zeros are refused.
    zeros_refused: Option<f64>,
    /// Sparse layouts: the width was given (`--width`), so a larger index is an error;
    /// otherwise the width grows to the largest index seen.
    strict_width: bool,
}

impl Converter {
    /// Resolves `opts` against `schema`. `width` is required for the sparse layouts.
    pub fn new(schema: &Schema, opts: &InputOptions, width: Option<usize>) -> Result<Self> {
        // Fields by name, once: a lookup per column would cost O(p²) string comparisons
        // (a 3000-column TF-IDF table spent about 40 ms of a 0.13 s fit in them).
        let by_name = fields_by_name(schema);
        let field = |name: &str| {
            by_name
                .get(name)
                .copied()
                .ok_or_else(|| Error::Schema(format!("missing column '{name}'")))
        };
        if let Some(id) = &opts.id_column {
            field(id)?;
        }
        let need_width = || match width {
            // Column indices are stored as u32.
            Some(w) if w > u32::MAX as usize => Err(Error::Schema(format!(
                "{w} features: more than the {} a sparse layout can index",
                u32::MAX
            ))),
            Some(w) => Ok(w),
            // A stream without --width: the width grows with the indices seen.
            None => Ok(0),
        };
        let (resolved, names, width) = match &opts.layout {
            Layout::Dense => {
                let chosen: Vec<String> = match &opts.columns {
                    Some(cols) => cols.clone(),
                    None => schema
                        .fields()
                        .iter()
                        .filter(|f| Some(f.name()) != opts.id_column.as_ref())
                        .filter(|f| {
                            is_feature_type(f.data_type())
                                || matches!(f.data_type(), DataType::FixedSizeList(..))
                        })
                        .map(|f| f.name().clone())
                        .collect(),
                };
                // A lone `List<number>` column (a column of arrays) holds the rows.
                let chosen = match list_rows::list_column(schema, opts) {
                    Some(c) if chosen.is_empty() => vec![c],
                    _ => chosen,
                };
                if chosen.is_empty() {
                    let fields = schema.fields();
                    let mut found: Vec<String> = fields
                        .iter()
                        .take(8)
                        .map(|f| format!("'{}' ({})", f.name(), f.data_type()))
                        .collect();
                    if fields.len() > 8 {
                        found.push(format!("and {} more", fields.len() - 8));
                    }
                    return Err(Error::Schema(format!(
                        "no numeric columns to factorize (found {})",
                        if found.is_empty() {
                            "no columns".to_string()
                        } else {
                            found.join(", ")
                        }
                    )));
                }
                let mut seen = std::collections::HashSet::with_capacity(chosen.len());
                if opts.columns.is_none() {
                    // Taking every numeric column: an id among them would be learned as a
                    // feature, and silently spoil the model.
                    let taken: std::collections::HashSet<&str> =
                        chosen.iter().map(String::as_str).collect();
                    if let Some(f) = schema.fields().iter().find(|f| {
                        taken.contains(f.name().as_str())
                            && looks_like_an_id(f.name(), f.data_type())
                    }) {
                        return Err(Error::Schema(format!(
                            "column '{0}' looks like a row id (an integer column named like \
                             one): carry it as the row id (`--id-column {0}`) or list the \
                             features (`--columns`)",
                            f.name()
                        )));
                    }
                }
                for c in &chosen {
                    if opts.columns.is_some() && c.trim().is_empty() {
                        return Err(Error::Schema(
                            "an empty column name was asked for (a stray comma in \
                             `--columns`?)"
                                .into(),
                        ));
                    }
                    if !seen.insert(c.as_str()) {
                        return Err(Error::Schema(format!(
                            "column '{c}' is asked for twice: feature names must be unique"
                        )));
                    }
                }
                let lists: Vec<_> = chosen
                    .iter()
                    .filter(|c| {
                        by_name.get(c.as_str()).is_some_and(|f| {
                            let t = f.data_type();
                            matches!(t, DataType::FixedSizeList(..)) || list_rows::is_number_list(t)
                        })
                    })
                    .collect();
                if let (1, 1) = (chosen.len(), lists.len()) {
                    let name = chosen[0].clone();
                    let (child, size) = match field(&name)?.data_type() {
                        DataType::FixedSizeList(child, size) => (child, *size),
                        DataType::List(child) | DataType::LargeList(child) => {
                            let Some(w) = width else {
                                return Err(Error::Schema(format!(
                                    "column '{name}' is a list of varying length: give the \
                                     row width with --width"
                                )));
                            };
                            (child, i32::try_from(w).unwrap_or(i32::MAX))
                        }
                        _ => unreachable!("checked above"),
                    };
                    if !child.data_type().is_numeric() {
                        return Err(Error::Schema(format!(
                            "column '{name}' is a list of {}, not numbers",
                            child.data_type()
                        )));
                    }
                    let size = size.max(0) as usize;
                    // A schema's word: a corrupt one claimed 1.8 billion values a row,
                    // and naming them took 44 GB.
                    if size > MAX_LIST_WIDTH {
                        return Err(Error::Schema(format!(
                            "column '{name}' holds {size} values a row, more than the \
                             {MAX_LIST_WIDTH} features a dense row may have"
                        )));
                    }
                    let names = (0..size).map(|j| format!("{name}[{j}]")).collect();
                    (Resolved::FixedList(name, size), names, size)
                } else {
                    for c in &chosen {
                        let t = field(c)?.data_type();
                        if !is_feature_type(t) {
                            return Err(Error::Schema(format!(
                                "column '{c}' has type {t}, not a number"
                            )));
                        }
                    }
                    let p = chosen.len();
                    (Resolved::Columns(chosen.clone().into()), chosen, p)
                }
            }
            Layout::Triplets { row, col, value } => {
                for c in [row, col, value] {
                    field(c)?;
                }
                let resolved = Resolved::Triplets {
                    row: row.clone(),
                    col: col.clone(),
                    value: value.clone(),
                };
                match &opts.item_ids {
                    // Named by the catalogue, which the source reads when asked.
                    Some(ids) => (resolved, Vec::new(), ids.known.len()),
                    // Sparse features are named by their index: no list of p names.
                    None => (resolved, Vec::new(), need_width()?),
                }
            }
            Layout::SparseList { column } => {
                field(column)?;
                (
                    Resolved::SparseList(column.clone()),
                    Vec::new(),
                    need_width()?,
                )
            }
        };
        Ok(Self {
            resolved,
            id: match &opts.layout {
                Layout::Triplets { row, .. } => Some(row.clone()),
                _ => opts.id_column.clone(),
            },
            names,
            width,
            pending: None,
            recent: RecentIds::default(),
            looked_for_ids: false,
            positions: None,
            items: None,
            nulls_are_missing: opts.nulls_are_missing,
            zeros_refused: opts.zeros_refused,
            strict_width: opts.width.is_some(),
        })
    }

    /// Maps the triplets' column column through `items` (see [`ItemIds`]).
    ///
    /// [`ItemIds`]: super::ItemIds
    pub(crate) fn with_items(mut self, items: vocabulary::Shared) -> Result<Self> {
        if !matches!(self.resolved, Resolved::Triplets { .. }) {
            return Err(Error::Schema(
                "item ids need the triplets layout (triplets:ROW,ITEM,VALUE)".into(),
            ));
        }
        self.width = vocabulary::lock(&items).len();
        self.items = Some(items);
        Ok(self)
    }

    /// A converter for `opts` (see [`Converter::new`]), with its item catalogue when the
    /// options ask for one; data columns a default selection leaves out are named in a
    /// warning about `source` (the input's name).
    pub fn from_options(
        schema: &Schema,
        opts: &InputOptions,
        width: Option<usize>,
        source: &str,
    ) -> Result<Self> {
        let c = Self::new(schema, opts, width)?;
        warn_left_out(schema, opts, source);
        match &opts.item_ids {
            Some(ids) => c.with_items(vocabulary::Vocabulary::new(ids)?),
            None => Ok(c),
        }
    }

    /// Feature names, one per column of the data: the dense columns, the item ids of a
    /// catalogue (so far), none for sparse layouts with column indices.
    pub fn names(&self) -> Vec<String> {
        match &self.items {
            Some(items) => vocabulary::lock(items).names().to_vec(),
            None => self.names.clone(),
        }
    }

    /// Decoded values one record of the input holds, at most: one entry's columns in the
    /// triplet layout (a record is one non-zero), a matrix row's width otherwise (a sparse
    /// list row holds up to that many).
    pub(crate) fn values_per_record(&self) -> usize {
        let columns = self.needed_columns().len();
        match self.resolved {
            Resolved::Triplets { .. } => columns,
            _ => self.width().max(columns),
        }
        .max(1)
    }

    /// Whether a record of the input is one stored entry (the triplet layout) rather
    /// than a matrix row.
    pub(crate) fn records_are_entries(&self) -> bool {
        matches!(self.resolved, Resolved::Triplets { .. })
    }

    /// The number of features p (so far, with a growing catalogue).
    pub fn width(&self) -> usize {
        match &self.items {
            Some(items) => vocabulary::lock(items).len(),
            None => self.width,
        }
    }

    /// Entries dropped because a fixed catalogue did not know their item.
    pub fn unknown_entries(&self) -> u64 {
        self.items
            .as_ref()
            .map_or(0, |items| vocabulary::lock(items).unknown())
    }

    /// The columns to read (for projections), in schema order of appearance.
    pub fn needed_columns(&self) -> Vec<String> {
        let mut v = match &self.resolved {
            Resolved::Columns(c) => c.to_vec(),
            Resolved::FixedList(c, _) | Resolved::SparseList(c) => vec![c.clone()],
            Resolved::Triplets { row, col, value } => vec![row.clone(), col.clone(), value.clone()],
        };
        if let Some(id) = &self.id {
            if !v.contains(id) {
                v.push(id.clone());
            }
        }
        v
    }

    /// Checks that another file's schema has the same needed columns with the same types.
    pub fn check_same_schema(&self, first: &Schema, other: &Schema) -> Result<()> {
        let (first, other) = (fields_by_name(first), fields_by_name(other));
        for c in self.needed_columns() {
            let a = first.get(c.as_str()).map(|f| f.data_type().clone());
            match other.get(c.as_str()) {
                None => return Err(Error::Schema(format!("missing column '{c}'"))),
                Some(f) if Some(f.data_type()) != a.as_ref() => {
                    return Err(Error::Schema(format!(
                    "schema changes between files: column '{c}' is {} here, {} in the first file",
                    f.data_type(),
                    a.map(|t| t.to_string()).unwrap_or_default()
                )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Converts a record batch whose first row is row `row0` of `source`. Triplet rows
    /// may stay pending until the next call or [`Converter::finish`].
    #[cfg(test)]
    pub fn convert<F: ArrowFloat>(
        &mut self,
        rb: &RecordBatch,
        source: &Arc<str>,
        row0: u64,
    ) -> Result<Option<Batch<F>>> {
        self.convert_rows(rb, &mut None, 0, rb.num_rows(), source, row0)
    }

    /// Converts rows `offset..offset + len` of a record batch whose first row is row
    /// `row0` of `source`: the batch of that slice of it. Triplet rows may stay pending
    /// until the next call or [`Converter::finish`].
    ///
    /// `ready` keeps the record batch's dense feature columns cast and checked, once for
    /// all its ranges (`None` for a record batch not seen yet): a wide file's record batch
    /// sliced per mini-batch cost an array a column and call (1000 a mini-batch of 120
    /// rows on a 1000-column file), and the slices' type and null checks as many.
    pub(crate) fn convert_rows<F: ArrowFloat>(
        &mut self,
        rb: &RecordBatch,
        ready: &mut Option<Vec<ArrayRef>>,
        offset: usize,
        len: usize,
        source: &Arc<str>,
        row0: u64,
    ) -> Result<Option<Batch<F>>> {
        if len == 0 {
            return Ok(None);
        }
        let Resolved::Columns(cols) = &self.resolved else {
            let slice = if offset == 0 && len == rb.num_rows() {
                rb.clone()
            } else {
                rb.slice(offset, len)
            };
            return self.convert_other(&slice, source, row0 + offset as u64);
        };
        let columns = match ready {
            Some(c) => c,
            None => ready.insert(self.dense_columns::<F>(&cols.clone(), rb, row0)?),
        };
        let vals: Vec<&[F]> = columns
            .iter()
            .map(|a| &a.as_primitive::<F::Arrow>().values()[offset..offset + len])
            .collect();
        let p = vals.len();
        let mut out = Vec::with_capacity(len * p);
        crate::linalg::transpose::columns_to_rows(
            &vals,
            len,
            &mut out.spare_capacity_mut()[..len * p],
        );
        // SAFETY: `columns_to_rows` wrote all len × p values.
        unsafe { out.set_len(len * p) };
        let at = row0 + offset as u64;
        let data = Batch::dense(Array2::from_shape_vec((len, p), out).expect("len x p values"))
            .with_origin(Origin::source(source.clone(), at));
        Ok(Some(match self.ids(rb, offset, len, at)? {
            Some(ids) => data.with_ids(ids)?,
            None => data,
        }))
    }

    /// Feature columns `cols` of `rb` (a dense layout's), cast to `F`: nulls are an
    /// error naming their row, or NaN where they are missing entries.
    fn dense_columns<F: ArrowFloat>(
        &mut self,
        cols: &[String],
        rb: &RecordBatch,
        row0: u64,
    ) -> Result<Vec<ArrayRef>> {
        let schema = rb.schema();
        if !matches!(&self.positions, Some((s, _)) if Arc::ptr_eq(s, &schema)) {
            self.positions = Some((schema.clone(), positions(&schema, cols)?));
        }
        let at = &self.positions.as_ref().expect("looked up above").1;
        let mut columns = Vec::with_capacity(cols.len());
        for (name, &i) in cols.iter().zip(at) {
            let col = rb.column(i);
            if !self.looked_for_ids {
                warn_if_row_numbers(col, name);
            }
            columns.push(if self.nulls_are_missing {
                floats_or_nan::<F>(col, name, row0)?
            } else {
                floats::<F>(col, name, row0)?
            });
        }
        self.looked_for_ids = true;
        Ok(columns)
    }

    /// [`Converter::convert_rows`] for the layouts other than dense columns.
    fn convert_other<F: ArrowFloat>(
        &mut self,
        rb: &RecordBatch,
        source: &Arc<str>,
        row0: u64,
    ) -> Result<Option<Batch<F>>> {
        let n = rb.num_rows();
        let data = match self.resolved.clone() {
            Resolved::Columns(_) => unreachable!("dense columns go through convert_rows"),
            Resolved::FixedList(name, size) => {
                let a = column(rb, &name)?;
                if let Some(i) = first_null(a.as_ref()) {
                    return Err(null_error(row0, i, &name));
                }
                let child = &list_rows::row_values(a, size, &name, row0)?;
                if child.len() != n * size {
                    return Err(Error::Schema(format!(
                        "column '{name}': {} values for {n} rows of {size}",
                        child.len()
                    )));
                }
                if let Some(i) = first_null(child.as_ref()) {
                    return Err(null_error(row0, i / size, &self.names[i % size]));
                }
                let vals = cast(child, &F::Arrow::DATA_TYPE)?;
                let v = vals.as_primitive::<F::Arrow>().values().to_vec();
                Batch::dense(Array2::from_shape_vec((n, size), v).expect("n x size values"))
            }
            Resolved::SparseList(name) => {
                let a = column(rb, &name)?;
                if let Some(i) = first_null(a.as_ref()) {
                    return Err(null_error(row0, i, &name));
                }
                let (offsets, entries): (Vec<usize>, _) = match a.data_type() {
                    DataType::List(_) => {
                        let l = a.as_list::<i32>();
                        (
                            l.offsets().iter().map(|&o| o as usize).collect(),
                            l.values().clone(),
                        )
                    }
                    DataType::LargeList(_) => {
                        let l = a.as_list::<i64>();
                        (
                            l.offsets().iter().map(|&o| o as usize).collect(),
                            l.values().clone(),
                        )
                    }
                    t => {
                        return Err(Error::Schema(format!(
                            "column '{name}' has type {t}, expected List<Struct{{index, value}}>"
                        )))
                    }
                };
                let DataType::Struct(fields) = entries.data_type() else {
                    return Err(Error::Schema(format!(
                        "column '{name}' must hold structs {{index, value}}"
                    )));
                };
                if fields.len() != 2 {
                    return Err(Error::Schema(format!(
                        "column '{name}' must hold structs of two fields {{index, value}}"
                    )));
                }
                let st = entries.as_struct();
                let idx = integers(st.column(0), &name, row0)?;
                let val = floats::<F>(st.column(1), &name, row0)?;
                let val = val.as_primitive::<F::Arrow>().values();
                let mut rows = Vec::with_capacity(n);
                for i in 0..n {
                    let (s, e) = (offsets[i], offsets[i + 1]);
                    let entries: Vec<(i64, F)> = (s..e).map(|t| (idx[t], val[t])).collect();
                    rows.push(entries);
                }
                Batch::csr(self.csr_from_rows(rows, |i| (row0 + i as u64, String::new()), &name)?)
            }
            Resolved::Triplets { row, col, value } => {
                return self.convert_triplets(rb, source, row0, &row, &col, &value);
            }
        };
        let data = data.with_origin(Origin::source(source.clone(), row0));
        Ok(Some(match self.ids(rb, 0, n, row0)? {
            Some(ids) => data.with_ids(ids)?,
            None => data,
        }))
    }

    /// Rows of (index, value) entries as CSR; `at(i)` gives row `i`'s position in the
    /// file and how to name it, for an index out of range or repeated.
    fn csr_from_rows<F: ArrowFloat>(
        &mut self,
        rows: Vec<Vec<(i64, F)>>,
        at: impl Fn(usize) -> (u64, String),
        name: &str,
    ) -> Result<CsrMatrix<F>> {
        if !self.strict_width {
            let top = rows.iter().flatten().map(|e| e.0).max().unwrap_or(-1);
            if top >= self.width as i64 && top < u32::MAX as i64 {
                self.width = top as usize + 1;
            }
        }
        let mut out = CsrBuilder::new(self.width);
        let (mut cols, mut vals) = (Vec::new(), Vec::new());
        for (i, mut r) in rows.into_iter().enumerate() {
            r.sort_by_key(|e| e.0);
            for (t, &(c, _)) in r.iter().enumerate() {
                if c < 0 || c as usize >= self.width {
                    let (row, what) = at(i);
                    return Err(Error::Column {
                        row,
                        column: name.into(),
                        message: format!("column index {c} outside 0..{}{what}", self.width),
                    });
                }
                if t > 0 && r[t - 1].0 == c {
                    let (row, what) = at(i);
                    return Err(Error::Column {
                        row,
                        column: name.into(),
                        message: format!("column index {c} appears twice in one row{what}"),
                    });
                }
            }
            cols.clear();
            vals.clear();
            cols.extend(r.iter().map(|e| e.0 as u32));
            vals.extend(r.iter().map(|e| e.1));
            out.push_row(&cols, &vals);
        }
        Ok(out.finish())
    }

    /// The ids of rows `offset..offset + len` of `rb`, the first of them row `row0`.
    fn ids(
        &self,
        rb: &RecordBatch,
        offset: usize,
        len: usize,
        row0: u64,
    ) -> Result<Option<RowIds>> {
        let Some(id) = &self.id else {
            return Ok(None);
        };
        let a = column(rb, id)?;
        let a = if offset == 0 && len == a.len() {
            a.clone()
        } else {
            a.slice(offset, len)
        };
        Ok(Some(ids_of(&a, id, row0)?))
    }
}
