//! Atomic writes: every output is written to a temporary file beside its destination and
//! renamed onto it only when complete (after an fsync, followed by an fsync of the
//! directory), so a failed or killed run never leaves a half-written file under the
//! destination's name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// The prefix of every temporary file this crate creates.
pub const TEMP_PREFIX: &str = ".streamnmf-";

/// A file being written: a buffered temporary file beside `dest`, renamed onto `dest` by
/// [`commit`](Self::commit); dropped without committing, it is deleted.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use std::io::Write;
/// use streamnmf::persist::AtomicFile;
/// let dir = tempfile::tempdir()?;
/// let dest = dir.path().join("out.bin");
/// let mut f = AtomicFile::create(&dest)?;
/// f.write_all(b"hello")?;
/// assert!(!dest.exists()); // nothing visible until committed
/// f.commit()?;
/// assert_eq!(std::fs::read(&dest)?, b"hello");
/// # Ok(()) }
/// ```
pub struct AtomicFile {
    dest: PathBuf,
    out: BufWriter<File>,
    tmp: NamedTempFile,
    /// With the `test-hooks` feature and a pause asked for, the bytes are held here and
    /// written at commit, half, a pause, then the rest (see [`pause_mid_write`]).
    #[cfg(feature = "test-hooks")]
    held: Option<(Vec<u8>, std::time::Duration)>,
}

impl AtomicFile {
    /// Starts writing `dest`.
    pub fn create(dest: &Path) -> Result<Self> {
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&dir)
            .map_err(|e| Error::Io(e).in_file(dest))?;
        let file = tmp.reopen().map_err(|e| Error::Io(e).in_file(dest))?;
        Ok(Self {
            dest: dest.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, file),
            tmp,
            #[cfg(feature = "test-hooks")]
            held: pause_mid_write().map(|d| (Vec::new(), d)),
        })
    }

    /// The destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes, fsyncs and renames the file onto its destination.
    #[cfg_attr(not(feature = "test-hooks"), allow(unused_mut))]
    pub fn commit(mut self) -> Result<()> {
        #[cfg(feature = "test-hooks")]
        if let Some((bytes, pause)) = self.held.take() {
            let (head, tail) = bytes.split_at(bytes.len() / 2);
            let io = |e| Error::Io(e).in_file(&self.dest);
            self.out.write_all(head).map_err(io)?;
            self.out.flush().map_err(io)?;
            std::thread::sleep(pause);
            self.out.write_all(tail).map_err(io)?;
        }
        let dest = self.dest;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::Io(e.into_error()).in_file(&dest))?;
        file.sync_all().map_err(|e| Error::Io(e).in_file(&dest))?;
        self.tmp
            .persist(&dest)
            .map_err(|e| Error::Io(e.error).in_file(&dest))?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        #[cfg(feature = "test-hooks")]
        if let Some((held, _)) = self.held.as_mut() {
            held.extend_from_slice(buf);
            return Ok(buf.len());
        }
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Fault injection for the crash tests: with the `test-hooks` feature, the pause that
/// `STREAMNMF_TEST_CHECKPOINT_PAUSE_MS` asks for halfway through every atomic write, so a
/// test can kill the process while a half-written temporary file is on disk.
#[cfg(feature = "test-hooks")]
fn pause_mid_write() -> Option<std::time::Duration> {
    std::env::var("STREAMNMF_TEST_CHECKPOINT_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x");
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"partial").unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
