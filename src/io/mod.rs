//! [feature `arrow`] Readers (Parquet, Arrow IPC file and stream, standard input) that turn
//! record batches into mini-batches, and writers for codes and dictionaries.
//!
//! Layouts ([`Layout`]): **dense**, one numeric column per feature (default: every numeric
//! column except the id column) or a single `FixedSizeList<number>` column; **triplets**,
//! one row per non-zero `(row id, column index, value)`, grouped by row id; **sparse
//! list**, one `List<Struct{index, value}>` column holding each row's non-zeros.
//! Numbers of any integer or float type are cast to the model's float type.
//!
//! The readers check structure (columns, types, nulls, indices); values are checked by the
//! pipeline with the model's loss, like every other source's.

mod components;
mod convert;
mod files;
mod footer;
mod guard;
mod ipc;
mod list_rows;
mod pages;
mod prefetch;
mod records;
mod region;
#[cfg(feature = "object-store")]
mod remote;
mod shuffle;
mod stream;
mod vocabulary;
mod whole;
mod writer;

pub use components::read_components;
pub use files::{expand_paths, parquet_rows, parquet_shape, FileSource};
#[cfg(feature = "object-store")]
pub use remote::RemoteSource;
pub use stream::StreamSource;
pub use writer::{
    write_components, CodesWriter, ComponentsLayout, RecommendationsWriter, TableFormat,
};

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow_array::ArrowPrimitiveType;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::float::Float;

/// The element types the readers and writers handle: [`Float`] with its Arrow type, so
/// columns decode straight into `&[Self]`. Implemented for `f32` and `f64`.
pub trait ArrowFloat: Float + arrow_buffer::ArrowNativeType {
    /// The matching Arrow type.
    type Arrow: ArrowPrimitiveType<Native = Self>;
}

impl ArrowFloat for f32 {
    type Arrow = arrow_array::types::Float32Type;
}

impl ArrowFloat for f64 {
    type Arrow = arrow_array::types::Float64Type;
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Error::Decode {
            format: "Parquet",
            message: e.to_string(),
        }
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Error::Decode {
            format: "Arrow",
            message: e.to_string(),
        }
    }
}

/// How rows are laid out in the input's columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// One numeric column per feature, or one `FixedSizeList<number>` column.
    Dense,
    /// One row per non-zero: row id, column index and value columns, grouped by row id
    /// (a row's entries are contiguous within one file).
    Triplets {
        /// The row-id column (integer or string); it is also the output id.
        row: String,
        /// The column-index column (integer, 0-based).
        col: String,
        /// The value column.
        value: String,
    },
    /// One `List<Struct{index, value}>` column with each row's non-zeros.
    SparseList {
        /// The list column.
        column: String,
    },
}

/// What to read from the input and how.
///
/// ```
/// use streamnmf::io::{InputOptions, Layout};
/// let opts = InputOptions::new(1024).columns(vec!["a".into(), "b".into()]).id_column("user");
/// assert_eq!(opts.batch_rows, 1024);
/// assert_eq!(opts.layout, Layout::Dense);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputOptions {
    /// Feature columns by name (dense layout); `None` takes every numeric column.
    pub columns: Option<Vec<String>>,
    /// A column carried through to the outputs as the row id.
    pub id_column: Option<String>,
    /// The layout.
    pub layout: Layout,
    /// Number of features for the sparse layouts (found by a pre-scan of files if `None`).
    pub width: Option<usize>,
    /// Rows per mini-batch handed to the solvers.
    pub batch_rows: usize,
    /// File inputs only: shuffle rows within a pool of this many rows, in a seeded order
    /// that changes every epoch (`(pool rows, seed)`).
    pub shuffle: Option<(usize, u64)>,
    /// Triplets: the column column holds item ids (integers or strings), not indices.
    #[serde(default)]
    pub item_ids: Option<ItemIds>,
    /// Dense layout: a null value is a missing entry (NaN, for observed-only losses)
    /// instead of an error.
    #[serde(default)]
    pub nulls_are_missing: bool,
    /// Triplet layouts: a stored zero is an error naming its line, for a loss undefined at
    /// zero (this β ≤ 0, e.g. Itakura-Saito without a floor). `None`: zeros are data.
    #[serde(default)]
    pub zeros_refused: Option<f64>,
}

/// Item ids of a triplet input and the columns they map to: a catalogue of items in the
/// order they were first seen, which a model keeps as its feature names.
///
/// ```
/// use streamnmf::io::ItemIds;
/// let ids = ItemIds::growing(vec!["tt0111161".into()]);
/// assert!(ids.grow && ids.known.len() == 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemIds {
    /// Items already known (a model's feature names), column j holding `known[j]`.
    pub known: Vec<String>,
    /// New ids get the next columns (fitting); otherwise their entries are dropped and
    /// counted (codes, recommendations).
    pub grow: bool,
}

impl ItemIds {
    /// Known items, new ones appended as they appear.
    pub fn growing(known: Vec<String>) -> Self {
        Self { known, grow: true }
    }
    /// Known items only: entries of other ids are ignored and counted.
    pub fn fixed(known: Vec<String>) -> Self {
        Self { known, grow: false }
    }
}

impl InputOptions {
    /// Dense layout, all numeric columns, no id.
    pub fn new(batch_rows: usize) -> Self {
        Self {
            columns: None,
            id_column: None,
            layout: Layout::Dense,
            width: None,
            batch_rows,
            shuffle: None,
            item_ids: None,
            nulls_are_missing: false,
            zeros_refused: None,
        }
    }
    /// Reads the triplets' column column as item ids (see [`ItemIds`]).
    pub fn item_ids(mut self, ids: ItemIds) -> Self {
        self.item_ids = Some(ids);
        self
    }
    /// Reads nulls of a dense layout as missing entries (NaN).
    pub fn nulls_are_missing(mut self, yes: bool) -> Self {
        self.nulls_are_missing = yes;
        self
    }
    /// Triplets: refuses a stored zero at its own line, for a loss with this β that is
    /// undefined at zero (the solvers' checks would name the row's first line instead).
    ///
    /// ```
    /// use streamnmf::io::InputOptions;
    /// let opts = InputOptions::new(256).zeros_refused(Some(0.0));
    /// assert_eq!(opts.zeros_refused, Some(0.0));
    /// ```
    pub fn zeros_refused(mut self, beta: Option<f64>) -> Self {
        self.zeros_refused = beta;
        self
    }
    /// Selects feature columns by name.
    pub fn columns(mut self, columns: Vec<String>) -> Self {
        self.columns = Some(columns);
        self
    }
    /// Sets the id column.
    pub fn id_column(mut self, name: impl Into<String>) -> Self {
        self.id_column = Some(name.into());
        self
    }
    /// Sets the layout.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }
    /// Sets the width of sparse inputs.
    pub fn width(mut self, width: usize) -> Self {
        self.width = Some(width);
        self
    }
    /// Shuffles rows within a pool of `rows` rows, seeded (file inputs).
    pub fn shuffle(mut self, rows: usize, seed: u64) -> Self {
        self.shuffle = (rows > 0).then_some((rows, seed));
        self
    }
    /// Rows in input order (no shuffle), as outputs that follow the input want.
    pub fn no_shuffle(mut self) -> Self {
        self.shuffle = None;
        self
    }
}

/// A file's container format, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet (`PAR1`).
    Parquet,
    /// Arrow IPC file (`ARROW1`).
    ArrowFile,
    /// Arrow IPC stream (starts with a continuation marker).
    ArrowStream,
}

impl Format {
    /// Detects the format of the file at `path` from its magic bytes.
    ///
    /// ```
    /// # fn main() -> streamnmf::Result<()> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("x.csv");
    /// std::fs::write(&path, "a,b\n1,2\n")?;
    /// let err = streamnmf::io::Format::detect(&path).unwrap_err();
    /// assert!(err.to_string().ends_with("not a Parquet or Arrow IPC file"));
    /// # Ok(()) }
    /// ```
    pub fn detect(path: &Path) -> Result<Format> {
        let mut head = [0u8; 6];
        let mut f = File::open(path).map_err(|e| Error::Io(e).in_file(path))?;
        let n = read_up_to(&mut f, &mut head).map_err(|e| Error::Io(e).in_file(path))?;
        let head = &head[..n];
        if head.starts_with(b"PAR1") {
            Ok(Format::Parquet)
        } else if head.starts_with(b"ARROW1") {
            Ok(Format::ArrowFile)
        } else if head.starts_with(&[0xFF, 0xFF, 0xFF, 0xFF]) {
            Ok(Format::ArrowStream)
        } else {
            Err(Error::Schema("not a Parquet or Arrow IPC file".into()).in_file(path))
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}

/// Whether `input` names an object in storage rather than a local path: `s3://`,
/// `gs://`, `az://` and `http(s)://` URLs, which feature `object-store` reads.
///
/// ```
/// use streamnmf::io::is_remote;
/// assert!(is_remote("s3://bucket/data/"));
/// assert!(!is_remote("data/x.parquet"));
/// ```
pub fn is_remote(input: &str) -> bool {
    [
        "s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "http://", "https://",
    ]
    .iter()
    .any(|p| input.starts_with(p))
}
