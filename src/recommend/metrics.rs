//! Rating and ranking metrics of held-out entries, accumulated user by user.
//!
//! The ranking metrics follow the `implicit` library's `ranking_metrics_at_k` (0.7), so
//! numbers compare: for each user with held-out items (the relevant set `R`) and the top
//! `N` recommendations (training items excluded),
//! - precision@N = Σ hits / Σ min(N, |R|) over users (pooled, not a mean of ratios);
//! - MAP@N = mean over users of Σ_{hit at rank i} (hits so far / i) / min(N, |R|);
//! - NDCG@N = mean over users of Σ_{hit at rank i} 1/log₂(i + 1) divided by the ideal
//!   Σ_{i ≤ min(N, |R|)} 1/log₂(i + 1);
//! - recall@N = mean over users of hits / |R| (which `implicit` does not report).
//!
//! RMSE and MAE pool every held-out entry with a prediction.

use serde::{Deserialize, Serialize};

/// Running sums of an evaluation (see the [`recommend`](crate::recommend) module).
///
/// ```
/// use streamnmf::recommend::Evaluation;
/// let mut e = Evaluation::new(2);
/// // Recommended items 5 and 9; the user's held-out items are 9 and 4.
/// e.add_user(&[5, 9], &[4, 9]);
/// e.add_rating(3.5, 4.0);
/// let m = e.metrics();
/// assert_eq!(m.precision, 0.5);
/// assert_eq!(m.recall, 0.5);
/// assert_eq!(m.map, 0.25); // (1/2) / min(2, 2)
/// assert_eq!(m.rmse, Some(0.5));
/// ```
#[derive(Clone, Debug)]
pub struct Evaluation {
    n: usize,
    cg: Vec<f64>,
    users: u64,
    hits: f64,
    possible: f64,
    ap: f64,
    ndcg: f64,
    recall: f64,
    ratings: u64,
    squared: f64,
    absolute: f64,
}

/// What an evaluation measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// The cut-off N of the ranking metrics.
    pub n: usize,
    /// Users ranked (those with held-out items).
    pub users: u64,
    /// Precision@N (pooled).
    pub precision: f64,
    /// Recall@N (mean over users).
    pub recall: f64,
    /// NDCG@N (mean over users).
    pub ndcg: f64,
    /// MAP@N (mean over users).
    pub map: f64,
    /// Held-out entries with a predicted value.
    pub ratings: u64,
    /// Root mean squared error of the predicted values, when there are any.
    pub rmse: Option<f64>,
    /// Mean absolute error of the predicted values, when there are any.
    pub mae: Option<f64>,
}

impl Evaluation {
    /// An evaluation of the top `n` recommendations (`n` ≥ 1).
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        Self {
            n,
            cg: (0..n).map(|i| 1.0 / ((i + 2) as f64).log2()).collect(),
            users: 0,
            hits: 0.0,
            possible: 0.0,
            ap: 0.0,
            ndcg: 0.0,
            recall: 0.0,
            ratings: 0,
            squared: 0.0,
            absolute: 0.0,
        }
    }

    /// Adds a user: `recommended` best first (at most N are read), `relevant` the user's
    /// held-out items, sorted. A user without held-out items is not counted.
    pub fn add_user(&mut self, recommended: &[u32], relevant: &[u32]) {
        if relevant.is_empty() {
            return;
        }
        let cut = self.n.min(relevant.len());
        let (mut hits, mut ap, mut dcg) = (0.0, 0.0, 0.0);
        for (i, item) in recommended.iter().take(self.n).enumerate() {
            if relevant.binary_search(item).is_ok() {
                hits += 1.0;
                ap += hits / (i + 1) as f64;
                dcg += self.cg[i];
            }
        }
        let ideal: f64 = self.cg[..cut].iter().sum();
        self.users += 1;
        self.hits += hits;
        self.possible += cut as f64;
        self.ap += ap / cut as f64;
        self.ndcg += dcg / ideal;
        self.recall += hits / relevant.len() as f64;
    }

    /// Adds a held-out value and its prediction.
    pub fn add_rating(&mut self, predicted: f64, actual: f64) {
        let e = predicted - actual;
        self.ratings += 1;
        self.squared += e * e;
        self.absolute += e.abs();
    }

    /// Adds another evaluation's sums (of other users) to this one.
    pub fn merge(&mut self, other: &Evaluation) {
        self.users += other.users;
        self.hits += other.hits;
        self.possible += other.possible;
        self.ap += other.ap;
        self.ndcg += other.ndcg;
        self.recall += other.recall;
        self.ratings += other.ratings;
        self.squared += other.squared;
        self.absolute += other.absolute;
    }

    /// The metrics so far.
    pub fn metrics(&self) -> Metrics {
        let users = self.users.max(1) as f64;
        let r = self.ratings as f64;
        Metrics {
            n: self.n,
            users: self.users,
            precision: self.hits / self.possible.max(1.0),
            recall: self.recall / users,
            ndcg: self.ndcg / users,
            map: self.ap / users,
            ratings: self.ratings,
            rmse: (self.ratings > 0).then(|| (self.squared / r).sqrt()),
            mae: (self.ratings > 0).then(|| self.absolute / r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values worked by hand from `implicit`'s definitions.
    #[test]
    fn ranking_metrics_by_hand() {
        let mut e = Evaluation::new(3);
        // User A: recs [1, 2, 3], relevant {2, 3, 7, 8}: hits at ranks 2 and 3.
        e.add_user(&[1, 2, 3], &[2, 3, 7, 8]);
        // User B: recs [4, 5, 6], relevant {4}: a hit at rank 1.
        e.add_user(&[4, 5, 6], &[4]);
        // User C: no held-out items: ignored.
        e.add_user(&[1, 2, 3], &[]);
        let m = e.metrics();
        assert_eq!(m.users, 2);
        // Hits 2 + 1 over min(3, 4) + min(3, 1).
        assert!((m.precision - 3.0 / 4.0).abs() < 1e-15);
        // AP: A = (1/2 + 2/3) / 3, B = 1 / 1.
        let map = ((0.5 + 2.0 / 3.0) / 3.0 + 1.0) / 2.0;
        assert!((m.map - map).abs() < 1e-15);
        let cg = |i: usize| 1.0 / ((i + 2) as f64).log2();
        let ndcg_a = (cg(1) + cg(2)) / (cg(0) + cg(1) + cg(2));
        assert!((m.ndcg - (ndcg_a + 1.0) / 2.0).abs() < 1e-15);
        assert!((m.recall - (2.0 / 4.0 + 1.0) / 2.0).abs() < 1e-15);
        assert_eq!(m.rmse, None);
    }

    #[test]
    fn merged_evaluations_add_up() {
        let (mut a, mut b, mut all) = (Evaluation::new(2), Evaluation::new(2), Evaluation::new(2));
        a.add_user(&[1, 2], &[2]);
        b.add_user(&[3, 4], &[3, 9]);
        a.add_rating(1.0, 2.0);
        b.add_rating(4.0, 2.0);
        all.add_user(&[1, 2], &[2]);
        all.add_user(&[3, 4], &[3, 9]);
        all.add_rating(1.0, 2.0);
        all.add_rating(4.0, 2.0);
        a.merge(&b);
        assert_eq!(a.metrics(), all.metrics());
        assert_eq!(all.metrics().mae, Some(1.5));
    }
}
