//! Short-time Fourier transforms, streamed: [`Analysis`] turns samples into centred,
//! Hann-windowed spectra as the samples arrive, and [`Synthesis`] turns (masked) spectra
//! back into samples by weighted overlap-add, emitting each sample as soon as no later
//! frame can touch it. The FFTs are `realfft`'s.
//!
//! Frame `t` covers samples `[t·hop − n/2, t·hop + n/2)` (zeros outside the signal), so a
//! signal of `len` samples has `1 + len / hop` frames, as librosa's `center=True`.
//! Synthesis divides by the summed squared window, so analysis then synthesis gives the
//! signal back (to rounding) whenever `hop ≤ n / 2`.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::error::{Error, Result};
use crate::persist::Spectrogram;

/// One spectrum: `n / 2 + 1` complex bins.
pub type Spectrum = Vec<Complex<f32>>;

fn hann(n: usize) -> Vec<f32> {
    // Periodic Hann: the windows of a hop of n/4 (or n/2) sum to a constant.
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

/// Checks the settings of a transform.
pub fn check(spec: &Spectrogram) -> Result<()> {
    let bad = |m: String| Err(Error::Schema(m));
    if spec.fft_size < 4 || spec.fft_size > 1 << 20 {
        return bad(format!("FFT size {} is not in 4..=1048576", spec.fft_size));
    }
    if spec.hop == 0 || spec.hop > spec.fft_size {
        return bad(format!("hop {} is not in 1..={}", spec.hop, spec.fft_size));
    }
    if !(spec.power == 1 || spec.power == 2) {
        return bad(format!(
            "power {} is neither 1 (magnitude) nor 2",
            spec.power
        ));
    }
    if spec.sample_rate == 0 {
        return bad("sample rate 0".into());
    }
    Ok(())
}

/// Names of the frequency bins of `spec`, in Hz (`"0.0 Hz"`, `"15.6 Hz"`, ...).
///
/// ```
/// use streamnmf::audio::bin_names;
/// use streamnmf::persist::Spectrogram;
/// let spec = Spectrogram { sample_rate: 16000, fft_size: 1024, hop: 256, power: 1 };
/// let names = bin_names(&spec);
/// assert_eq!(names.len(), 513);
/// assert_eq!((names[1].as_str(), names[512].as_str()), ("15.6 Hz", "8000.0 Hz"));
/// ```
pub fn bin_names(spec: &Spectrogram) -> Vec<String> {
    let step = spec.sample_rate as f64 / spec.fft_size as f64;
    let digits = if step >= 0.2 { 1 } else { 4 };
    (0..spec.fft_size / 2 + 1)
        .map(|b| format!("{:.*} Hz", digits, b as f64 * step))
        .collect()
}

/// Samples in, spectra out (see the module docs).
///
/// ```
/// use streamnmf::audio::{Analysis, Synthesis};
/// use streamnmf::persist::Spectrogram;
/// let spec = Spectrogram { sample_rate: 8000, fft_size: 64, hop: 16, power: 1 };
/// let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.3).sin()).collect();
/// let mut frames = Vec::new();
/// let mut a = Analysis::new(&spec).unwrap();
/// a.push(&x[..300], &mut frames);
/// a.push(&x[300..], &mut frames);
/// a.finish(&mut frames);
/// assert_eq!(frames.len(), 1 + 1000 / 16);
/// let mut s = Synthesis::new(&spec).unwrap();
/// let mut y = Vec::new();
/// for f in &frames {
///     s.push(f, &mut y);
/// }
/// s.finish(x.len() as u64, &mut y);
/// assert_eq!(y.len(), x.len());
/// assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-4));
/// ```
pub struct Analysis {
    n: usize,
    hop: usize,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    /// The padded signal from position `offset` on.
    buf: Vec<f32>,
    offset: u64,
    /// The next frame.
    next: u64,
    /// Samples pushed.
    total: u64,
    frame: Vec<f32>,
}

impl Analysis {
    /// An analysis with `spec`'s FFT size and hop.
    pub fn new(spec: &Spectrogram) -> Result<Self> {
        check(spec)?;
        let n = spec.fft_size;
        Ok(Self {
            n,
            hop: spec.hop,
            window: hann(n),
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(n),
            buf: vec![0.0; n / 2],
            offset: 0,
            next: 0,
            total: 0,
            frame: vec![0.0; n],
        })
    }

    /// Bins per spectrum.
    pub fn bins(&self) -> usize {
        self.n / 2 + 1
    }

    /// Adds samples; appends every spectrum they complete to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<Spectrum>) {
        self.buf.extend_from_slice(samples);
        self.total += samples.len() as u64;
        self.emit(false, out);
    }

    /// Ends the signal (zeros after it); appends the last spectra to `out`.
    pub fn finish(&mut self, out: &mut Vec<Spectrum>) {
        self.buf.extend(std::iter::repeat_n(0.0, self.n / 2));
        self.emit(true, out);
    }

    fn emit(&mut self, last: bool, out: &mut Vec<Spectrum>) {
        loop {
            let start = self.next * self.hop as u64;
            let end = start + self.n as u64;
            let available = self.offset + self.buf.len() as u64;
            let wanted = if last {
                start <= self.total
            } else {
                // A frame that ends inside the signal exists whatever comes next.
                end <= self.total + (self.n / 2) as u64
            };
            if !wanted || end > available {
                break;
            }
            let from = (start - self.offset) as usize;
            for ((f, &x), &w) in self
                .frame
                .iter_mut()
                .zip(&self.buf[from..from + self.n])
                .zip(&self.window)
            {
                *f = x * w;
            }
            let mut spectrum = self.fft.make_output_vec();
            self.fft
                .process(&mut self.frame, &mut spectrum)
                .expect("buffers of the planned sizes");
            out.push(spectrum);
            self.next += 1;
        }
        // Drop what no later frame reads.
        let keep_from = self.next * self.hop as u64;
        if keep_from > self.offset + self.n as u64 {
            let drop = (keep_from - self.offset) as usize;
            let drop = drop.min(self.buf.len());
            self.buf.drain(..drop);
            self.offset += drop as u64;
        }
    }
}

/// Spectra in, samples out (see the module docs).
pub struct Synthesis {
    n: usize,
    hop: usize,
    window: Vec<f32>,
    ifft: Arc<dyn ComplexToReal<f32>>,
    /// Overlap-added frames and summed squared windows, from padded position `offset`.
    acc: Vec<f32>,
    wss: Vec<f32>,
    offset: u64,
    /// Frames pushed.
    frames: u64,
    frame: Vec<f32>,
    spectrum: Spectrum,
}

impl Synthesis {
    /// A synthesis with `spec`'s FFT size and hop.
    pub fn new(spec: &Spectrogram) -> Result<Self> {
        check(spec)?;
        let n = spec.fft_size;
        let ifft = RealFftPlanner::<f32>::new().plan_fft_inverse(n);
        Ok(Self {
            n,
            hop: spec.hop,
            window: hann(n),
            frame: ifft.make_output_vec(),
            spectrum: ifft.make_input_vec(),
            ifft,
            acc: Vec::new(),
            wss: Vec::new(),
            offset: 0,
            frames: 0,
        })
    }

    /// Adds the next frame's spectrum; appends the samples no later frame changes.
    pub fn push(&mut self, spectrum: &[Complex<f32>], out: &mut Vec<f32>) {
        self.spectrum.copy_from_slice(&spectrum[..self.n / 2 + 1]);
        // A real signal's DC and Nyquist bins are real.
        self.spectrum[0].im = 0.0;
        let last = self.spectrum.len() - 1;
        if self.n.is_multiple_of(2) {
            self.spectrum[last].im = 0.0;
        }
        self.ifft
            .process(&mut self.spectrum, &mut self.frame)
            .expect("buffers of the planned sizes");
        let start = (self.frames * self.hop as u64 - self.offset) as usize;
        let need = start + self.n;
        if self.acc.len() < need {
            self.acc.resize(need, 0.0);
            self.wss.resize(need, 0.0);
        }
        let scale = 1.0 / self.n as f32;
        for i in 0..self.n {
            let w = self.window[i];
            self.acc[start + i] += self.frame[i] * scale * w;
            self.wss[start + i] += w * w;
        }
        self.frames += 1;
        let done = self.frames * self.hop as u64;
        self.emit(done, u64::MAX, out);
    }

    /// Ends the signal, which had `len` samples: appends the samples not yet emitted.
    pub fn finish(&mut self, len: u64, out: &mut Vec<f32>) {
        let end = self.offset + self.acc.len() as u64;
        self.emit(end, len, out);
    }

    /// Emits padded positions `[offset, upto)` that are signal samples below `len`.
    fn emit(&mut self, upto: u64, len: u64, out: &mut Vec<f32>) {
        let upto = upto.min(self.offset + self.acc.len() as u64);
        if upto <= self.offset {
            return;
        }
        let count = (upto - self.offset) as usize;
        let pad = (self.n / 2) as u64;
        for i in 0..count {
            let p = self.offset + i as u64;
            if p < pad || p - pad >= len {
                continue;
            }
            let w = self.wss[i];
            out.push(if w > 1e-6 { self.acc[i] / w } else { 0.0 });
        }
        self.acc.drain(..count);
        self.wss.drain(..count);
        self.offset = upto;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: usize, hop: usize) -> Spectrogram {
        Spectrogram {
            sample_rate: 16000,
            fft_size: n,
            hop,
            power: 1,
        }
    }

    /// A pure tone at a bin's centre peaks in that bin; analysis then synthesis is exact.
    #[test]
    fn tone_peaks_and_round_trips() {
        let s = spec(256, 64);
        let x: Vec<f32> = (0..4000)
            .map(|i| (2.0 * std::f32::consts::PI * 20.0 * i as f32 / 256.0).sin())
            .collect();
        let mut a = Analysis::new(&s).unwrap();
        let mut frames = Vec::new();
        for chunk in x.chunks(777) {
            a.push(chunk, &mut frames);
        }
        a.finish(&mut frames);
        assert_eq!(frames.len(), 1 + 4000 / 64);
        let mid = &frames[30];
        let peak = (0..mid.len()).max_by(|&i, &j| mid[i].norm().total_cmp(&mid[j].norm()));
        assert_eq!(peak, Some(20));
        let mut y = Vec::new();
        let mut syn = Synthesis::new(&s).unwrap();
        for f in &frames {
            syn.push(f, &mut y);
        }
        syn.finish(x.len() as u64, &mut y);
        assert_eq!(y.len(), x.len());
        let err = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-4, "max error {err}");
    }

    #[test]
    fn settings_are_checked() {
        assert!(check(&spec(2, 1)).is_err());
        assert!(check(&spec(64, 0)).is_err());
        assert!(check(&spec(64, 65)).is_err());
        assert!(check(&Spectrogram {
            power: 3,
            ..spec(64, 16)
        })
        .is_err());
    }
}
