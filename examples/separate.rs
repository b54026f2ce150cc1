//! Supervised and semi-supervised source separation of a speech-like source from pink
//! noise under chords, mixed at 0 dB, with KL-NMF dictionaries (Smaragdis et al. 2007).
//!
//! ```text
//! cargo run --release --example separate [-- OUT_DIR]
//! ```
//!
//! Learns a speech dictionary from 20 s of clean speech and a noise dictionary from 20 s of
//! clean noise, composes them, separates a new 10 s mixture by Wiener masks on its STFT,
//! and prints the SDR improvement; then fixes the speech atoms and learns the noise ones
//! from the mixture alone (semi-supervised). With OUT_DIR, writes the training and test
//! WAVs there (for `benches/peers/audio.sh` and the CLI) and the separated sources.

use std::time::Instant;

use ndarray::Array2;
use streamnmf::audio::{magnitudes, Analysis, Separator, Sources, Spectrum, Synthesis};
use streamnmf::persist::Spectrogram;
use streamnmf::synth::{match_energy, noise_like, sdr, speech_like};
use streamnmf::{Init, Loss, NmfParams, OnlineNmf};

const SR: u32 = 16000;

fn spectra(x: &[f32], spec: &Spectrogram) -> Vec<Spectrum> {
    let mut a = Analysis::new(spec).expect("settings");
    let mut out = Vec::new();
    a.push(x, &mut out);
    a.finish(&mut out);
    out
}

fn fit(x: &Array2<f32>, k: usize, passes: usize) -> OnlineNmf<f32> {
    let params = NmfParams::new(k)
        .loss(Loss::KullbackLeibler)
        .max_passes(passes)
        .batch_size(256)
        .seed(1)
        .check()
        .expect("valid");
    let mut m = OnlineNmf::new(params);
    m.fit(x).expect("fit");
    m
}

/// Separates `mix` with `model`; returns the speech estimate and the noise estimate.
fn separate(
    model: &OnlineNmf<f32>,
    labels: &[String],
    mix: &[f32],
    spec: &Spectrogram,
) -> Vec<Vec<f32>> {
    let s = spectra(mix, spec);
    let x = magnitudes::<f32>(&s, spec.power);
    let sources = Sources::from_labels(labels, labels.len()).expect("labels");
    let sep = Separator::new(model, sources, 1.0);
    let masks = sep.masks(x.view()).expect("masks");
    masks
        .iter()
        .map(|m| {
            let mut syn = Synthesis::new(spec).expect("settings");
            let mut y = Vec::new();
            for (t, frame) in s.iter().enumerate() {
                let row: Vec<_> = frame.iter().zip(m.row(t)).map(|(c, &g)| c * g).collect();
                syn.push(&row, &mut y);
            }
            syn.finish(mix.len() as u64, &mut y);
            y
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::env::args().nth(1).map(std::path::PathBuf::from);
    let spec = Spectrogram {
        sample_rate: SR,
        fft_size: 1024,
        hop: 256,
        power: 1,
    };
    let train_speech = speech_like(20.0, SR, 1);
    let mut train_noise = noise_like(20.0, SR, 2);
    match_energy(&train_speech, &mut train_noise);
    let speech = speech_like(10.0, SR, 3);
    let mut noise = noise_like(10.0, SR, 4);
    match_energy(&speech, &mut noise);
    let mix: Vec<f32> = speech.iter().zip(&noise).map(|(a, b)| a + b).collect();
    if let Some(d) = &out_dir {
        std::fs::create_dir_all(d)?;
        for (name, x) in [
            ("train_speech", &train_speech),
            ("train_noise", &train_noise),
            ("speech", &speech),
            ("noise", &noise),
            ("mixture", &mix),
        ] {
            let f = std::fs::File::create(d.join(format!("{name}.wav")))?;
            streamnmf::audio::write_wav(std::io::BufWriter::new(f), SR, x)?;
        }
    }
    let baseline = sdr(&speech, &mix);
    println!("mixture at 0 dB: speech SDR {baseline:.2} dB");

    let t = Instant::now();
    let xs = magnitudes::<f32>(&spectra(&train_speech, &spec), 1);
    let xn = magnitudes::<f32>(&spectra(&train_noise, &spec), 1);
    let speech_model = fit(&xs, 20, 30);
    let noise_model = fit(&xn, 10, 30);
    let both = OnlineNmf::compose(&[&speech_model, &noise_model])?;
    let mut labels = vec!["speech".to_string(); 20];
    labels.extend(vec!["noise".to_string(); 10]);
    let est = separate(&both, &labels, &mix, &spec);
    println!(
        "supervised (20 speech + 10 noise atoms): speech SDR {:.2} dB, improvement {:.2} dB, noise SDR improvement {:.2} dB ({:.2} s)",
        sdr(&speech, &est[0]),
        sdr(&speech, &est[0]) - baseline,
        sdr(&noise, &est[1]) - sdr(&noise, &mix),
        t.elapsed().as_secs_f64()
    );

    // Semi-supervised: the speech atoms fixed, 10 free atoms learned from the mixture.
    let t = Instant::now();
    let xm = magnitudes::<f32>(&spectra(&mix, &spec), 1);
    let params = NmfParams::new(30)
        .loss(Loss::KullbackLeibler)
        .init(Init::Custom(speech_model.components()?.mapv(f64::from)))
        .fixed_components(0..20)
        .max_passes(30)
        .batch_size(256)
        .seed(1)
        .check()?;
    let mut semi = OnlineNmf::new(params);
    semi.fit(&xm)?;
    let est = separate(&semi, &labels, &mix, &spec);
    println!(
        "semi-supervised (20 fixed speech atoms + 10 learned from the mixture): speech SDR improvement {:.2} dB ({:.2} s)",
        sdr(&speech, &est[0]) - baseline,
        t.elapsed().as_secs_f64()
    );
    if let Some(d) = &out_dir {
        for (name, x) in [("est_speech", &est[0]), ("est_noise", &est[1])] {
            let f = std::fs::File::create(d.join(format!("{name}.wav")))?;
            streamnmf::audio::write_wav(std::io::BufWriter::new(f), SR, x)?;
        }
        println!("WAVs written to {}", d.display());
    }
    Ok(())
}
