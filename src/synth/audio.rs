//! Synthetic audio for separation tests and benchmarks: a speech-like source (voiced
//! syllables: harmonic series on a gliding pitch, shaped by two moving formants, with
//! pauses) and an interference source (pink noise under a sustained chord), plus the
//! signal-to-distortion ratio that judges a separation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Voiced syllables, `seconds` long at `sample_rate`, seeded; peak about 0.5.
///
/// ```
/// use streamnmf::synth::speech_like;
/// let x = speech_like(1.0, 16000, 3);
/// assert_eq!(x.len(), 16000);
/// assert!(x.iter().all(|v| v.abs() < 1.0));
/// ```
pub fn speech_like(seconds: f64, sample_rate: u32, seed: u64) -> Vec<f32> {
    let sr = sample_rate as f64;
    let n = (seconds * sr) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let floor = Normal::new(0.0, 1e-4).expect("valid");
    let mut out = vec![0.0f32; n];
    let mut t0 = 0usize;
    while t0 < n {
        let len = (rng.random_range(0.12..0.35) * sr) as usize;
        let gap = (rng.random_range(0.03..0.15) * sr) as usize;
        let f0_start: f64 = rng.random_range(100.0..240.0);
        let f0_end = f0_start * rng.random_range(0.8..1.25);
        let (fa, fb) = (
            rng.random_range(300.0..900.0),
            rng.random_range(900.0..2500.0),
        );
        let (fa_end, fb_end) = (
            fa * rng.random_range(0.8..1.25),
            fb * rng.random_range(0.8..1.25),
        );
        let gain: f64 = rng.random_range(0.3..1.0);
        let mut phase = 0.0f64;
        for i in 0..len.min(n - t0) {
            let u = i as f64 / len as f64;
            let f0 = f0_start + (f0_end - f0_start) * u;
            phase += 2.0 * std::f64::consts::PI * f0 / sr;
            let (f1, f2) = (fa + (fa_end - fa) * u, fb + (fb_end - fb) * u);
            let env = (std::f64::consts::PI * u).sin().powf(0.6);
            let mut v = 0.0;
            let mut h = 1.0;
            while h * f0 < sr / 2.0 - 200.0 && h <= 40.0 {
                let f = h * f0;
                let formant =
                    (-((f - f1) / 150.0).powi(2)).exp() + 0.6 * (-((f - f2) / 250.0).powi(2)).exp();
                v += (0.15 / h + formant) * (h * phase).sin();
                h += 1.0;
            }
            out[t0 + i] = (0.12 * gain * env * v) as f32;
        }
        t0 += len + gap;
    }
    for v in out.iter_mut() {
        *v += floor.sample(&mut rng) as f32;
    }
    out
}

/// Pink noise (white noise through Kellet's filter) under a sustained three-note chord
/// whose notes change every two seconds, `seconds` long, seeded; peak about 0.5.
///
/// ```
/// use streamnmf::synth::noise_like;
/// let x = noise_like(0.5, 16000, 1);
/// assert_eq!(x.len(), 8000);
/// ```
pub fn noise_like(seconds: f64, sample_rate: u32, seed: u64) -> Vec<f32> {
    let sr = sample_rate as f64;
    let n = (seconds * sr) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let white = Normal::new(0.0, 1.0).expect("valid");
    let mut b = [0.0f64; 7];
    let chords: [[f64; 3]; 4] = [
        [261.6, 329.6, 392.0],
        [220.0, 277.2, 329.6],
        [293.7, 370.0, 440.0],
        [246.9, 311.1, 370.0],
    ];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let w = white.sample(&mut rng);
        b[0] = 0.99886 * b[0] + w * 0.0555179;
        b[1] = 0.99332 * b[1] + w * 0.0750759;
        b[2] = 0.96900 * b[2] + w * 0.1538520;
        b[3] = 0.86650 * b[3] + w * 0.3104856;
        b[4] = 0.55000 * b[4] + w * 0.5329522;
        b[5] = -0.7616 * b[5] - w * 0.0168980;
        let pink = b[..6].iter().sum::<f64>() + b[6] + w * 0.5362;
        b[6] = w * 0.115926;
        let t = i as f64 / sr;
        let chord = chords[((t / 2.0) as usize + seed as usize) % chords.len()];
        let tone: f64 = chord
            .iter()
            .map(|&f| {
                (1..=3)
                    .map(|h| (2.0 * std::f64::consts::PI * f * h as f64 * t).sin() / h as f64)
                    .sum::<f64>()
            })
            .sum();
        out.push((0.03 * pink + 0.05 * tone) as f32);
    }
    out
}

/// Scales `b` so that it has `a`'s energy (a 0 dB mixture of the two).
pub fn match_energy(a: &[f32], b: &mut [f32]) {
    let e = |x: &[f32]| x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
    let (ea, eb) = (e(a), e(b));
    if eb > 0.0 {
        let g = (ea / eb).sqrt() as f32;
        b.iter_mut().for_each(|v| *v *= g);
    }
}

/// Signal-to-distortion ratio of an estimate, dB: `10 log10(|s|² / |s − ŝ|²)` over the
/// common length (the plain SDR, without BSS-eval's allowed filter).
///
/// ```
/// use streamnmf::synth::sdr;
/// let s = [1.0f32, -1.0, 0.5];
/// assert!(sdr(&s, &s) > 100.0);
/// assert!((sdr(&s, &[0.0, 0.0, 0.0]) - 0.0).abs() < 1e-9);
/// ```
pub fn sdr(reference: &[f32], estimate: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&s, &e) in reference.iter().zip(estimate) {
        num += (s as f64).powi(2);
        den += (s as f64 - e as f64).powi(2);
    }
    10.0 * (num / den.max(1e-300)).log10()
}
