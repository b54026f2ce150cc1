//! `streamnmf evaluate`: rating and ranking metrics of a model on held-out entries. The
//! users' codes are folded in from their history (H fixed); each held-out entry is
//! predicted, and the top N recommendations (history excluded) are ranked against the
//! held-out items, with the definitions of `implicit`'s `ranking_metrics_at_k`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use streamnmf::io::ArrowFloat;
use streamnmf::recommend::{top_n, Evaluation};
use streamnmf::{persist, MatRef, RowIds, Unobserved};

use crate::fit::pipeline_options;
use crate::input::InputArgs;

/// Options of `evaluate`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// The users' history (the inputs, read with the layout flags): their codes come from
    /// it and its items are never recommended.
    #[command(flatten)]
    pub input: InputArgs,
    /// Held-out entries, in the same layout as the history, with the same user ids.
    #[arg(long)]
    pub test: PathBuf,
    /// Cut-off N of the ranking metrics.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub top: usize,
    /// A held-out entry counts as relevant for ranking from this value up (default: all).
    #[arg(long)]
    pub relevant_min: Option<f64>,
    /// Threads (default: all cores). Never changes the result.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the metrics as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: EvaluateArgs) -> Result<()> {
    let (bytes, f64) = crate::read_model(&a.model)?;
    if f64 {
        evaluate::<f64>(a, &bytes)
    } else {
        evaluate::<f32>(a, &bytes)
    }
}

/// A user id as a map key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Int(i64),
    Str(String),
}

fn keys(ids: &RowIds) -> Vec<Key> {
    match ids {
        RowIds::Int64(v) => v.iter().map(|&i| Key::Int(i)).collect(),
        RowIds::Utf8(v) => v.iter().map(|s| Key::Str(s.clone())).collect(),
    }
}

fn evaluate<F: ArrowFloat>(a: EvaluateArgs, bytes: &[u8]) -> Result<()> {
    if a.top == 0 {
        bail!("--top must be at least 1");
    }
    let (model, meta) = persist::decode::<F>(bytes).map_err(|e| e.in_file(&a.model))?;
    let h = model.components()?.to_owned();
    let p = h.ncols();
    let batch = a.input.batch_size.unwrap_or(model.params().batch_size());
    let missing = model.params().unobserved() == Unobserved::Missing;
    let options = || -> Result<_> {
        let o = a.input.options(batch, 0)?.no_shuffle();
        a.input
            .model_options(o, &meta.feature_names, false, missing)
    };

    // The held-out entries, by user (known items only: others cannot be recommended).
    let mut test_input = a.input.clone();
    test_input.inputs = vec![a.test.clone()];
    let mut test_source = test_input.open::<F>(options()?)?;
    let mut held: HashMap<Key, Vec<(u32, f64)>> = HashMap::new();
    let (mut test_entries, mut beyond) = (0u64, 0u64);
    let mut iter = test_source.epoch(0)?;
    for b in iter.by_ref() {
        let b = b.with_context(|| a.test.display().to_string())?;
        let Some(ids) = b.ids() else {
            bail!(
                "{}: held-out rows need user ids (a triplet layout or --id-column)",
                a.test.display()
            );
        };
        let x = b.view();
        for (i, key) in keys(ids).into_iter().enumerate() {
            let list = held.entry(key).or_default();
            let mut add = |j: usize, v: f64| {
                test_entries += 1;
                if j < p {
                    list.push((j as u32, v));
                } else {
                    beyond += 1;
                }
            };
            match x {
                // Stored entries are the held-out ones (a stored zero is a zero rating).
                MatRef::Csr(c) => {
                    let (cols, vals) = c.row(i);
                    for (&j, &v) in cols.iter().zip(vals) {
                        add(j as usize, v.as_f64());
                    }
                }
                MatRef::Dense(d) => {
                    for (j, &v) in d.row(i).iter().enumerate() {
                        let v = v.as_f64();
                        if v != 0.0 && !v.is_nan() {
                            add(j, v);
                        }
                    }
                }
            }
        }
    }
    drop(iter);
    let unknown = beyond + test_source.unknown_entries();
    for list in held.values_mut() {
        list.sort_by_key(|e| e.0);
    }

    // The history, streamed: codes, predictions and rankings.
    let mut source = a.input.open::<F>(options()?)?;
    let popts = pipeline_options(a.threads, 1, None, 2, 1);
    let threads = popts.batch_threads();
    let mut eval = Evaluation::new(a.top);
    let mut no_ids = false;
    let report = streamnmf::pipeline::transform(&model, source.as_mut(), &popts, |b, w| {
        let Some(ids) = b.ids() else {
            no_ids = true;
            return Err(streamnmf::Error::Schema(
                "history rows need user ids (a triplet layout or --id-column)".into(),
            ));
        };
        let seen = match b.view() {
            MatRef::Csr(c) => Some(c),
            MatRef::Dense(_) => None,
        };
        let recs = top_n(w.view(), h.view(), seen, a.top, threads);
        for (i, key) in keys(ids).into_iter().enumerate() {
            let Some(list) = held.remove(&key) else {
                continue;
            };
            for &(j, v) in &list {
                let pred: f64 = w
                    .row(i)
                    .iter()
                    .zip(h.column(j as usize))
                    .map(|(a, b)| a.as_f64() * b.as_f64())
                    .sum();
                eval.add_rating(pred, v);
            }
            let relevant: Vec<u32> = list
                .iter()
                .filter(|e| a.relevant_min.is_none_or(|m| e.1 >= m))
                .map(|e| e.0)
                .collect();
            let items: Vec<u32> = recs[i].iter().map(|r| r.0).collect();
            eval.add_user(&items, &relevant);
        }
        Ok(())
    });
    if no_ids {
        bail!(
            "{}: history rows need user ids (a triplet layout or --id-column)",
            a.input.inputs[0].display()
        );
    }
    report?;
    let cold = held.len();
    let m = eval.metrics();
    // No user ranked: the ranking metrics are undefined, not 0 (as RMSE without ratings).
    let ranked = m.users > 0;
    if !ranked && m.ratings == 0 {
        tracing::warn!(
            "no held-out entry could be scored ({test_entries} in the test set): every one is \
             of an unknown item or of a user without history in the inputs"
        );
    }
    if a.json {
        let mut v = serde_json::to_value(&m)?;
        if !ranked {
            for key in ["precision", "recall", "ndcg", "map"] {
                v[key] = serde_json::Value::Null;
            }
        }
        v["test_entries"] = json!(test_entries);
        v["unknown_item_entries"] = json!(unknown);
        v["users_without_history"] = json!(cold);
        crate::out(serde_json::to_string_pretty(&v)?)?;
    } else {
        let opt = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.4}"));
        crate::out("metric        value")?;
        crate::out(format!("RMSE          {}", opt(m.rmse)))?;
        crate::out(format!("MAE           {}", opt(m.mae)))?;
        let rank = |x: f64| opt(ranked.then_some(x));
        crate::out(format!("P@{:<11} {}", m.n, rank(m.precision)))?;
        crate::out(format!("recall@{:<6} {}", m.n, rank(m.recall)))?;
        crate::out(format!("NDCG@{:<8} {}", m.n, rank(m.ndcg)))?;
        crate::out(format!("MAP@{:<9} {}", m.n, rank(m.map)))?;
        crate::out(format!(
            "{} users ranked, {} held-out entries rated; {} entries of unknown items, {} users without history (not scored)",
            m.users, m.ratings, unknown, cold
        ))?;
    }
    Ok(())
}
