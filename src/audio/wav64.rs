//! 64-bit float WAV files, which `hound` does not read: what `scipy.io.wavfile.write`
//! writes for a float64 array, and `soundfile` with subtype `DOUBLE`. Only the RIFF
//! chunks that locate the samples are parsed (`fmt ` and `data`); every other chunk is
//! skipped, and every length is checked against the file.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// `WAVE_FORMAT_IEEE_FLOAT`.
const FORMAT_FLOAT: u16 = 3;
/// `WAVE_FORMAT_EXTENSIBLE`: the format is the first two bytes of the sub-format GUID.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

fn malformed(message: impl Into<String>) -> Error {
    Error::Decode {
        format: "WAV",
        message: message.into(),
    }
}

/// A read that hits the end of the file is a malformed file, not an I/O failure.
fn read_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        malformed("the file ends inside a chunk its header announces")
    } else {
        Error::Io(e)
    }
}

/// The samples of a 64-bit float WAV file, read frame block by frame block.
pub(super) struct Float64Wav {
    reader: BufReader<File>,
    channels: usize,
    sample_rate: u32,
    /// Frames in the data chunk.
    frames: u64,
    /// Frames not read yet.
    left: u64,
    bytes: Vec<u8>,
}

impl Float64Wav {
    /// Opens `path` if it is a WAV file of 64-bit float samples: `Ok(None)` for any other
    /// file (which `hound` then reads or reports), an error for a 64-bit float WAV file
    /// whose chunks do not add up.
    pub(super) fn open(path: &Path) -> Result<Option<Self>> {
        let file = File::open(path).map_err(Error::Io)?;
        let size = file.metadata().map_err(Error::Io)?.len();
        let mut reader = BufReader::new(file);
        let mut head = [0u8; 12];
        if reader.read_exact(&mut head).is_err() || &head[0..4] != b"RIFF" || &head[8..] != b"WAVE"
        {
            return Ok(None);
        }
        let mut format: Option<(usize, u32)> = None;
        loop {
            let mut chunk = [0u8; 8];
            if reader.read_exact(&mut chunk).is_err() {
                return Ok(None); // no data chunk: not ours to report
            }
            let len = u64::from(u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]));
            let at = reader.stream_position().map_err(Error::Io)?;
            match &chunk[0..4] {
                b"fmt " => {
                    if !(16..=1024).contains(&len) {
                        return Ok(None);
                    }
                    let mut f = vec![0u8; len as usize];
                    reader.read_exact(&mut f).map_err(read_error)?;
                    let u16_at = |i: usize| u16::from_le_bytes([f[i], f[i + 1]]);
                    let tag = match u16_at(0) {
                        FORMAT_EXTENSIBLE if len >= 26 => u16_at(24),
                        tag => tag,
                    };
                    let (channels, bits) = (u16_at(2), u16_at(14));
                    if tag != FORMAT_FLOAT || bits != 64 {
                        return Ok(None);
                    }
                    if channels == 0 {
                        return Err(malformed("no channels"));
                    }
                    let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                    format = Some((channels as usize, rate));
                }
                b"data" => {
                    let Some((channels, sample_rate)) = format else {
                        return Ok(None);
                    };
                    if at + len > size {
                        return Err(malformed(format!(
                            "the data chunk announces {len} bytes, but the file holds {} \
                             after its start",
                            size - at
                        )));
                    }
                    let frames = len / (8 * channels as u64);
                    return Ok(Some(Self {
                        reader,
                        channels,
                        sample_rate,
                        frames,
                        left: frames,
                        bytes: Vec::new(),
                    }));
                }
                _ => {}
            }
            // Chunks are padded to an even length.
            let next = at + len + (len & 1);
            if next > size {
                return Ok(None);
            }
            reader.seek(SeekFrom::Start(next)).map_err(Error::Io)?;
        }
    }

    pub(super) fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Frames (mono samples) in the file.
    pub(super) fn len(&self) -> u64 {
        self.frames
    }

    /// Reads up to `max` frames, mixed to mono, into `out` (cleared first); 0 at the end.
    pub(super) fn read(&mut self, max: usize, out: &mut Vec<f32>) -> Result<usize> {
        out.clear();
        let frames = (max as u64).min(self.left) as usize;
        let c = self.channels;
        self.bytes.resize(frames * c * 8, 0);
        self.reader
            .read_exact(&mut self.bytes)
            .map_err(read_error)?;
        self.left -= frames as u64;
        out.extend(self.bytes.chunks_exact(8 * c).map(|frame| {
            let sum: f64 = frame
                .chunks_exact(8)
                .map(|s| f64::from_le_bytes(s.try_into().expect("8 bytes")))
                .sum();
            (sum / c as f64) as f32
        }));
        Ok(out.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV file of `samples` (interleaved) as 64-bit floats, with an extra chunk before
    /// the data, as editors write them.
    fn file(dir: &Path, channels: u16, samples: &[f64], extensible: bool) -> std::path::PathBuf {
        let mut fmt = Vec::new();
        let tag = if extensible {
            FORMAT_EXTENSIBLE
        } else {
            FORMAT_FLOAT
        };
        fmt.extend(tag.to_le_bytes());
        fmt.extend(channels.to_le_bytes());
        fmt.extend(8000u32.to_le_bytes());
        fmt.extend((8000 * 8 * channels as u32).to_le_bytes());
        fmt.extend((8 * channels).to_le_bytes());
        fmt.extend(64u16.to_le_bytes());
        if extensible {
            fmt.extend(22u16.to_le_bytes());
            fmt.extend(64u16.to_le_bytes());
            fmt.extend(0u32.to_le_bytes());
            fmt.extend(FORMAT_FLOAT.to_le_bytes());
            fmt.extend([0u8; 14]);
        }
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut body = b"WAVE".to_vec();
        for (id, chunk) in [(b"fmt ", &fmt), (b"LIST", &vec![7u8; 5]), (b"data", &data)] {
            body.extend(id);
            body.extend((chunk.len() as u32).to_le_bytes());
            body.extend(chunk);
            if chunk.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut bytes = b"RIFF".to_vec();
        bytes.extend((body.len() as u32).to_le_bytes());
        bytes.extend(body);
        let path = dir.join(format!("{channels}-{extensible}.wav"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_and_mixes_frames() {
        let dir = tempfile::tempdir().unwrap();
        let stereo: Vec<f64> = (0..10).map(|i| i as f64 / 8.0).collect();
        for extensible in [false, true] {
            let path = file(dir.path(), 2, &stereo, extensible);
            let mut w = Float64Wav::open(&path).unwrap().expect("a float64 WAV");
            assert_eq!((w.len(), w.sample_rate()), (5, 8000));
            let mut out = Vec::new();
            assert_eq!(w.read(3, &mut out).unwrap(), 3);
            assert_eq!(out, [0.0625, 0.3125, 0.5625]);
            assert_eq!(w.read(3, &mut out).unwrap(), 2);
            assert_eq!(out, [0.8125, 1.0625]);
            assert_eq!(w.read(3, &mut out).unwrap(), 0);
        }
    }

    #[test]
    fn other_files_are_left_to_hound_and_short_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pcm = dir.path().join("pcm.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&pcm, spec).unwrap();
        w.write_sample(3i16).unwrap();
        w.finalize().unwrap();
        assert!(Float64Wav::open(&pcm).unwrap().is_none());
        let text = dir.path().join("a.wav");
        std::fs::write(&text, b"not a wav file").unwrap();
        assert!(Float64Wav::open(&text).unwrap().is_none());

        let path = file(dir.path(), 1, &[0.5; 100], false);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 16]).unwrap();
        let e = Float64Wav::open(&path)
            .err()
            .expect("a truncated data chunk");
        assert!(
            e.to_string().contains("the data chunk announces 800 bytes"),
            "{e}"
        );
    }
}
