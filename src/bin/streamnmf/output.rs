//! The outputs of a run. Planned before anything is read: each is checked against the
//! inputs and the other outputs (by inode and by canonical path), so no output can
//! overwrite an input or another output. Written to temporary files beside their
//! destinations and renamed into place together at the end, so a run's outputs are
//! all-or-nothing. Standard output (`-`), FIFOs and devices are written in place, as a
//! stream; a symbolic link is written through (its target replaced, the link kept).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use streamnmf::io::{ArrowFloat, CodesWriter, TableFormat};
use streamnmf::persist::{clean_stale_temps, resolve_links, AtomicFile};
use streamnmf::pipeline::{self, PipelineOptions, PipelineReport};
use streamnmf::source::BatchSource;
use streamnmf::OnlineNmf;

/// Where one output goes.
#[derive(Debug)]
enum Target {
    /// A regular file (new or replaced), written atomically.
    File(PathBuf),
    /// Standard output.
    Stdout,
    /// A FIFO or a device, written in place.
    Stream(PathBuf),
}

/// One output: the flag that names it, the path as given, and where it goes.
#[derive(Debug)]
struct Planned {
    flag: &'static str,
    given: PathBuf,
    target: Target,
}

/// The outputs of a run, checked.
#[derive(Debug, Default)]
pub struct Plan {
    outputs: Vec<Planned>,
}

/// What identifies a file: its device and inode when it exists, and its canonical path
/// (the canonical parent joined with the name, for a file not created yet).
#[derive(Debug, PartialEq)]
struct Identity {
    inode: Option<(u64, u64)>,
    path: PathBuf,
}

fn identity(p: &Path) -> Result<Identity> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let path = match std::fs::canonicalize(p) {
        Ok(c) => c,
        Err(_) => {
            let parent = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let dir = std::fs::canonicalize(parent)
                .with_context(|| format!("{}: the directory does not exist", p.display()))?;
            dir.join(p.file_name().unwrap_or_default())
        }
    };
    Ok(Identity { inode, path })
}

impl Identity {
    fn same(&self, other: &Identity) -> bool {
        matches!((self.inode, other.inode), (Some(a), Some(b)) if a == b) || self.path == other.path
    }
}

impl Plan {
    /// Checks `outputs` (flag, path; absent ones skipped) against the input files and each
    /// other, and removes temporary files that stopped runs left beside them.
    pub fn new(inputs: &[PathBuf], outputs: &[(&'static str, Option<&Path>)]) -> Result<Self> {
        let mut plan = Plan::default();
        let mut seen: Vec<(&'static str, Identity)> = Vec::new();
        let files: Vec<PathBuf> = inputs
            .iter()
            .filter(|p| p.as_os_str() != "-")
            .cloned()
            .collect();
        // The files the run reads (directories expanded); the reader reports bad inputs.
        let files = streamnmf::io::expand_paths(&files).unwrap_or(files);
        let inputs: Vec<Identity> = files.iter().filter_map(|p| identity(p).ok()).collect();
        for &(flag, path) in outputs {
            let Some(path) = path else { continue };
            let target = if path.as_os_str() == "-" {
                if let Some(other) = plan
                    .outputs
                    .iter()
                    .find(|o| matches!(o.target, Target::Stdout))
                {
                    bail!("{flag} and {} both write to standard output", other.flag);
                }
                Target::Stdout
            } else if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
                // A FIFO, a device, or a link to one (/dev/stdout): written in place, by
                // the name given (the system follows its links).
                Target::Stream(path.to_path_buf())
            } else {
                let resolved = resolve_links(path)?;
                let id = identity(&resolved)?;
                if inputs.iter().any(|i| i.same(&id)) {
                    bail!(
                        "{flag} {}: that file is an input of this run",
                        path.display()
                    );
                }
                if let Some((other, _)) = seen.iter().find(|(_, s)| s.same(&id)) {
                    bail!("{flag} {}: the same file as {other}", path.display());
                }
                seen.push((flag, id));
                match std::fs::metadata(&resolved) {
                    Ok(m) if m.is_dir() => bail!("{flag} {}: is a directory", path.display()),
                    _ => {
                        if let Some(dir) = resolved.parent() {
                            let dir = if dir.as_os_str().is_empty() {
                                Path::new(".")
                            } else {
                                dir
                            };
                            clean_stale_temps(dir);
                        }
                        Target::File(resolved)
                    }
                }
            };
            plan.outputs.push(Planned {
                flag,
                given: path.to_path_buf(),
                target,
            });
        }
        Ok(plan)
    }

    fn get(&self, flag: &str) -> Result<&Planned> {
        self.outputs
            .iter()
            .find(|o| o.flag == flag)
            .with_context(|| format!("{flag} was not planned"))
    }

    /// Starts writing the output of `flag`.
    pub fn open(&self, flag: &str) -> Result<Sink> {
        let o = self.get(flag)?;
        let name = o.given.display().to_string();
        let out = match &o.target {
            Target::File(p) => Out::File(AtomicFile::create(p)?),
            Target::Stdout => Out::Stream(Box::new(BufWriter::new(std::io::stdout()))),
            Target::Stream(p) => Out::Stream(Box::new(BufWriter::new(
                File::options()
                    .write(true)
                    .open(p)
                    .with_context(|| format!("{}: cannot open for writing", p.display()))?,
            ))),
        };
        Ok(Sink { name, out })
    }

    /// The table format for the output of `flag`: an Arrow IPC stream for `-`, and by name.
    pub fn format(&self, flag: &str) -> Result<TableFormat> {
        Ok(TableFormat::for_path(&self.get(flag)?.given))
    }
}

enum Out {
    File(AtomicFile),
    Stream(Box<dyn Write + Send>),
}

/// An output being written.
pub struct Sink {
    name: String,
    out: Out,
}

impl Sink {
    /// The output's name as given (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.out {
            Out::File(f) => f.write(buf),
            Out::Stream(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Out::File(f) => f.flush(),
            Out::Stream(s) => s.flush(),
        }
    }
}

/// Outputs completely written, waiting to be moved into place together.
#[derive(Default)]
pub struct Finished {
    files: Vec<AtomicFile>,
}

impl Finished {
    /// Adds a completely written output (streams are flushed now; files wait).
    pub fn push(&mut self, mut sink: Sink) -> Result<()> {
        sink.flush().with_context(|| sink.name.clone())?;
        if let Out::File(f) = sink.out {
            self.files.push(f);
        }
        Ok(())
    }

    /// Moves every file into place together: all reach the disk (fsynced at once)
    /// before any is renamed, so a failure leaves every destination as it was.
    pub fn commit(self) -> Result<()> {
        Ok(streamnmf::persist::commit_together(self.files)?)
    }
}

/// An error of a pipeline whose sink names its own errors (with its output file): one
/// not placed yet is about the input, and named by it (`input`, the source's name), so
/// a row of the wrong width is not blamed on the output. An interrupt stays as it is
/// (the exit code reads it).
pub fn of_input(e: streamnmf::Error, input: Option<&str>) -> streamnmf::Error {
    match (e, input) {
        (e @ streamnmf::Error::Interrupted { .. }, _) | (e, None) => e,
        (e, Some(name)) => e.in_file(name),
    }
}

/// The codes of every row of `source` against `model`'s dictionary, written to the
/// output of `flag` as they come (`on_rows` sees each batch's row count); returns the
/// output (to commit with the others), the rows written, and the pipeline's report.
pub fn write_codes<F: ArrowFloat>(
    plan: &Plan,
    flag: &str,
    model: &OnlineNmf<F>,
    source: &mut dyn BatchSource<F>,
    popts: &PipelineOptions,
    mut on_rows: impl FnMut(u64),
) -> Result<(Sink, u64, PipelineReport)> {
    let k = model.params().rank();
    let format = plan.format(flag)?;
    let mut sink = Some(plan.open(flag)?);
    let name = sink
        .as_ref()
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let mut writer = None;
    let input = source.name();
    let report = pipeline::transform(model, source, popts, |b, w| {
        on_rows(w.nrows() as u64);
        let wr = match writer.as_mut() {
            Some(w) => w,
            None => {
                let out = sink.take().expect("opened once");
                let w = CodesWriter::<F, _>::new(out, format, k, b.ids());
                writer.insert(w.map_err(|e| e.in_file(&name))?)
            }
        };
        wr.write(w.view(), b.ids()).map_err(|e| e.in_file(&name))
    })
    .map_err(|e| of_input(e, input.as_deref()))?;
    let writer = match writer {
        Some(w) => w,
        None => CodesWriter::<F, _>::new(sink.take().expect("unused"), format, k, None)?,
    };
    let (sink, rows) = writer.finish().with_context(|| name)?;
    Ok((sink, rows, report))
}
