//! Input flags shared by `fit` and `transform`, turned into a batch source.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use streamnmf::audio::WavSource;
use streamnmf::io::{ArrowFloat, FileSource, InputOptions, ItemIds, Layout, StreamSource};
use streamnmf::persist::Spectrogram;
use streamnmf::source::BatchSource;
use streamnmf::Error;

/// Where rows come from and how they are laid out.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Parquet or Arrow IPC files or directories; `-` reads an Arrow IPC stream from stdin.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Feature columns, comma-separated (default: every numeric or boolean column but the
    /// id).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// A column carried through to the codes as the row id.
    #[arg(long)]
    pub id_column: Option<String>,
    /// `dense` (default), `triplets:ROW,COL,VALUE` or `list:COLUMN` (List<Struct{index, value}>).
    #[arg(long, default_value = "dense")]
    pub layout: String,
    /// Number of features of a sparse layout, or of the rows of a dense `List<number>` column
    /// (default: scanned from the files; a list column's first row).
    #[arg(long)]
    pub width: Option<usize>,
    /// Rows per mini-batch [default for a new Frobenius fit of dense files: 6k rows, or
    /// more for 200 dictionary updates a pass when Parquet footers give the row count,
    /// within 64..=256, and at most enough for 2.5 updates a pass per component; 256 for a new fit of dense files under other losses; 1024 for
    /// sparse files, 64 for a stream on stdin; a saved model's own with --model].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Shuffle rows within a pool of this many rows, seeded by --seed (files; 0 = off).
    #[arg(long, default_value_t = 0)]
    pub shuffle_rows: usize,
    /// Triplets: the column column holds item ids (integers or strings), kept by the
    /// model as its catalogue. Fitting adds new items as new columns; codes and
    /// recommendations ignore items the model does not know, and count them.
    #[arg(long)]
    pub item_ids: bool,
    /// WAV input: FFT size (and Hann window length) of the spectrogram frames [default:
    /// the model's, else 1024].
    #[arg(long)]
    pub fft_size: Option<usize>,
    /// WAV input: hop between frames, samples [default: the model's, else FFT size / 4].
    #[arg(long)]
    pub hop: Option<usize>,
    /// WAV input: frames hold |STFT|^POWER, 1 (magnitude) or 2 (power) [default: the
    /// model's, else 1].
    #[arg(long)]
    pub power: Option<u8>,
    /// The spectrogram settings of the model in use, which WAV input follows by default.
    #[arg(skip)]
    pub model_spectrogram: Option<Spectrogram>,
}

/// Whether `path` names a WAV file (by its extension).
pub fn is_wav(path: &std::path::Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
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

    /// The spectrogram settings of WAV input (`model`'s settings filling in the flags not
    /// given), or none for tables.
    pub fn spectrogram(&self, model: Option<&Spectrogram>) -> Result<Option<Spectrogram>> {
        let wavs = self.inputs.iter().filter(|p| is_wav(p)).count();
        if wavs == 0 {
            if self.fft_size.is_some() || self.hop.is_some() || self.power.is_some() {
                bail!("--fft-size, --hop and --power apply to WAV input only");
            }
            return Ok(None);
        }
        if self.inputs.len() > 1 {
            bail!(
                "WAV input is one file at a time (got {} inputs)",
                self.inputs.len()
            );
        }
        let wav = streamnmf::audio::WavReader::open(&self.inputs[0])?;
        let fft_size = self.fft_size.or(model.map(|m| m.fft_size)).unwrap_or(1024);
        let spec = Spectrogram {
            sample_rate: wav.sample_rate(),
            fft_size,
            hop: self.hop.or(model.map(|m| m.hop)).unwrap_or(fft_size / 4),
            power: self.power.or(model.map(|m| m.power)).unwrap_or(1),
        };
        streamnmf::audio::check(&spec).map_err(|e| e.in_file(&self.inputs[0]))?;
        if let Some(m) = model {
            if (m.fft_size, m.hop, m.power) != (spec.fft_size, spec.hop, spec.power) {
                tracing::warn!(
                    "the model was fitted on frames of FFT size {}, hop {}, power {}; these are {}, {}, {}",
                    m.fft_size, m.hop, m.power, spec.fft_size, spec.hop, spec.power
                );
            }
            if m.sample_rate != spec.sample_rate {
                tracing::warn!(
                    "the model was fitted at {} Hz, this file is {} Hz",
                    m.sample_rate,
                    spec.sample_rate
                );
            }
        }
        Ok(Some(spec))
    }

    pub fn options(&self, batch_size: usize, seed: u64) -> Result<InputOptions> {
        let layout = parse_layout(&self.layout)?;
        if self.item_ids && !matches!(layout, Layout::Triplets { .. }) {
            bail!("--item-ids needs --layout triplets:ROW,ITEM,VALUE");
        }
        if self.item_ids && self.width.is_some() {
            bail!("--width and --item-ids exclude each other: the catalogue sets the width");
        }
        let mut o = InputOptions::new(batch_size)
            .layout(layout)
            .shuffle(self.shuffle_rows, seed);
        o.columns = self.columns.clone();
        o.id_column = self.id_column.clone();
        o.width = self.width;
        Ok(o)
    }

    /// The options for reading with a model whose feature names are `names` (from its
    /// file; empty for a new model): with `--item-ids`, its catalogue, which grows when
    /// `grow` (fitting); nulls of dense input read as missing when `missing` (the
    /// observed-only loss).
    pub fn model_options(
        &self,
        opts: InputOptions,
        names: &[String],
        grow: bool,
        missing: bool,
    ) -> Result<InputOptions> {
        let sparse = !matches!(opts.layout, Layout::Dense);
        if sparse && !self.item_ids && !names.is_empty() {
            bail!(
                "the model maps item ids to its {} columns: add --item-ids",
                names.len()
            );
        }
        let opts = opts.nulls_are_missing(missing);
        Ok(match (self.item_ids, grow) {
            (false, _) => opts,
            (true, true) => opts.item_ids(ItemIds::growing(names.to_vec())),
            (true, false) => opts.item_ids(ItemIds::fixed(names.to_vec())),
        })
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
        if let Some(s) = self.spectrogram(self.model_spectrogram.as_ref())? {
            let path = &self.inputs[0];
            let src = WavSource::<F>::open(path, s.fft_size, s.hop, s.power, opts.batch_rows)?;
            return Ok(Box::new(src));
        }
        if self.inputs.iter().any(|p| p.as_os_str() == "-") {
            if self.inputs.len() > 1 {
                bail!("`-` (stdin) cannot be combined with other inputs");
            }
            let stdin = Box::new(std::io::stdin());
            let src = StreamSource::<F>::new(stdin, "<stdin>", opts).map_err(hint)?;
            return Ok(Box::new(src));
        }
        let remote: Vec<&str> = self
            .inputs
            .iter()
            .filter_map(|p| p.to_str())
            .filter(|p| streamnmf::io::is_remote(p))
            .collect();
        if !remote.is_empty() {
            if remote.len() != self.inputs.len() {
                bail!("object-storage URLs cannot be mixed with local files");
            }
            return open_remote::<F>(&remote, opts);
        }
        Ok(Box::new(
            FileSource::<F>::open(&self.inputs, opts).map_err(hint)?,
        ))
    }
}

#[cfg(feature = "object-store")]
fn open_remote<F: ArrowFloat>(
    urls: &[&str],
    opts: InputOptions,
) -> Result<Box<dyn BatchSource<F>>> {
    let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    Ok(Box::new(streamnmf::io::RemoteSource::<F>::open(
        &urls, opts,
    )?))
}

#[cfg(not(feature = "object-store"))]
fn open_remote<F: ArrowFloat>(urls: &[&str], _: InputOptions) -> Result<Box<dyn BatchSource<F>>> {
    bail!(
        "{}: reading object storage needs the `object-store` feature (cargo build --release --features object-store)",
        urls[0]
    )
}
