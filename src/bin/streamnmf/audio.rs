//! `streamnmf stft` (a WAV file's spectrogram as a table) and `streamnmf separate` (a
//! mixture split into sources by a model whose atoms are labelled by source), both
//! streamed a batch of frames at a time.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use ndarray::{Array2, Zip};
use streamnmf::audio::{
    bin_names, finish_wav, magnitudes, wav_writer, write_samples, Separator, Sources,
    SpectraReader, Synthesis,
};
use streamnmf::io::{ArrowFloat, CodesWriter, TableFormat};
use streamnmf::persist::{self, AtomicFile, Spectrogram};

use crate::input::InputArgs;
use crate::output::{Finished, Plan};

/// Options of `stft`.
#[derive(Args, Debug)]
pub struct StftArgs {
    /// The WAV file (any channels, mixed to mono).
    pub wav: PathBuf,
    /// The spectrogram: Parquet, or an Arrow IPC stream for `-` and `.arrows` names. One
    /// row per frame, one column per frequency bin, named in Hz.
    #[arg(long)]
    pub out: PathBuf,
    /// FFT size (and Hann window length).
    #[arg(long, default_value_t = 1024)]
    pub fft_size: usize,
    /// Hop between frames, samples [default: FFT size / 4].
    #[arg(long)]
    pub hop: Option<usize>,
    /// |STFT|^POWER: 1 (magnitude) or 2 (power).
    #[arg(long, default_value_t = 1)]
    pub power: u8,
}

/// Ends the command when SIGINT or SIGTERM asked (outputs not yet committed are
/// temporary files, removed as they drop).
fn stopped() -> Result<()> {
    if crate::stop_flag().load(std::sync::atomic::Ordering::SeqCst) {
        return Err(streamnmf::Error::Interrupted { checkpoint: None }.into());
    }
    Ok(())
}

/// The schema metadata key under which `stft` writes its settings (JSON).
pub const SPECTROGRAM_KEY: &str = "streamnmf.spectrogram";

/// Frames per step of `stft` and `separate`.
const FRAMES: usize = 256;

pub fn stft(a: StftArgs) -> Result<()> {
    let wav = streamnmf::audio::WavReader::open(&a.wav)?;
    let spec = Spectrogram {
        sample_rate: wav.sample_rate(),
        fft_size: a.fft_size,
        hop: a.hop.unwrap_or(a.fft_size / 4),
        power: a.power,
    };
    streamnmf::audio::check(&spec).map_err(|e| e.in_file(&a.wav))?;
    let plan = Plan::new(std::slice::from_ref(&a.wav), &[("--out", Some(&a.out))])?;
    let sink = plan.open("--out")?;
    let name = sink.name().to_string();
    // The settings travel with the table, so a model fitted from it knows them.
    let metadata = [(SPECTROGRAM_KEY.to_string(), serde_json::to_string(&spec)?)].into();
    let mut w = CodesWriter::<f32, _>::with_metadata(
        sink,
        plan.format("--out")?,
        &bin_names(&spec),
        None,
        metadata,
    )?;
    let mut reader = SpectraReader::open(&a.wav, &spec)?;
    let mut frames = 0u64;
    loop {
        stopped()?;
        let s = reader.next_spectra(FRAMES)?;
        if s.is_empty() {
            break;
        }
        w.write(magnitudes::<f32>(&s, spec.power).view(), None)
            .with_context(|| name.clone())?;
        frames += s.len() as u64;
    }
    let (sink, _) = w.finish().with_context(|| name.clone())?;
    let mut done = Finished::default();
    done.push(sink)?;
    done.commit()?;
    note!(
        "{frames} frames of {} bins ({} Hz, FFT {}, hop {}, power {}) written to {}",
        spec.fft_size / 2 + 1,
        spec.sample_rate,
        spec.fft_size,
        spec.hop,
        spec.power,
        a.out.display()
    );
    Ok(())
}

/// Options of `separate`.
#[derive(Args, Debug)]
pub struct SeparateArgs {
    /// A model whose atoms carry source labels (`compose`, or `fit --components ...
    /// --label ...`).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Directory for the sources: SOURCE.wav for WAV input (the mixture's phase), and
    /// SOURCE.parquet spectrograms for table input or with --spectrograms.
    #[arg(long)]
    pub out_dir: PathBuf,
    /// Masks V_s^Q / Σ V^Q: 1 (the model's own ratio) or 2 (power Wiener filter on
    /// magnitude models).
    #[arg(long, default_value_t = 1.0)]
    pub mask_power: f64,
    /// With WAV input, also write each source's masked spectrogram.
    #[arg(long)]
    pub spectrograms: bool,
    /// Threads computing the codes (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn separate(a: SeparateArgs) -> Result<()> {
    let (bytes, f64s) = crate::read_model(&a.model)?;
    if f64s {
        separate_as::<f64>(a, &bytes)
    } else {
        separate_as::<f32>(a, &bytes)
    }
}

fn separate_as<F: ArrowFloat>(mut a: SeparateArgs, bytes: &[u8]) -> Result<()> {
    let (mut model, meta) = persist::decode::<F>(bytes).map_err(|e| e.in_file(&a.model))?;
    model.set_threads(a.threads.unwrap_or_else(crate::fit::cores));
    let rank = model.params().rank();
    let sources = Sources::from_labels(&meta.atom_labels, rank).map_err(|e| e.in_file(&a.model))?;
    if !(a.mask_power.is_finite() && a.mask_power > 0.0) {
        bail!(
            "--mask-power must be a positive number, got {}",
            a.mask_power
        );
    }
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("{}: cannot create the directory", a.out_dir.display()))?;
    // Temporary outputs a killed run left behind.
    persist::clean_stale_temps(&a.out_dir);
    a.input.model_spectrogram = meta.spectrogram;
    let wav_spec = a.input.spectrogram(meta.spectrogram.as_ref())?;
    let names = match &wav_spec {
        Some(s) => bin_names(s),
        None => meta.feature_names.clone(),
    };
    let path = |label: &str, ext: &str| -> PathBuf {
        let safe: String = label
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        a.out_dir.join(format!("{safe}.{ext}"))
    };
    // Every output is a temporary file until all sources are complete.
    let mut wav_files = Vec::new();
    let mut tables = Vec::new();
    for label in &sources.labels {
        if wav_spec.is_some() {
            wav_files.push(AtomicFile::create(&path(label, "wav"))?);
        }
        if wav_spec.is_none() || a.spectrograms {
            let dest = path(label, "parquet");
            let f = AtomicFile::create(&dest)?;
            let w = CodesWriter::<F, _>::named(f, TableFormat::Parquet, &names, None)?;
            tables.push((dest.display().to_string(), w));
        }
    }
    let sep = Separator::new(&model, sources.clone(), a.mask_power);
    let mut frames = 0u64;
    match &wav_spec {
        Some(spec) => {
            let wav = &a.input.inputs[0];
            let mut reader = SpectraReader::open(wav, spec)?;
            let total = reader.samples();
            let names: Vec<PathBuf> = wav_files.iter().map(|f| f.dest().to_path_buf()).collect();
            let named = |i: usize| {
                let p = names[i].display().to_string();
                move || p
            };
            let mut outs = wav_files
                .iter_mut()
                .enumerate()
                .map(|(i, f)| {
                    let w = wav_writer(f, spec.sample_rate).with_context(named(i))?;
                    Ok((w, Synthesis::new(spec)?))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut samples = Vec::new();
            loop {
                stopped()?;
                let spectra = reader.next_spectra(FRAMES)?;
                if spectra.is_empty() {
                    break;
                }
                let x = magnitudes::<F>(&spectra, spec.power);
                let masks = sep
                    .masks(x.view())
                    .with_context(|| format!("{}: frames from {frames}", wav.display()))?;
                for (i, m) in masks.iter().enumerate() {
                    let (w, syn) = &mut outs[i];
                    samples.clear();
                    for (t, s) in spectra.iter().enumerate() {
                        let row: Vec<_> = s
                            .iter()
                            .zip(m.row(t))
                            .map(|(c, &g)| c * g.as_f64() as f32)
                            .collect();
                        syn.push(&row, &mut samples);
                    }
                    write_samples(w, &samples).with_context(named(i))?;
                    if let Some((dest, t)) = tables.get_mut(i) {
                        t.write(masked(&x, m).view(), None)
                            .with_context(|| dest.clone())?;
                    }
                }
                frames += spectra.len() as u64;
            }
            for (i, (mut w, mut syn)) in outs.into_iter().enumerate() {
                samples.clear();
                syn.finish(total, &mut samples);
                write_samples(&mut w, &samples).with_context(named(i))?;
                finish_wav(w).with_context(named(i))?;
            }
        }
        None => {
            let opts = a.input.options(FRAMES, 0)?.no_shuffle();
            let mut opts = a
                .input
                .model_options(opts, &meta.feature_names, false, false)?;
            if opts.columns.is_none() && !meta.feature_names.is_empty() {
                opts.columns = Some(meta.feature_names.clone());
            }
            let mut source = a.input.open::<F>(opts)?;
            let name = source.name().unwrap_or_default();
            for batch in source.epoch(0)? {
                stopped()?;
                let batch = batch?;
                let x = batch.view().to_dense();
                let masks = sep
                    .masks(x.view())
                    .with_context(|| format!("{name}: rows from {}", batch.first_row()))?;
                for ((dest, t), m) in tables.iter_mut().zip(&masks) {
                    t.write(masked(&x, m).view(), None)
                        .with_context(|| dest.clone())?;
                }
                frames += x.nrows() as u64;
            }
        }
    }
    let mut files = wav_files;
    for (dest, t) in tables {
        let (f, _) = t.finish().with_context(|| dest.clone())?;
        files.push(f);
    }
    streamnmf::persist::commit_together(files)?;
    note!(
        "separated {frames} frames into {} sources ({}) in {}",
        sources.labels.len(),
        sources.labels.join(", "),
        a.out_dir.display()
    );
    Ok(())
}

fn masked<F: ArrowFloat>(x: &Array2<F>, m: &Array2<F>) -> Array2<F> {
    let mut y = x.clone();
    Zip::from(&mut y).and(m).for_each(|v, &g| *v *= g);
    y
}
