//! Atomic writes: every output is written to a temporary file beside its destination and
//! renamed onto it only when complete (after an fsync, followed by an fsync of the
//! directory), so a failed or killed run never leaves a half-written file under the
//! destination's name.
//!
//! A destination that is a symbolic link is written through: the link's target is
//! replaced and the link stays. Files are created with the permissions `File::create`
//! gives (0666 less the umask). Temporary files are named `.streamnmf-<pid>-…`, so a later
//! run can tell the ones a dead process left behind ([`clean_stale_temps`]).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// The prefix of every temporary file this crate creates.
pub const TEMP_PREFIX: &str = ".streamnmf-";

/// `path` with every symbolic link along the final component followed (a link to a link
/// to a file gives the file), without requiring the final target to exist.
pub fn resolve_links(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p).map_err(|e| Error::Io(e).in_file(&p))?;
                p = match (target.is_absolute(), p.parent()) {
                    (false, Some(dir)) => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(Error::Io(std::io::Error::other("too many levels of symbolic links")).in_file(path))
}

/// Removes the temporary files of this tool in `dir` whose writing process is gone
/// (killed mid-write); files of live processes and anyone else's files are left alone.
/// Returns how many were removed.
pub fn clean_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !process_alive(p)) && std::fs::remove_file(e.path()).is_ok() {
            tracing::info!(path = %e.path().display(), "removed a temporary file left by a stopped run");
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` exists (on systems without `/proc`, assumed alive).
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// The file an atomic write of `dest` replaces: `dest` with its symbolic links followed
/// (the link stays, its target is replaced), checked to be a regular file or a new name.
/// A directory, a FIFO or a device (`/dev/null`, `/dev/full`) is an error: renaming a
/// finished file onto it would replace the node itself (as root, `/dev/full` became a
/// PNG), and writing into it is not atomic. Every writer that renames a temporary file
/// onto a destination calls this first.
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use streamnmf::persist::replaceable;
/// let dir = tempfile::tempdir()?;
/// let new = dir.path().join("new.snmf");
/// assert_eq!(replaceable(&new)?, new);
/// let e = replaceable(std::path::Path::new("/dev/null")).unwrap_err();
/// assert!(e.to_string().contains("not a regular file"), "{e}");
/// assert!(replaceable(dir.path()).is_err());
/// // A name with a trailing separator is a directory's, whether or not it exists.
/// let e = replaceable(&dir.path().join("out.d/")).unwrap_err();
/// assert!(e.to_string().contains("names a directory"), "{e}");
/// # Ok(()) }
/// ```
pub fn replaceable(dest: &Path) -> Result<PathBuf> {
    // `out.d/` or `..` names a directory even when none exists: its temporary file would
    // be made in the parent and the rename onto it fail, after the run's other outputs
    // were already renamed into place.
    let raw = dest.as_os_str().to_string_lossy();
    if dest.file_name().is_none() || raw.ends_with('/') || raw.ends_with(std::path::MAIN_SEPARATOR)
    {
        return Err(Error::Io(std::io::Error::other(
            "names a directory (a trailing separator or no file name), not a file",
        ))
        .in_file(dest));
    }
    let dest = resolve_links(dest)?;
    if let Ok(m) = std::fs::metadata(&dest) {
        if !m.is_file() {
            let what = if m.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            return Err(Error::Io(std::io::Error::other(format!(
                "{what}: cannot replace it atomically"
            )))
            .in_file(&dest));
        }
    }
    Ok(dest)
}

/// The operating system's words for an error that tempfile wrapped with the temporary
/// path, which the user never gave: its message without that path.
fn os_cause(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.split_once(" at path ") {
        Some((cause, _)) => cause.to_string(),
        None => text,
    }
}

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
    /// Starts writing `dest` (a regular file, a new name, or a symbolic link to either).
    /// A directory, a FIFO or a device cannot be replaced atomically: write those as a
    /// stream instead.
    pub fn create(dest: &Path) -> Result<Self> {
        let dest = &replaceable(dest)?;
        let dir = dir_of(dest);
        let prefix = temp_prefix();
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        #[cfg(unix)]
        {
            // As `File::create` does: 0666, less the umask (the OS applies it).
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder.tempfile_in(dir).map_err(|e| {
            // tempfile's own message names the temporary path, which the user never gave.
            let why = std::io::Error::new(
                e.kind(),
                format!(
                    "cannot create a file in {} (outputs are written beside their \
                     destination, then renamed onto it): {}",
                    dir.display(),
                    os_cause(&e)
                ),
            );
            Error::Io(why).in_file(dest)
        })?;
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
    pub fn commit(self) -> Result<()> {
        commit_together(vec![self])
    }

    /// Flushes the buffer and fsyncs the temporary file: the slow half of a commit,
    /// which [`commit_together`] runs for several files at once.
    #[cfg_attr(not(feature = "test-hooks"), allow(unused_mut))]
    fn sync(mut self) -> Result<Synced> {
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
        Ok(Synced {
            dest,
            tmp: self.tmp,
        })
    }
}

/// The directory holding `dest` (`.` for a bare file name).
fn dir_of(dest: &Path) -> &Path {
    match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The start of this process's temporary names (see [`clean_stale_temps`]).
fn temp_prefix() -> String {
    format!("{TEMP_PREFIX}{}-", std::process::id())
}

/// What a destination held before a joint commit renamed a file onto it.
enum Previous {
    /// Nothing: the name was new.
    Nothing,
    /// A file, kept under a temporary hard link beside it (removed when dropped).
    Kept(NamedTempFile<()>),
    /// A file that could not be linked (a file system without hard links).
    Unkept,
}

impl Previous {
    /// What `dest` holds now, kept where it is a file.
    fn of(dest: &Path) -> Self {
        if std::fs::symlink_metadata(dest).is_err() {
            return Previous::Nothing;
        }
        let link = tempfile::Builder::new()
            .prefix(&temp_prefix())
            .make_in(dir_of(dest), |p| std::fs::hard_link(dest, p));
        match link {
            Ok(kept) => Previous::Kept(kept),
            Err(e) => {
                tracing::debug!(path = %dest.display(), error = %e, "cannot keep the old file for a roll-back");
                Previous::Unkept
            }
        }
    }

    /// Puts `dest` back as it was before its rename.
    fn restore(self, dest: &Path) {
        let outcome = match self {
            Previous::Nothing => std::fs::remove_file(dest),
            Previous::Kept(kept) => kept.persist(dest).map(|_| ()).map_err(|e| e.error),
            Previous::Unkept => Err(std::io::Error::other("the old file was not kept")),
        };
        match outcome {
            Ok(()) => {
                tracing::warn!(path = %dest.display(), "put back as it was before the failed commit")
            }
            Err(e) => {
                tracing::warn!(path = %dest.display(), error = %e, "could not be put back after the failed commit")
            }
        }
    }
}

/// A temporary file whose bytes are on disk, waiting to be renamed onto its destination.
struct Synced {
    dest: PathBuf,
    tmp: NamedTempFile,
}

/// Commits several files as one step: every file is flushed and fsynced first, all at
/// once on scoped threads (the file system folds concurrent fsyncs into one journal
/// commit, so two outputs cost about one), and only when all of them are on disk are
/// they renamed onto their destinations, in order, followed by one fsync of each
/// directory involved. A file that fails to reach the disk leaves every destination as
/// it was; the error names the first such file. A rename that fails after others
/// succeeded (the file system remounted read-only, a destination replaced by a directory
/// meanwhile) puts the renamed ones back: each destination that held a file was first
/// hard-linked under a temporary name beside it (on a file system without hard links,
/// such a file cannot be put back, and a warning says so).
///
/// ```
/// # fn main() -> streamnmf::Result<()> {
/// use std::io::Write;
/// use streamnmf::persist::{commit_together, AtomicFile};
/// let dir = tempfile::tempdir()?;
/// let (a, b) = (dir.path().join("a.bin"), dir.path().join("b.bin"));
/// let mut fa = AtomicFile::create(&a)?;
/// let mut fb = AtomicFile::create(&b)?;
/// fa.write_all(b"model")?;
/// fb.write_all(b"components")?;
/// commit_together(vec![fa, fb])?;
/// assert_eq!(std::fs::read(&a)?, b"model");
/// assert_eq!(std::fs::read(&b)?, b"components");
/// # Ok(()) }
/// ```
pub fn commit_together(files: Vec<AtomicFile>) -> Result<()> {
    let synced: Vec<Result<Synced>> = match files.len() {
        0 => return Ok(()),
        1 => files.into_iter().map(AtomicFile::sync).collect(),
        _ => std::thread::scope(|s| {
            let jobs: Vec<_> = files
                .into_iter()
                .map(|f| {
                    let dest = f.dest.clone();
                    (dest, s.spawn(move || f.sync()))
                })
                .collect();
            jobs.into_iter()
                .map(|(dest, job)| {
                    job.join().unwrap_or_else(|_| {
                        Err(Error::Io(std::io::Error::other("writing the file failed"))
                            .in_file(&dest))
                    })
                })
                .collect()
        }),
    };
    // All or nothing: an error drops every temporary file, renaming none.
    let synced = synced.into_iter().collect::<Result<Vec<_>>>()?;
    let several = synced.len() > 1;
    let mut renamed: Vec<(PathBuf, Previous)> = Vec::new();
    for f in synced {
        let previous = if several {
            Previous::of(&f.dest)
        } else {
            Previous::Nothing
        };
        if let Err(e) = f.tmp.persist(&f.dest) {
            let err = Error::Io(e.error).in_file(&f.dest);
            for (dest, previous) in renamed.into_iter().rev() {
                previous.restore(&dest);
            }
            return Err(err);
        }
        renamed.push((f.dest, previous));
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    // Dropping the kept links removes them.
    for (dest, _) in renamed {
        let dir = dir_of(&dest);
        if !dirs.iter().any(|d| d == dir) {
            dirs.push(dir.to_path_buf());
        }
    }
    for dir in dirs {
        // Make the renames themselves durable.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
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

/// Seeking flushes the buffer first (formats that patch their header at the end, such
/// as WAV, need it).
impl std::io::Seek for AtomicFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.out.seek(pos)
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

    /// A rename that fails partway through a joint commit puts back what was renamed
    /// before it (an old file restored, a new name removed), leaves no temporary file or
    /// link behind, and names the file that failed; a commit that succeeds over old
    /// files leaves no links either.
    #[test]
    fn a_failed_rename_puts_back_the_files_renamed_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = |n: &str| dir.path().join(n);
        let write = |n: &str, bytes: &[u8]| {
            let mut f = AtomicFile::create(&path(n)).unwrap();
            f.write_all(bytes).unwrap();
            f
        };
        std::fs::write(path("a"), b"old a").unwrap();
        let files = vec![
            write("a", b"new a"),
            write("c", b"new c"),
            write("b", b"new b"),
        ];
        // `b` turns into a non-empty directory after its file was started: renaming a
        // file onto it fails (EISDIR, even as root) after `a` and `c` were renamed.
        std::fs::create_dir(path("b")).unwrap();
        std::fs::write(path("b").join("x"), b"").unwrap();
        let err = commit_together(files).unwrap_err().to_string();
        assert!(err.contains(&path("b").display().to_string()), "{err}");
        assert_eq!(std::fs::read(path("a")).unwrap(), b"old a");
        assert!(!path("c").exists());
        let names = || {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(), ["a", "b"]);
        // Over old files, a commit that succeeds replaces them and keeps no link.
        std::fs::remove_dir_all(path("b")).unwrap();
        std::fs::write(path("c"), b"old c").unwrap();
        commit_together(vec![write("a", b"new a"), write("c", b"new c")]).unwrap();
        assert_eq!(std::fs::read(path("a")).unwrap(), b"new a");
        assert_eq!(std::fs::read(path("c")).unwrap(), b"new c");
        assert_eq!(names(), ["a", "c"]);
    }

    /// A symbolic link is written through (its target replaced, the link kept); stale
    /// temporary files of dead processes are removed, live ones and others' kept.
    #[cfg(unix)]
    #[test]
    fn links_are_written_through_and_stale_temps_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.bin");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink("real.bin", &link).unwrap();
        let mut f = AtomicFile::create(&link).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");

        let dead = dir.path().join(format!("{TEMP_PREFIX}999999999-abc"));
        let live = dir
            .path()
            .join(format!("{TEMP_PREFIX}{}-abc", std::process::id()));
        let other = dir.path().join(".streamnmf-notes");
        for p in [&dead, &live, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(clean_stale_temps(dir.path()), 1);
        assert!(!dead.exists() && live.exists() && other.exists());
        assert!(
            AtomicFile::create(dir.path()).is_err(),
            "a directory is refused"
        );
    }

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
