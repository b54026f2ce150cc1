//! A recommender's life with streamnmf, in memory: star ratings with a planted low-rank
//! structure, a popularity skew and missing-not-at-random observations; fit on the launch
//! catalogue, evaluate on held-out ratings, then keep learning as new users arrive and
//! rate new items (the model grows), evaluate again, and recommend.
//!
//! Run: `cargo run --release --example recommender`
//! (the same steps on Parquet files: `streamnmf fit --unobserved missing --item-ids`,
//! `streamnmf evaluate`, `streamnmf recommend`; see the README).

use std::collections::HashMap;

use streamnmf::recommend::{top_n, Evaluation};
use streamnmf::synth::RatingsSpec;
use streamnmf::{CsrMatrix, MatRef, NmfParams, OnlineNmf, Unobserved};

/// Rows `users` of `x`, keeping the first `items` columns only.
fn part(x: &CsrMatrix<f64>, users: std::ops::Range<usize>, items: usize) -> CsrMatrix<f64> {
    let (mut indptr, mut idx, mut val) = (vec![0], Vec::new(), Vec::new());
    for i in users {
        let (cols, vals) = x.view().row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            if (j as usize) < items {
                idx.push(j);
                val.push(v);
            }
        }
        indptr.push(idx.len());
    }
    CsrMatrix::try_new(items, indptr, idx, val).expect("rows of a valid matrix")
}

/// RMSE and ranking metrics of the held-out ratings of `users` (row `i` of `history` is
/// user `users.start + i`), with the items known to the model.
fn evaluate(
    model: &OnlineNmf<f64>,
    history: &CsrMatrix<f64>,
    users: std::ops::Range<usize>,
    test: &[(usize, usize, f64)],
) -> streamnmf::recommend::Metrics {
    let h = model.components().expect("fitted");
    let w = model.transform(history).expect("valid history");
    let recs = top_n(w.view(), h, Some(history.view()), 10, 2);
    let mut held: HashMap<usize, Vec<(u32, f64)>> = HashMap::new();
    for &(u, j, r) in test {
        if users.contains(&u) && j < h.ncols() {
            held.entry(u).or_default().push((j as u32, r));
        }
    }
    // The baseline every recommender must beat: the most rated items.
    let mut count = vec![0.0; h.ncols()];
    for i in 0..history.nrows() {
        for &j in history.view().row(i).0 {
            count[j as usize] += 1.0;
        }
    }
    let ones = ndarray::Array2::from_elem((history.nrows(), 1), 1.0);
    let popular = ndarray::Array2::from_shape_vec((1, count.len()), count).expect("1 x p");
    let pop = top_n(ones.view(), popular.view(), Some(history.view()), 10, 2);
    let mut baseline = Evaluation::new(10);
    let mut eval = Evaluation::new(10);
    for (i, u) in users.enumerate() {
        let Some(list) = held.get(&u) else { continue };
        for &(j, r) in list {
            eval.add_rating(w.row(i).dot(&h.column(j as usize)), r);
        }
        // Relevant: the held-out ratings of 4 stars and up.
        let mut liked: Vec<u32> = list.iter().filter(|e| e.1 >= 4.0).map(|e| e.0).collect();
        liked.sort_unstable();
        let items: Vec<u32> = recs[i].iter().map(|r| r.0).collect();
        eval.add_user(&items, &liked);
        let items: Vec<u32> = pop[i].iter().map(|r| r.0).collect();
        baseline.add_user(&items, &liked);
    }
    let b = baseline.metrics();
    println!(
        "  (the most-rated items: P@10 {:.3}, NDCG@10 {:.3})",
        b.precision, b.ndcg
    );
    eval.metrics()
}

fn main() -> streamnmf::Result<()> {
    let (users, items, launch_users, launch_items) = (6000, 900, 4500, 750);
    let d = RatingsSpec::new(users, items, 6)
        .density(0.05)
        .noise(0.5)
        .range(1.0, 5.0)
        .peaks(3)
        .seed(2026)
        .generate();
    println!(
        "{users} users x {items} items, {} training and {} held-out ratings",
        d.train.nnz(),
        d.test.len()
    );

    // Two models of the same ratings: the observed-only loss predicts ratings (what a
    // user would give an item); implicit feedback, which also learns from what users did
    // not rate, ranks items (what a user will pick). Rating models rank poorly: which
    // items get rated at all says more than the stars.
    let ratings = NmfParams::new(7).unobserved(Unobserved::Missing);
    let ranking = NmfParams::new(7).unobserved(Unobserved::Implicit {
        alpha: 1.0,
        log: false,
    });
    let launch = part(&d.train, 0..launch_users, launch_items);
    let later = part(&d.train, launch_users..users, items);
    for (name, params, rated) in [
        ("ratings (observed-only)", ratings, true),
        ("ranking (implicit)", ranking, false),
    ] {
        println!("\n{name}");
        // Launch: the first users, rating the launch catalogue.
        let mut model = OnlineNmf::<f64>::new(params.max_passes(15).seed(1).check()?);
        let t = std::time::Instant::now();
        model.fit(&launch)?;
        let m = evaluate(&model, &launch, 0..launch_users, &d.test);
        // An implicit model's scores are preferences, not stars: no RMSE.
        let rmse = |m: &streamnmf::recommend::Metrics| match (rated, m.rmse) {
            (true, Some(r)) => format!("RMSE {r:.3}, "),
            _ => String::new(),
        };
        println!(
            "  launch ({launch_items} items, {:.2} s): {}P@10 {:.3}, NDCG@10 {:.3}",
            t.elapsed().as_secs_f64(),
            rmse(&m),
            m.precision,
            m.ndcg
        );

        // Later: new users arrive and rate new items too. The model grows to the new
        // items and keeps its statistics (no refit from scratch).
        let t = std::time::Instant::now();
        for _ in 0..8 {
            for s in (0..later.nrows()).step_by(500) {
                let e = (s + 500).min(later.nrows());
                model.partial_fit(MatRef::Csr(later.view().slice_rows(s..e)))?;
            }
        }
        let m = evaluate(&model, &later, launch_users..users, &d.test);
        println!(
            "  update ({} items, {:.2} s), new users: {}P@10 {:.3}, NDCG@10 {:.3}",
            model.components()?.ncols(),
            t.elapsed().as_secs_f64(),
            rmse(&m),
            m.precision,
            m.ndcg
        );

        // Recommendations for a few new users (the items they rated excluded).
        let w = model.transform(&later)?;
        let recs = top_n(w.view(), model.components()?, Some(later.view()), 5, 2);
        for (i, r) in recs.iter().enumerate().take(2) {
            let list: Vec<String> = r
                .iter()
                .map(|(j, s)| {
                    let new = if (*j as usize) >= launch_items {
                        "*"
                    } else {
                        ""
                    };
                    format!("{j}{new} ({s:.2})")
                })
                .collect();
            println!("  user {}: {}", launch_users + i, list.join(", "));
        }
    }
    println!("\n(* items added after launch; scores are predicted ratings, or preferences)");
    Ok(())
}
