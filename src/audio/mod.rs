//! [feature `audio`] Audio in and out: WAV files (`hound`), streamed short-time Fourier
//! transforms (`realfft`), spectrogram frames as a [`BatchSource`](crate::source::BatchSource),
//! and Wiener-mask separation of a mixture by a model whose atoms are labelled by source.
//!
//! A spectrogram's rows are frames and its columns frequency bins, named in Hz
//! ([`bin_names`]); the model file keeps the transform's settings
//! ([`Spectrogram`](crate::persist::Spectrogram)) so a separated source can be turned
//! back into audio with the mixture's phase.

mod separate;
mod stft;
mod wav;
mod wav64;

pub use separate::{Separator, Sources};
pub use stft::{bin_names, check, Analysis, Spectrum, Synthesis};
pub use wav::{
    finish_wav, magnitudes, wav_writer, write_samples, write_wav, SpectraReader, WavReader,
    WavSource,
};
