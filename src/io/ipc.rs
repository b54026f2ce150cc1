//! Arrow IPC files and streams with compressed buffers, checked before they are inflated.
//!
//! `pandas.DataFrame.to_feather` writes LZ4-compressed buffers by default, and pyarrow
//! writes zstd when asked. Each compressed buffer starts with its size once decompressed
//! (8 bytes, little-endian), and the Arrow reader reserves that much memory before
//! decompressing: a corrupt or hostile file declaring 2⁵⁰ bytes would abort the process
//! on the failed allocation, which no panic guard catches. So every record batch and
//! dictionary message is checked here first: a buffer may declare at most
//! [`MAX_BUFFER`] bytes and a message's buffers [`MAX_MESSAGE`] in total (a batch of
//! 10 M rows of f64 holds 80 MB a column). A stream message this module cannot parse is
//! left to the Arrow reader, which parses the same bytes and stops there before
//! decompressing anything; in a file, where the reader parses more bytes than the
//! message's metadata, it is refused.
//!
//! * Files: [`check_file`] walks the footer's blocks and reads each message and the
//!   8-byte prefixes of its buffers, before the reader opens the file. It also refuses
//!   blocks the footer places past the file's end, which the reader would first reserve
//!   and zero in full, compressed or not.
//! * Streams: [`Checked`] reads one whole message at a time (body bounded by what
//!   arrives, never by its declared length), checks it, then hands its bytes on. An IPC
//!   file piped in (`cat x.feather |`) reads as the stream it holds after its magic.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use arrow_ipc::reader::read_footer_length;
use arrow_ipc::{Message, MessageHeader};

use crate::error::{Error, Result};

/// Bytes one compressed buffer may declare once decompressed, at most (1 GiB).
pub(super) const MAX_BUFFER: i64 = 1 << 30;

/// Bytes the compressed buffers of one message may declare in total, at most (4 GiB).
pub(super) const MAX_MESSAGE: i64 = 4 << 30;

/// Metadata bytes of one message, at most: larger ones are refused (a schema of 10 000
/// columns is a few megabytes).
const MAX_METADATA: usize = 256 << 20;

/// The first 8 bytes of an Arrow IPC file: magic and the padding's first two bytes.
const FILE_MAGIC: [u8; 8] = *b"ARROW1\0\0";

/// Zero bytes after an IPC file's magic skipped at most, to the writer's alignment.
const MAX_PADDING: usize = 1024;

/// The marker before each message's metadata length (IPC format 0.15 and later).
const CONTINUATION_MARKER: [u8; 4] = [0xff; 4];

fn refused(message: String) -> Error {
    Error::Decode {
        format: "Arrow",
        message,
    }
}

/// Checks message `index`'s compressed buffers: `prefix(offset)` gives the 8 bytes at
/// `offset` of its body (`None` past the body's end, left to the reader).
fn check_message(
    message: &Message,
    index: usize,
    mut prefix: impl FnMut(u64) -> io::Result<Option<[u8; 8]>>,
) -> io::Result<std::result::Result<(), String>> {
    let batch = match message.header_type() {
        MessageHeader::RecordBatch => message.header_as_record_batch(),
        MessageHeader::DictionaryBatch => {
            message.header_as_dictionary_batch().and_then(|d| d.data())
        }
        _ => None,
    };
    let Some(batch) = batch else {
        return Ok(Ok(()));
    };
    if batch.compression().is_none() {
        return Ok(Ok(()));
    }
    let mut total = 0i64;
    for b in batch.buffers().iter().flatten() {
        if b.length() < 8 || b.offset() < 0 {
            continue;
        }
        let Some(bytes) = prefix(b.offset() as u64)? else {
            continue;
        };
        // -1: stored uncompressed; other negative sizes are the reader's to refuse.
        let declared = i64::from_le_bytes(bytes);
        if declared > MAX_BUFFER {
            return Ok(Err(format!(
                "message {index}: a compressed buffer declares {declared} bytes once \
                 decompressed, more than the {} MiB one buffer may hold (corrupt file?)",
                MAX_BUFFER >> 20
            )));
        }
        total += declared.max(0);
        if total > MAX_MESSAGE {
            return Ok(Err(format!(
                "message {index}: its compressed buffers declare more than {} GiB once \
                 decompressed (corrupt file?)",
                MAX_MESSAGE >> 30
            )));
        }
    }
    Ok(Ok(()))
}

/// The flatbuffer message of an encapsulated message's metadata (after the optional
/// continuation marker and the length), as the Arrow reader parses it.
fn parse(metadata: &[u8]) -> Option<Message<'_>> {
    let fb = match metadata.get(..4)? == CONTINUATION_MARKER {
        true => metadata.get(8..)?,
        false => metadata.get(4..)?,
    };
    arrow_ipc::root_as_message(fb).ok()
}

/// `len` bytes of `file` at `offset`, or `None` when the file is shorter.
fn read_at(file: &mut File, offset: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.by_ref().take(len as u64).read_to_end(&mut buf)?;
    Ok((buf.len() == len).then_some(buf))
}

/// Checks the compressed buffers of an Arrow IPC file's record batches and dictionaries
/// (see the module's documentation); a footer it cannot read is left to the reader.
pub(super) fn check_file(file: &mut File) -> Result<()> {
    let len = file.metadata()?.len();
    let Some(tail) = len
        .checked_sub(10)
        .map(|at| read_at(file, at, 10))
        .transpose()?
        .flatten()
    else {
        return Ok(());
    };
    let Ok(footer_len) = read_footer_length(tail.try_into().expect("10 bytes")) else {
        return Ok(());
    };
    let Some(at) = len.checked_sub(10 + footer_len as u64) else {
        return Ok(());
    };
    let Some(footer) = read_at(file, at, footer_len)? else {
        return Ok(());
    };
    let Ok(footer) = arrow_ipc::root_as_footer(&footer) else {
        return Ok(());
    };
    let dictionaries = footer.dictionaries().into_iter().flatten();
    let batches = footer.recordBatches().into_iter().flatten();
    for (index, block) in dictionaries.chain(batches).enumerate() {
        // The reader reserves and zeroes a block's whole length before reading it: a
        // footer claiming 30 GB for a block of a small file took a minute and 30 GB.
        let end = u64::try_from(block.offset())
            .ok()
            .zip(u64::try_from(block.metaDataLength()).ok())
            .zip(u64::try_from(block.bodyLength()).ok())
            .and_then(|((o, m), b)| o.checked_add(m)?.checked_add(b));
        if end.is_none_or(|end| end > len) {
            return Err(refused(format!(
                "message {index} of the footer lies outside the file's {len} bytes \
                 (offset {}, {} + {} bytes): truncated or corrupt file",
                block.offset(),
                block.metaDataLength(),
                block.bodyLength()
            )));
        }
        let (offset, meta) = (block.offset() as u64, block.metaDataLength() as usize);
        // The reader parses a block's metadata and body as one slice, so metadata whose
        // tables point past its own length into the body is read there: refused here.
        let metadata = match meta <= MAX_METADATA {
            true => read_at(file, offset, meta)?,
            false => None,
        };
        let Some(message) = metadata.as_deref().and_then(parse) else {
            return Err(refused(format!(
                "message {index}: its {meta} bytes of metadata do not parse: corrupt file"
            )));
        };
        let body = offset.saturating_add(meta as u64);
        let body_len = u64::try_from(block.bodyLength()).unwrap_or(0);
        check_message(&message, index, |o| {
            if o.saturating_add(8) > body_len {
                return Ok(None);
            }
            Ok(read_at(file, body.saturating_add(o), 8)?.map(|b| b.try_into().expect("8")))
        })?
        .map_err(refused)?;
    }
    Ok(())
}

/// An Arrow IPC stream whose messages are checked (see the module's documentation)
/// before the reader sees them: it reads one whole message at a time and hands it on.
/// Once a message cannot be parsed here the rest passes through unchecked, as the
/// reader stops at that message.
pub(super) struct Checked<R> {
    inner: R,
    pending: Vec<u8>,
    at: usize,
    messages: usize,
    through: bool,
    /// Why a message was refused: every later read fails with it.
    refused: Option<String>,
}

impl<R: Read> Checked<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            at: 0,
            messages: 0,
            through: false,
            refused: None,
        }
    }

    /// Refuses the stream: this read and every later one fail with `why` (a reader that
    /// reads on after an error must not get the message).
    fn refuse(&mut self, why: String) -> io::Error {
        self.pending.clear();
        self.at = 0;
        self.refused = Some(why.clone());
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    /// Appends up to `n` more bytes of the input to `pending`; whether all came.
    fn take(&mut self, n: u64) -> io::Result<bool> {
        let before = self.pending.len();
        (&mut self.inner).take(n).read_to_end(&mut self.pending)?;
        Ok((self.pending.len() - before) as u64 == n)
    }

    /// Reads the next message into `pending` and checks it.
    fn next_message(&mut self) -> io::Result<()> {
        self.pending.clear();
        self.at = 0;
        if !self.take(4)? {
            self.through = true;
            return Ok(());
        }
        if self.messages == 0 && self.pending[..4] == FILE_MAGIC[..4] {
            // An IPC file (Feather) piped in: its 8-byte magic and padding, then a
            // stream up to the end-of-stream marker before its footer.
            if !self.take(4)? || self.pending[4..] != FILE_MAGIC[4..] {
                self.through = true;
                return Ok(());
            }
            // Writers pad the magic to their alignment (pyarrow 8 bytes, arrow-rs 64):
            // zeros, where a stream cannot begin.
            for _ in 0..MAX_PADDING / 4 {
                self.pending.clear();
                if !self.take(4)? {
                    self.through = true;
                    return Ok(());
                }
                if self.pending[..] != [0; 4] {
                    break;
                }
            }
        }
        if self.pending[..4] == CONTINUATION_MARKER && !self.take(4)? {
            self.through = true;
            return Ok(());
        }
        let start = self.pending.len();
        let meta = i32::from_le_bytes(self.pending[start - 4..].try_into().expect("4"));
        let meta = match usize::try_from(meta) {
            Ok(m) if m > MAX_METADATA => {
                return Err(self.refuse(format!(
                    "a message of {m} bytes of metadata: corrupt stream"
                )));
            }
            Ok(m) if m > 0 => m,
            // The end of the stream, or a length the reader refuses.
            _ => {
                self.through = true;
                return Ok(());
            }
        };
        if !self.take(meta as u64)? {
            self.through = true;
            return Ok(());
        }
        let Some(body_len) = arrow_ipc::root_as_message(&self.pending[start..])
            .ok()
            .and_then(|m| u64::try_from(m.bodyLength()).ok())
        else {
            self.through = true;
            return Ok(());
        };
        let body = self.pending.len();
        let whole = self.take(body_len)?;
        let index = self.messages;
        self.messages += 1;
        let message = arrow_ipc::root_as_message(&self.pending[start..body]).expect("parsed");
        let got = &self.pending[body..];
        let checked = check_message(&message, index, |o| {
            let o = usize::try_from(o).unwrap_or(usize::MAX);
            Ok(got
                .get(o..o.saturating_add(8))
                .map(|b| b.try_into().expect("8")))
        });
        if let Err(e) = checked? {
            return Err(self.refuse(e));
        }
        if !whole {
            self.through = true;
        }
        Ok(())
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.refused {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e.clone()));
        }
        if self.at == self.pending.len() {
            if self.through {
                return self.inner.read(buf);
            }
            self.next_message()?;
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, RecordBatch};
    use arrow_ipc::reader::{FileReader, StreamReader};
    use arrow_ipc::writer::{FileWriter, IpcWriteOptions, StreamWriter};
    use arrow_ipc::CompressionType;

    fn table() -> RecordBatch {
        let a = Float64Array::from_iter_values((0..500).map(|i| (i % 7) as f64));
        let b = Float64Array::from_iter_values((0..500).map(|i| i as f64 / 3.0));
        RecordBatch::try_from_iter([("a", Arc::new(a) as ArrayRef), ("b", Arc::new(b) as _)])
            .unwrap()
    }

    fn options(codec: CompressionType) -> IpcWriteOptions {
        IpcWriteOptions::default()
            .try_with_compression(Some(codec))
            .unwrap()
    }

    fn file_bytes(codec: CompressionType) -> Vec<u8> {
        let t = table();
        let mut out = Vec::new();
        let mut w =
            FileWriter::try_new_with_options(&mut out, &t.schema(), options(codec)).unwrap();
        w.write(&t).unwrap();
        w.write(&t).unwrap();
        w.finish().unwrap();
        drop(w);
        out
    }

    fn stream_bytes(codec: CompressionType) -> Vec<u8> {
        let t = table();
        let mut out = Vec::new();
        let mut w =
            StreamWriter::try_new_with_options(&mut out, &t.schema(), options(codec)).unwrap();
        w.write(&t).unwrap();
        w.finish().unwrap();
        drop(w);
        out
    }

    /// `check_file`'s error on a file of `bytes`.
    fn file_error(path: &std::path::Path, bytes: &[u8]) -> String {
        std::fs::write(path, bytes).unwrap();
        let e = check_file(&mut File::open(path).unwrap());
        e.unwrap_err().to_string()
    }

    /// Where the 8-byte size prefix of the first buffer that declares `size` sits.
    fn prefix_of(bytes: &[u8], size: i64) -> usize {
        bytes
            .windows(8)
            .position(|w| w == size.to_le_bytes())
            .expect("a buffer of that size")
    }

    /// LZ4 and zstd files and streams read back whole through the checks; a file or
    /// stream whose buffer declares 2⁵⁰ bytes is refused before the reader reserves them.
    #[test]
    fn compressed_files_and_streams_read_and_oversized_buffers_are_refused() {
        let want = table();
        for codec in [CompressionType::LZ4_FRAME, CompressionType::ZSTD] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.arrow");
            std::fs::write(&path, file_bytes(codec)).unwrap();
            let mut f = File::open(&path).unwrap();
            check_file(&mut f).unwrap();
            let got: Vec<RecordBatch> = FileReader::try_new(f, None)
                .unwrap()
                .map(|b| b.unwrap())
                .collect();
            assert_eq!(got, [want.clone(), want.clone()]);

            let bytes = stream_bytes(codec);
            let got: Vec<RecordBatch> = StreamReader::try_new(Checked::new(&bytes[..]), None)
                .unwrap()
                .map(|b| b.unwrap())
                .collect();
            assert_eq!(got, std::slice::from_ref(&want));
            // A file read as a stream: the stream after its magic, up to the footer.
            let got: Vec<RecordBatch> =
                StreamReader::try_new(Checked::new(&file_bytes(codec)[..]), None)
                    .unwrap()
                    .map(|b| b.unwrap())
                    .collect();
            assert_eq!(got, [want.clone(), want.clone()]);

            // Column b's values buffer: 500 f64 (4000 bytes) once decompressed.
            let mut bad = file_bytes(codec);
            let at = prefix_of(&bad, 4000);
            bad[at..at + 8].copy_from_slice(&(1i64 << 50).to_le_bytes());
            let e = file_error(&path, &bad);
            assert!(
                e.contains("1125899906842624 bytes") && e.contains("1024 MiB"),
                "{e}"
            );

            let mut bad = stream_bytes(codec);
            let at = prefix_of(&bad, 4000);
            bad[at..at + 8].copy_from_slice(&(MAX_BUFFER + 1).to_le_bytes());
            let e = StreamReader::try_new(Checked::new(&bad[..]), None)
                .unwrap()
                .find_map(|b| b.err())
                .expect("refused")
                .to_string();
            assert!(
                e.contains("message 1") && e.contains("1073741825 bytes"),
                "{e}"
            );
            // A reader that reads on after the error never gets the refused message.
            let mut r = StreamReader::try_new(Checked::new(&bad[..]), None).unwrap();
            for _ in 0..3 {
                assert!(r.next().is_none_or(|b| b.is_err()));
            }
        }
    }

    /// Uncompressed and truncated inputs pass through to the reader unchanged.
    #[test]
    fn other_inputs_pass_through() {
        let t = table();
        let mut plain = Vec::new();
        let mut w = StreamWriter::try_new(&mut plain, &t.schema()).unwrap();
        w.write(&t).unwrap();
        w.finish().unwrap();
        drop(w);
        for cut in [0, 3, 7, plain.len() / 2, plain.len()] {
            let mut through = Vec::new();
            Checked::new(&plain[..cut])
                .read_to_end(&mut through)
                .unwrap();
            assert_eq!(through, &plain[..cut]);
        }
        let dir = tempfile::tempdir().unwrap();
        // A footer whose block claims 30 GB of body: refused before the reader zeroes it.
        let t = table();
        let mut bytes = Vec::new();
        let mut w = FileWriter::try_new(&mut bytes, &t.schema()).unwrap();
        w.write(&t).unwrap();
        w.finish().unwrap();
        drop(w);
        let path = dir.path().join("long.arrow");
        std::fs::write(&path, &bytes).unwrap();
        check_file(&mut File::open(&path).unwrap()).unwrap();
        let footer = bytes.len()
            - 10
            - read_footer_length(bytes[bytes.len() - 10..].try_into().unwrap()).unwrap();
        let f = arrow_ipc::root_as_footer(&bytes[footer..bytes.len() - 10]).unwrap();
        let body = f.recordBatches().unwrap().get(0).bodyLength();
        let at = footer + prefix_of(&bytes[footer..], body);
        bytes[at..at + 8].copy_from_slice(&(30i64 << 30).to_le_bytes());
        let e = file_error(&path, &bytes);
        assert!(
            e.contains("outside the file's") && e.contains("32212254720 bytes"),
            "{e}"
        );

        let path = dir.path().join("short.arrow");
        std::fs::write(&path, b"ARROW1").unwrap();
        check_file(&mut File::open(&path).unwrap()).unwrap();
    }
}
