//! WAV files in and out (`hound`, and 64-bit float samples by [`Float64Wav`]): samples
//! read a block at a time and mixed to mono, a
//! [`WavSource`] that serves a file's spectrogram frames to the pipeline in batches
//! without holding the file, and a writer of mono 32-bit float WAVs.

use std::fs::File;
use std::io::{BufReader, Seek, Write};
use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::stft::{bin_names, Analysis, Spectrum};
use super::wav64::Float64Wav;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::matrix::Batch;
use crate::persist::Spectrogram;
use crate::source::{BatchIter, BatchSource};

fn wav_error(e: hound::Error) -> Error {
    use std::io::ErrorKind;
    match e {
        hound::Error::IoError(e)
            if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) =>
        {
            Error::Io(e)
        }
        e => Error::Decode {
            format: "WAV",
            message: e.to_string(),
        },
    }
}

/// Writing: any I/O failure (a full disk) is an I/O error, not a malformed file.
fn write_error(e: hound::Error) -> Error {
    match e {
        hound::Error::IoError(e) => Error::Io(e),
        e => wav_error(e),
    }
}

/// A WAV file's samples, mixed to mono, in [-1, 1] for integer formats: through `hound`
/// (PCM of 8 to 32 bits, 32-bit float), or a reader of its own for 64-bit float samples.
///
/// ```no_run
/// use streamnmf::audio::WavReader;
/// let mut wav = WavReader::open(std::path::Path::new("speech.wav"))?;
/// let mut samples = Vec::new();
/// while wav.read(4096, &mut samples)? > 0 {
///     // …
/// }
/// # Ok::<(), streamnmf::Error>(())
/// ```
pub struct WavReader {
    backend: Backend,
}

enum Backend {
    Hound(HoundWav),
    Float64(Float64Wav),
}

impl WavReader {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let backend = match Float64Wav::open(path).map_err(|e| e.in_file(path))? {
            Some(wav) => Backend::Float64(wav),
            None => Backend::Hound(HoundWav::open(path)?),
        };
        Ok(Self { backend })
    }

    /// Samples per second.
    pub fn sample_rate(&self) -> u32 {
        match &self.backend {
            Backend::Hound(w) => w.inner.spec().sample_rate,
            Backend::Float64(w) => w.sample_rate(),
        }
    }

    /// Mono samples in the file.
    pub fn len(&self) -> u64 {
        match &self.backend {
            Backend::Hound(w) => w.inner.duration() as u64,
            Backend::Float64(w) => w.len(),
        }
    }

    /// Whether the file holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `max` mono samples into `out` (cleared first); 0 at the end.
    pub fn read(&mut self, max: usize, out: &mut Vec<f32>) -> Result<usize> {
        match &mut self.backend {
            Backend::Hound(w) => w.read(max, out),
            Backend::Float64(w) => w.read(max, out),
        }
    }
}

/// The formats `hound` reads.
struct HoundWav {
    inner: hound::WavReader<BufReader<File>>,
    channels: usize,
    scale: f32,
    float: bool,
}

impl HoundWav {
    fn open(path: &Path) -> Result<Self> {
        let inner = hound::WavReader::open(path).map_err(|e| wav_error(e).in_file(path))?;
        let spec = inner.spec();
        if spec.channels == 0 {
            return Err(Error::Decode {
                format: "WAV",
                message: "no channels".into(),
            }
            .in_file(path));
        }
        Ok(Self {
            channels: spec.channels as usize,
            scale: match spec.sample_format {
                hound::SampleFormat::Float => 1.0,
                hound::SampleFormat::Int => {
                    1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32
                }
            },
            float: spec.sample_format == hound::SampleFormat::Float,
            inner,
        })
    }

    fn read(&mut self, max: usize, out: &mut Vec<f32>) -> Result<usize> {
        out.clear();
        let c = self.channels;
        let mut frame = 0.0f32;
        let mut got = 0usize;
        let want = max * c;
        if self.float {
            for s in self.inner.samples::<f32>().take(want) {
                frame += s.map_err(wav_error)?;
                got += 1;
                if got.is_multiple_of(c) {
                    out.push(frame / c as f32);
                    frame = 0.0;
                }
            }
        } else {
            for s in self.inner.samples::<i32>().take(want) {
                frame += s.map_err(wav_error)? as f32 * self.scale;
                got += 1;
                if got.is_multiple_of(c) {
                    out.push(frame / c as f32);
                    frame = 0.0;
                }
            }
        }
        Ok(out.len())
    }
}

/// Samples read per step.
const READ_BLOCK: usize = 1 << 14;

/// A WAV file's complex spectra, a block of samples at a time.
pub struct SpectraReader {
    wav: WavReader,
    analysis: Analysis,
    samples: Vec<f32>,
    pending: std::collections::VecDeque<Spectrum>,
    ended: bool,
    path: PathBuf,
}

impl SpectraReader {
    /// Opens `path` for `spec`'s transform (its sample rate is the file's).
    pub fn open(path: &Path, spec: &Spectrogram) -> Result<Self> {
        let wav = WavReader::open(path)?;
        Ok(Self {
            analysis: Analysis::new(spec).map_err(|e| e.in_file(path))?,
            wav,
            samples: Vec::new(),
            pending: Default::default(),
            ended: false,
            path: path.to_path_buf(),
        })
    }

    /// The file's sample count (mono).
    pub fn samples(&self) -> u64 {
        self.wav.len()
    }

    /// Up to `max` next spectra (fewer only at the end; none after it).
    pub fn next_spectra(&mut self, max: usize) -> Result<Vec<Spectrum>> {
        let mut fresh = Vec::new();
        while self.pending.len() < max && !self.ended {
            let n = self
                .wav
                .read(READ_BLOCK, &mut self.samples)
                .map_err(|e| e.in_file(&self.path))?;
            if n == 0 {
                self.analysis.finish(&mut fresh);
                self.ended = true;
            } else {
                self.analysis.push(&self.samples, &mut fresh);
            }
            self.pending.extend(fresh.drain(..));
        }
        let take = max.min(self.pending.len());
        Ok(self.pending.drain(..take).collect())
    }
}

/// `|X|^power` of each spectrum, as rows.
pub fn magnitudes<F: Float>(spectra: &[Spectrum], power: u8) -> Array2<F> {
    let bins = spectra.first().map_or(0, |s| s.len());
    Array2::from_shape_fn((spectra.len(), bins), |(t, b)| {
        let m = spectra[t][b].norm() as f64;
        F::from_f64(if power == 2 { m * m } else { m })
    })
}

/// The spectrogram frames of a WAV file as a batch source: the file is read again each
/// epoch, a block of samples at a time, so memory stays at a batch of frames.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use streamnmf::audio::{write_wav, WavSource};
/// use streamnmf::source::BatchSource;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("tone.wav");
/// let x: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.2).sin() * 0.5).collect();
/// write_wav(std::fs::File::create(&path)?, 8000, &x)?;
/// let mut src = WavSource::<f32>::open(&path, 256, 64, 1, 32)?;
/// assert_eq!(src.width(), 129);
/// let rows: usize = src.epoch(0)?.map(|b| b.unwrap().rows()).sum();
/// assert_eq!(rows, 1 + 8000 / 64);
/// # Ok(()) }
/// ```
pub struct WavSource<F> {
    path: PathBuf,
    spec: Spectrogram,
    batch_rows: usize,
    _f: std::marker::PhantomData<F>,
}

impl<F: Float> WavSource<F> {
    /// Frames of `fft_size` samples every `hop`, `|X|^power`, `batch_rows` per batch.
    pub fn open(
        path: &Path,
        fft_size: usize,
        hop: usize,
        power: u8,
        batch_rows: usize,
    ) -> Result<Self> {
        let wav = WavReader::open(path)?;
        if wav.is_empty() {
            // Its one frame of padding would be fitted as if it were data.
            let e = Error::Decode {
                format: "WAV",
                message: "the file holds no samples".into(),
            };
            return Err(e.in_file(path));
        }
        let spec = Spectrogram {
            sample_rate: wav.sample_rate(),
            fft_size,
            hop,
            power,
        };
        super::stft::check(&spec).map_err(|e| e.in_file(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            spec,
            batch_rows: batch_rows.max(1),
            _f: std::marker::PhantomData,
        })
    }

    /// The transform's settings (with the file's sample rate).
    pub fn spectrogram(&self) -> Spectrogram {
        self.spec
    }
}

impl<F: Float> BatchSource<F> for WavSource<F> {
    fn width(&self) -> usize {
        self.spec.fft_size / 2 + 1
    }
    fn rewindable(&self) -> bool {
        true
    }
    fn name(&self) -> Option<String> {
        Some(self.path.display().to_string())
    }
    fn feature_names(&self) -> Vec<String> {
        bin_names(&self.spec)
    }
    fn epoch(&mut self, _epoch: usize) -> Result<BatchIter<F>> {
        let mut reader = SpectraReader::open(&self.path, &self.spec)?;
        let (rows, power) = (self.batch_rows, self.spec.power);
        let name: std::sync::Arc<str> = self.path.display().to_string().into();
        let mut first = 0u64;
        Ok(Box::new(std::iter::from_fn(move || {
            match reader.next_spectra(rows) {
                Err(e) => Some(Err(e)),
                Ok(s) if s.is_empty() => None,
                Ok(s) => {
                    let x = crate::matrix::Matrix::Dense(magnitudes::<F>(&s, power));
                    let batch = Batch::new(x)
                        .with_first_row(first)
                        .with_origin(crate::matrix::Origin::source(name.clone(), first));
                    first += s.len() as u64;
                    Some(Ok(batch))
                }
            }
        })))
    }
}

/// Starts a mono 32-bit float WAV at `sample_rate` on `out`.
pub fn wav_writer<W: Write + Seek>(out: W, sample_rate: u32) -> Result<hound::WavWriter<W>> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    hound::WavWriter::new(out, spec).map_err(write_error)
}

/// Appends samples to a WAV being written.
pub fn write_samples<W: Write + Seek>(w: &mut hound::WavWriter<W>, samples: &[f32]) -> Result<()> {
    for &s in samples {
        w.write_sample(s).map_err(write_error)?;
    }
    Ok(())
}

/// Ends a WAV (patches its header).
pub fn finish_wav<W: Write + Seek>(w: hound::WavWriter<W>) -> Result<()> {
    w.finalize().map_err(write_error)
}

/// Writes `samples` as a whole mono 32-bit float WAV.
pub fn write_wav<W: Write + Seek>(out: W, sample_rate: u32, samples: &[f32]) -> Result<()> {
    let mut w = wav_writer(out, sample_rate)?;
    write_samples(&mut w, samples)?;
    finish_wav(w)
}
