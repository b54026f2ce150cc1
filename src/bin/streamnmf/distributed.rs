//! `fit --distributed`: the ranks of a data-parallel fit, either the processes of an MPI
//! job (`mpirun -np N streamnmf fit … --distributed mpi`, cargo feature `mpi`) or N
//! threads of this process (`--distributed local:N`), which fit the same model bit for
//! bit. Rank 0 reads the checkpoint to resume from, writes checkpoints and every output;
//! the other ranks only learn.

use anyhow::{bail, Context, Result};
use streamnmf::distributed::{Collective, ThreadGroup};
use streamnmf::io::ArrowFloat;
use streamnmf::persist::RunState;
use streamnmf::pipeline::{fit_distributed, Checkpointing, DistributedReport, PipelineOptions};
use streamnmf::source::BatchSource;
use streamnmf::{BatchReport, OnlineNmf};

/// `--distributed` as spelled on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The processes of the MPI job this process belongs to.
    Mpi,
    /// This many threads of this process.
    Local(usize),
}

/// Ranks of `local:N` at most: each is a thread with its own model and statistics (100 000
/// of them were killed for memory).
const MAX_LOCAL_RANKS: usize = streamnmf::pipeline::MAX_SOLVERS;

/// Parses `mpi` or `local:N` (1 ≤ N ≤ [`MAX_LOCAL_RANKS`]).
pub fn parse_mode(s: &str) -> std::result::Result<Mode, String> {
    match s.split_once(':') {
        None if s == "mpi" => Ok(Mode::Mpi),
        Some(("local", n)) => match n.parse::<usize>() {
            Ok(n) if (1..=MAX_LOCAL_RANKS).contains(&n) => Ok(Mode::Local(n)),
            _ => Err(format!(
                "local:N needs a whole number of ranks 1 ≤ N ≤ {MAX_LOCAL_RANKS}, got '{n}'"
            )),
        },
        _ => Err(format!("expected 'mpi' or 'local:N', got '{s}'")),
    }
}

/// This process's rank in an MPI job (0 otherwise), for messages.
pub static RANK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The ranks this process runs: itself alone, N threads, or its place in an MPI job.
pub enum Ranks {
    /// No distributed fit.
    Single,
    /// `--distributed local:N`.
    Local(usize),
    /// `--distributed mpi`.
    #[cfg(feature = "mpi")]
    Mpi(streamnmf::distributed::MpiGroup),
}

impl Ranks {
    /// Joins the MPI job when asked to.
    pub fn new(mode: Option<Mode>) -> Result<Self> {
        Ok(match mode {
            None => Ranks::Single,
            Some(Mode::Local(n)) => Ranks::Local(n),
            #[cfg(feature = "mpi")]
            Some(Mode::Mpi) => {
                let g = streamnmf::distributed::MpiGroup::init()?;
                RANK.store(g.rank(), std::sync::atomic::Ordering::SeqCst);
                Ranks::Mpi(g)
            }
            #[cfg(not(feature = "mpi"))]
            Some(Mode::Mpi) => bail!(
                "--distributed mpi: this streamnmf was built without MPI; build it with \
                 `cargo build --release --features mpi` (README, \"Beyond one machine\")"
            ),
        })
    }

    /// This process's rank: the one that writes outputs is 0.
    pub fn rank(&self) -> usize {
        match self {
            #[cfg(feature = "mpi")]
            Ranks::Mpi(g) => g.rank(),
            _ => 0,
        }
    }

    /// Ranks in the fit (1 without `--distributed`).
    pub fn size(&self) -> usize {
        match self {
            Ranks::Single => 1,
            Ranks::Local(n) => *n,
            #[cfg(feature = "mpi")]
            Ranks::Mpi(g) => g.size(),
        }
    }

    /// Whether the fit is distributed.
    pub fn distributed(&self) -> bool {
        !matches!(self, Ranks::Single)
    }

    /// An error this rank met before the ranks could tell each other (setting up, before
    /// the first round): over MPI, every rank ends now, so none waits for this one.
    pub fn fail_alone(&self, e: &anyhow::Error) {
        #[cfg(feature = "mpi")]
        if let Ranks::Mpi(g) = self {
            // One write, so the ranks' lines do not interleave.
            let line = format!("error: rank {}: {}\n", g.rank(), crate::one_line(e));
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            g.abort(1);
        }
        let _ = e;
    }

    /// The distributed fit of `model` on `source` (this rank's, or rank 0's when the
    /// ranks are threads: `open` opens the others' copies of the input). `resume` and
    /// `checkpoints` are rank 0's; `on_batch` sees rank 0's rounds.
    #[allow(clippy::too_many_arguments)]
    pub fn fit<F: ArrowFloat>(
        &self,
        model: &mut OnlineNmf<F>,
        source: &mut dyn BatchSource<F>,
        open: impl Fn() -> Result<Box<dyn BatchSource<F>>>,
        opts: &PipelineOptions,
        resume: Option<RunState<F>>,
        checkpoints: Option<&Checkpointing>,
        on_batch: impl FnMut(&BatchReport),
    ) -> Result<DistributedReport> {
        match self {
            Ranks::Single => bail!("not a distributed fit"),
            #[cfg(feature = "mpi")]
            Ranks::Mpi(g) => Ok(fit_distributed(
                model,
                source,
                opts,
                g,
                resume,
                checkpoints,
                on_batch,
            )?),
            Ranks::Local(n) => {
                let mut group = ThreadGroup::new(*n).into_iter();
                let first = group.next().expect("at least one rank");
                // The ranks share the cores (results never depend on thread counts).
                let opts = opts
                    .clone()
                    .with_batch_threads((opts.batch_threads() / n).max(1));
                let mut others = Vec::new();
                for g in group {
                    let src = open().with_context(|| format!("rank {}", g.rank()))?;
                    others.push((g, src, model.clone()));
                }
                std::thread::scope(|s| {
                    let handles: Vec<_> = others
                        .into_iter()
                        .map(|(g, mut src, mut m)| {
                            let opts = &opts;
                            std::thread::Builder::new()
                                .name(format!("streamnmf-rank-{}", g.rank()))
                                .spawn_scoped(s, move || {
                                    fit_distributed(
                                        &mut m,
                                        src.as_mut(),
                                        opts,
                                        &g,
                                        None,
                                        None,
                                        |_| {},
                                    )
                                })
                        })
                        .collect::<std::io::Result<_>>()?;
                    let mine = fit_distributed(
                        model,
                        source,
                        &opts,
                        &first,
                        resume,
                        checkpoints,
                        on_batch,
                    );
                    // Every rank ends with the same error as rank 0, or with none.
                    for h in handles {
                        if h.join().is_err() {
                            bail!("a rank's thread panicked");
                        }
                    }
                    Ok(mine?)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("mpi"), Ok(Mode::Mpi));
        assert_eq!(parse_mode("local:3"), Ok(Mode::Local(3)));
        for bad in ["local:0", "local:", "local:x", "mpi:2", "threads", ""] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }
}
