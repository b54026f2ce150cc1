//! `streamnmf fit`'s flags: what to learn from, the model's settings, checkpoints, the
//! outputs and how the run reports.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use streamnmf::Loss;

use crate::distributed::{parse_mode, Mode};
use crate::input::InputArgs;

/// Element type of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FloatType {
    /// Single precision (half the memory, faster).
    F32,
    /// Double precision.
    F64,
}

/// Initialization, as spelled on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum InitArg {
    /// NNDSVD for HALS (Frobenius), NNDSVDa for multiplicative updates.
    Auto,
    Random,
    Nndsvd,
    Nndsvda,
    Nndsvdar,
}

/// What an unstored entry (or a null or NaN in dense input) means, on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UnobservedArg {
    /// A zero: the loss covers every entry (classic NMF).
    Zero,
    /// Missing: the loss covers the stored entries only (explicit ratings, missing data).
    Missing,
    /// Implicit feedback: stored entries are interactions, weighted by confidence.
    Implicit,
}

/// How the confidence of implicit feedback grows with the stored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConfidenceArg {
    /// 1 + alpha · value.
    Linear,
    /// 1 + alpha · ln(1 + value).
    Log,
}

/// How H is written by `--components-out`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ComponentsFormat {
    /// Wide up to 1000 features, long beyond.
    Auto,
    /// One row per component, one column per feature.
    Wide,
    /// One row per (component, feature, value).
    Long,
}

/// Options of `fit`. The model's settings (rank, loss, forget, decay, regularization,
/// init, seed) default as shown for a new model, and to the saved model's or the
/// checkpoint's with `--model` or `--resume`, where a flag that contradicts them is an
/// error.
#[derive(Args, Debug)]
pub struct FitArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Rank k: number of components (taken from the model with --model or --resume).
    #[arg(long, short = 'k', required_unless_present_any = ["model", "resume", "components"])]
    pub rank: Option<usize>,
    /// Start from these atoms: H as Parquet or Arrow IPC (wide or long, as
    /// --components-out writes it) or a model file. With -k above their count, the
    /// other atoms are learned from the data.
    #[arg(long, conflicts_with_all = ["model", "resume", "init"])]
    pub components: Option<PathBuf>,
    /// Atoms this fit never changes: indices and ranges (`0..16,20`) or source labels
    /// (`speech`). Semi-supervised NMF: fixed atoms from clean sources, free ones learn
    /// the rest.
    #[arg(long)]
    pub fixed_components: Option<String>,
    /// Floor for the data under KL, Itakura-Saito and other β < 2: smaller values are
    /// raised to it (digital silence under IS). In the data's units [default: none].
    #[arg(long, allow_hyphen_values = true)]
    pub epsilon: Option<f64>,
    /// Source label of the atoms this fit learns, kept in the model for `compose` and
    /// `separate` [default: learned, when other atoms are labelled].
    #[arg(long)]
    pub label: Option<String>,
    /// Loss: fro, kl, is or beta=X [default: fro].
    #[arg(long)]
    pub loss: Option<Loss>,
    /// Passes over the input. Without this flag a fit of files makes up to 50 and stops
    /// once converged (see --pass-tol); with it, exactly this many unless --pass-tol is
    /// also given. Default 1 for a stream, 10 for a distributed fit.
    #[arg(long, value_parser = passes)]
    pub epochs: Option<usize>,
    /// Forget factor in (0, 1]: statistics decay by this per batch [default: 1, exact sums].
    #[arg(long, allow_hyphen_values = true)]
    pub forget: Option<f64>,
    /// Down-weight past batches: after t rows, the batch ending at row s weighs
    /// (s/t)^DECAY (default 8 for fro, 32 for other losses; 0 weighs all alike). Without
    /// it, a Frobenius fit that stops by itself (no --epochs) starts from shorter windows
    /// (see the README's window schedule); with it, this decay holds every pass.
    #[arg(long, allow_hyphen_values = true)]
    pub decay: Option<f64>,
    /// Initialization of H from the first batch [default: auto].
    #[arg(long, value_enum)]
    pub init: Option<InitArg>,
    /// Inner iterations of the code solver per batch, at most (default 200). Lower values
    /// trade code accuracy for speed. The codes the dictionary learns from stop at 20
    /// under a beta below 1 (Itakura-Saito) and at 10 sweeps under Frobenius; codes written out
    /// keep this cap.
    #[arg(long)]
    pub code_max_iter: Option<usize>,
    /// Relative change of the codes at which the code solver stops (default 1e-4).
    #[arg(long, allow_hyphen_values = true)]
    pub code_tol: Option<f64>,
    /// A multi-pass fit stops when a pass improves on the best loss so far of a fixed
    /// sample of about 2048 rows, scored at the end of each pass, by less than this
    /// fraction, after a pass that gained less than 4× it (two passes in a row above the
    /// best stop it too; a loss that went up within the last three passes is judged on
    /// their trend) (default 1e-3 without --epochs, 0 with it: every pass).
    #[arg(long, allow_hyphen_values = true)]
    pub pass_tol: Option<f64>,
    /// Seed of every random choice [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads solving each batch, on fixed row chunks (default: all cores, shared by the
    /// solvers). Never changes the result.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Batches solved at once. Above 1, batch t is solved against an older dictionary
    /// (see --staleness), which changes the result.
    #[arg(long, default_value_t = 1)]
    pub solvers: usize,
    /// Staleness s: batch t is solved against dictionary version t - s (default: solvers;
    /// with --resume, the checkpoint's).
    #[arg(long)]
    pub staleness: Option<usize>,
    /// Batches buffered between threads (per queue).
    #[arg(long, default_value_t = 2)]
    pub queue_depth: usize,
    /// What an unstored entry means [default: zero]: `missing` fits the stored entries
    /// only (ratings; nulls and NaN in dense input are missing), `implicit` reads them as
    /// interactions with confidence (Hu, Koren & Volinsky 2008).
    #[arg(long, value_enum)]
    pub unobserved: Option<UnobservedArg>,
    /// Implicit feedback: confidence per unit of the stored value [default: 1].
    #[arg(long, allow_hyphen_values = true)]
    pub confidence_alpha: Option<f64>,
    /// Implicit feedback: how confidence grows with the value [default: linear].
    #[arg(long, value_enum)]
    pub confidence: Option<ConfidenceArg>,
    /// Regularization of W (scikit-learn's convention; with --unobserved missing it
    /// counts observed entries, as ALS-WR) [default: 0; 0.1 with --unobserved missing].
    #[arg(long, allow_hyphen_values = true)]
    pub alpha_w: Option<f64>,
    /// Regularization of H [default: 0; 0.1 with --unobserved missing].
    #[arg(long, allow_hyphen_values = true)]
    pub alpha_h: Option<f64>,
    /// Share of L1 in the regularization [default: 0].
    #[arg(long, allow_hyphen_values = true)]
    pub l1_ratio: Option<f64>,
    /// Element type [default: f32; a saved model's or checkpoint's own].
    #[arg(long, value_enum)]
    pub float: Option<FloatType>,
    /// Model file to write (`-`: standard output).
    #[arg(long, default_value = "model.snmf")]
    pub out: PathBuf,
    /// Also write H: Parquet, or an Arrow IPC stream for `-` and `.arrows` names.
    #[arg(long)]
    pub components_out: Option<PathBuf>,
    /// Layout of --components-out.
    #[arg(long, value_enum, default_value = "auto")]
    pub components_format: ComponentsFormat,
    /// Also write the codes W of every input row: Parquet, or an Arrow IPC stream for `-`
    /// and `.arrows` names. Files: one more pass, against the final dictionary. A stream
    /// on stdin: each batch's codes as it is learned from, against the dictionary it was
    /// solved with (online activations), flushed batch by batch.
    #[arg(long)]
    pub codes_out: Option<PathBuf>,
    /// Keep learning from a saved model (its parameters, statistics and forget factor).
    #[arg(long, conflicts_with = "resume")]
    pub model: Option<PathBuf>,
    /// Write checkpoints into this directory (held by this run while it lasts).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Checkpoint every N batches.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Checkpoint every T seconds (a positive number) [default with a checkpoint
    /// directory and no --checkpoint-every: 300].
    #[arg(long, value_parser = seconds)]
    pub checkpoint_seconds: Option<std::time::Duration>,
    /// Checkpoints kept (the newest).
    #[arg(long, default_value_t = 3)]
    pub keep_checkpoints: usize,
    /// Continue a run from the newest valid checkpoint in this directory (same input and
    /// settings); checkpoints continue there unless --checkpoint-dir says otherwise.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// A data-parallel fit: `mpi` under `mpirun -np N` (each process a rank; a build with
    /// `--features mpi`), or `local:N` (N ranks as threads of this process, the same
    /// model bit for bit). Batch t of the input goes to rank t mod N; each round solves
    /// one batch per rank against the same H and updates H once from their summed
    /// statistics. Rank 0 reads --resume and writes checkpoints and outputs.
    #[arg(long, value_parser = parse_mode)]
    pub distributed: Option<Mode>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A count of passes: a whole number of at least 1 (`--epochs` of every command).
pub fn passes(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("a run makes at least 1 pass".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number of passes")),
    }
}

/// A positive, finite number of seconds.
fn seconds(s: &str) -> std::result::Result<std::time::Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("must be a positive number of seconds, got {s}"));
    }
    std::time::Duration::try_from_secs_f64(v).map_err(|e| format!("{s}: {e}"))
}
