//! Input flags shared by `fit` and `transform`, turned into a batch source.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use streamnmf::io::{ArrowFloat, FileSource, InputOptions, Layout, StreamSource};
use streamnmf::source::BatchSource;
use streamnmf::Error;

/// Where rows come from and how they are laid out.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Parquet or Arrow IPC files or directories; `-` reads an Arrow IPC stream from stdin.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Feature columns, comma-separated (default: every numeric column but the id).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// A column carried through to the codes as the row id.
    #[arg(long)]
    pub id_column: Option<String>,
    /// `dense` (default), `triplets:ROW,COL,VALUE` or `list:COLUMN` (List<Struct{index, value}>).
    #[arg(long, default_value = "dense")]
    pub layout: String,
    /// Number of features of a sparse layout (default: scanned from the files).
    #[arg(long)]
    pub width: Option<usize>,
    /// Rows per mini-batch [default: 1024 for files, 64 for a stream on stdin; a saved
    /// model's own with --model].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Shuffle rows within a pool of this many rows, seeded by --seed (files; 0 = off).
    #[arg(long, default_value_t = 0)]
    pub shuffle_rows: usize,
}

pub fn parse_layout(s: &str) -> Result<Layout> {
    if s == "dense" {
        return Ok(Layout::Dense);
    }
    if let Some(rest) = s.strip_prefix("triplets:") {
        let parts: Vec<&str> = rest.split(',').collect();
        if let [row, col, value] = parts[..] {
            return Ok(Layout::Triplets {
                row: row.into(),
                col: col.into(),
                value: value.into(),
            });
        }
    }
    if let Some(col) = s.strip_prefix("list:") {
        if !col.is_empty() {
            return Ok(Layout::SparseList { column: col.into() });
        }
    }
    bail!("unknown layout '{s}': expected dense, triplets:ROW,COL,VALUE or list:COLUMN")
}

impl InputArgs {
    /// Whether the input is standard output's twin: an Arrow IPC stream on stdin.
    pub fn is_stream(&self) -> bool {
        self.inputs.iter().any(|p| p.as_os_str() == "-")
    }

    pub fn options(&self, batch_size: usize, seed: u64) -> Result<InputOptions> {
        let mut o = InputOptions::new(batch_size)
            .layout(parse_layout(&self.layout)?)
            .shuffle(self.shuffle_rows, seed);
        o.columns = self.columns.clone();
        o.id_column = self.id_column.clone();
        o.width = self.width;
        Ok(o)
    }

    /// Opens the inputs: stdin as a stream, everything else as files.
    pub fn open<F: ArrowFloat>(&self, opts: InputOptions) -> Result<Box<dyn BatchSource<F>>> {
        let hint = |e: Error| match e {
            Error::InFile { path, source } if matches!(*source, Error::SparseWidthUnknown) => {
                anyhow::anyhow!(
                    "{}: a sparse layout on a stream needs --width (the number of features)",
                    path.display()
                )
            }
            e => e.into(),
        };
        if self.inputs.iter().any(|p| p.as_os_str() == "-") {
            if self.inputs.len() > 1 {
                bail!("`-` (stdin) cannot be combined with other inputs");
            }
            let stdin = Box::new(std::io::stdin());
            let src = StreamSource::<F>::new(stdin, "<stdin>", opts).map_err(hint)?;
            return Ok(Box::new(src));
        }
        Ok(Box::new(
            FileSource::<F>::open(&self.inputs, opts).map_err(hint)?,
        ))
    }
}
