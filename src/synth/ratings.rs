//! Planted user × item feedback, shaped like real recommender data: a non-negative
//! low-rank preference matrix `R* = W* H*`, items drawn with a popularity skew (Zipf),
//! entries observed missing-not-at-random (the better an item suits a user, the likelier
//! it is rated or consumed), and a held-out share of the observed entries for evaluation.
//!
//! Sampling is per user (expected `density · items` draws from the popularity
//! distribution, each kept with a probability that grows with the user's preference), so
//! a data set costs `O(users · draws · log items)`, never `O(users · items)`.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};

use crate::matrix::{CsrBuilder, CsrMatrix};

/// What the stored values mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// Explicit ratings: `R*` plus Gaussian noise, floored at 0.
    Ratings,
    /// Implicit feedback: interaction counts, `1 + Poisson(R*)`.
    Counts,
}

/// A planted feedback data set.
#[derive(Clone, Debug)]
pub struct Ratings {
    /// The training entries (users × items; stored = observed).
    pub train: CsrMatrix<f64>,
    /// Held-out entries `(user, item, value)`, sorted by user then item.
    pub test: Vec<(usize, usize, f64)>,
    /// True user factors (users × k, or k + 1 with a rating range).
    pub w: Array2<f64>,
    /// True item factors (k × items, or k + 1), so that `w · h` is the noiseless rating.
    pub h: Array2<f64>,
}

/// Recipe for a planted feedback data set.
///
/// ```
/// use streamnmf::synth::RatingsSpec;
/// let d = RatingsSpec::new(500, 200, 4).density(0.05).seed(3).generate();
/// assert_eq!((d.train.nrows(), d.train.ncols()), (500, 200));
/// let observed = d.train.nnz() + d.test.len();
/// assert!(observed > 2_000 && observed < 8_000, "{observed}");
/// assert!(d.test.iter().all(|&(_, _, v)| v >= 0.0));
/// ```
#[derive(Clone, Debug)]
pub struct RatingsSpec {
    users: usize,
    items: usize,
    rank: usize,
    density: f64,
    zipf: f64,
    mnar: f64,
    noise: f64,
    mean: f64,
    test_share: f64,
    feedback: Feedback,
    range: Option<(f64, f64)>,
    peaks: i32,
    seed: u64,
}

impl RatingsSpec {
    /// `users × items` feedback of rank `rank`. Defaults: 2 % observed, popularity
    /// exponent 0.8, MNAR exponent 1, explicit ratings with mean 3.5 and noise 0.5 (not
    /// clamped), 10 % held out.
    pub fn new(users: usize, items: usize, rank: usize) -> Self {
        Self {
            users,
            items,
            rank,
            density: 0.02,
            zipf: 0.8,
            mnar: 1.0,
            noise: 0.5,
            mean: 3.5,
            test_share: 0.1,
            feedback: Feedback::Ratings,
            range: None,
            peaks: 1,
            seed: 0,
        }
    }
    /// Expected share of entries observed (train and test together).
    pub fn density(mut self, d: f64) -> Self {
        self.density = d;
        self
    }
    /// Popularity skew: item `j` (0-based, most popular first) is drawn with weight
    /// `(j + 1)^-zipf`; 0 draws items uniformly.
    pub fn popularity(mut self, zipf: f64) -> Self {
        self.zipf = zipf;
        self
    }
    /// Missing-not-at-random strength: an entry is kept with probability
    /// `(R*_ij / max R*)^mnar`; 0 observes at random.
    pub fn mnar(mut self, exponent: f64) -> Self {
        self.mnar = exponent;
        self
    }
    /// Standard deviation of the rating noise.
    pub fn noise(mut self, sigma: f64) -> Self {
        self.noise = sigma;
        self
    }
    /// Mean of the noiseless ratings `R*`.
    pub fn mean(mut self, mean: f64) -> Self {
        self.mean = mean;
        self
    }
    /// Share of the observed entries held out.
    pub fn test_share(mut self, share: f64) -> Self {
        self.test_share = share;
        self
    }
    /// Explicit ratings or implicit counts.
    pub fn feedback(mut self, f: Feedback) -> Self {
        self.feedback = f;
        self
    }
    /// Clamps ratings to `lo..=hi` (a rating scale, e.g. 1 to 5 stars).
    pub fn range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }
    /// How peaked tastes are: factor entries are uniform to this power (default 1). At
    /// 4, users and items each have one or two strong tastes, and personal taste beats
    /// popularity by far.
    pub fn peaks(mut self, power: i32) -> Self {
        self.peaks = power.max(1);
        self
    }
    /// Random seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The true factors (entries uniform to the power [`peaks`](Self::peaks)), scaled so that `R*` has the requested mean.
    /// With a rating range `lo..=hi`, `R* = lo + c · W H`: a constant component is
    /// added (so the planted rank is `rank + 1`), and the rest scaled to the mean.
    fn factors(&self, rng: &mut ChaCha8Rng) -> (Array2<f64>, Array2<f64>) {
        let k = self.rank;
        let w =
            Array2::from_shape_simple_fn((self.users, k), || rng.random::<f64>().powi(self.peaks));
        let mut h =
            Array2::from_shape_simple_fn((k, self.items), || rng.random::<f64>().powi(self.peaks));
        // Every item rated by someone: no all-zero columns of H*.
        for mut col in h.columns_mut() {
            if col.iter().all(|&v| v < 1e-3) {
                let j = rng.random_range(0..k);
                col[j] = 0.5 + rng.random::<f64>() * 0.5;
            }
        }
        let (wm, hm) = (w.mean_axis(ndarray::Axis(0)), h.mean_axis(ndarray::Axis(1)));
        let mean = match (wm, hm) {
            (Some(a), Some(b)) => a.dot(&b),
            _ => 1.0,
        };
        let lo = self.range.map_or(0.0, |r| r.0);
        let c = ((self.mean - lo).max(0.0) / mean.max(f64::MIN_POSITIVE)).sqrt();
        let (w, h) = (w * c, h * c);
        if self.range.is_none() {
            return (w, h);
        }
        let s = lo.max(0.0).sqrt();
        let w = ndarray::concatenate![ndarray::Axis(1), w, Array2::from_elem((self.users, 1), s)];
        let h = ndarray::concatenate![ndarray::Axis(0), h, Array2::from_elem((1, self.items), s)];
        (w, h)
    }

    /// Draws the data set.
    pub fn generate(&self) -> Ratings {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (w, h) = self.factors(&mut rng);
        let (p, k) = (self.items, w.ncols());
        // Popularity: a random permutation of items gets the Zipf weights.
        let mut order: Vec<usize> = (0..p).collect();
        for i in (1..p).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut cdf = Vec::with_capacity(p);
        let mut total = 0.0;
        for r in 0..p {
            total += (r as f64 + 1.0).powf(-self.zipf);
            cdf.push(total);
        }
        let ht = h.t().as_standard_layout().into_owned();
        let rating = |i: usize, j: usize| -> f64 { w.row(i).dot(&ht.row(j)) };
        // A bound on the largest rating, for the MNAR acceptance probability.
        let w_top: Vec<f64> = (0..k)
            .map(|a| w.column(a).fold(0.0f64, |m, &v| m.max(v)))
            .collect();
        let r_max = ht
            .rows()
            .into_iter()
            .map(|hj| hj.iter().zip(&w_top).map(|(a, b)| a * b).sum::<f64>())
            .fold(f64::MIN_POSITIVE, f64::max);
        let draws = Poisson::new((self.density * p as f64).max(1e-9)).expect("positive mean");
        let noise = Normal::new(0.0, self.noise.max(0.0)).expect("finite sigma");
        let mut train = CsrBuilder::new(p);
        let mut test = Vec::new();
        let mut row: Vec<(u32, f64)> = Vec::new();
        let (mut cols, mut vals) = (Vec::new(), Vec::new());
        for i in 0..self.users {
            row.clear();
            // Draws with replacement until the target count is reached (or the tries run
            // out: a user who likes nothing may rate less).
            let want = (draws.sample(&mut rng) as usize).min(p);
            let mut seen = std::collections::HashSet::with_capacity(want);
            let mut tries = 0;
            while seen.len() < want && tries < 50 * want.max(1) {
                tries += 1;
                let u = rng.random::<f64>() * total;
                let j = order[cdf.partition_point(|&c| c < u).min(p - 1)];
                let r = rating(i, j);
                if self.mnar > 0.0 && rng.random::<f64>() > (r / r_max).powf(self.mnar) {
                    continue;
                }
                if !seen.insert(j) {
                    continue;
                }
                let value = match self.feedback {
                    Feedback::Ratings => {
                        let (lo, hi) = self.range.unwrap_or((0.0, f64::INFINITY));
                        (r + noise.sample(&mut rng)).clamp(lo, hi)
                    }
                    Feedback::Counts => {
                        1.0 + Poisson::new(r.max(1e-9)).map_or(0.0, |d| d.sample(&mut rng))
                    }
                };
                if rng.random::<f64>() < self.test_share {
                    test.push((i, j, value));
                } else {
                    row.push((j as u32, value));
                }
            }
            row.sort_by_key(|e| e.0);
            cols.clear();
            vals.clear();
            cols.extend(row.iter().map(|e| e.0));
            vals.extend(row.iter().map(|e| e.1));
            train.push_row(&cols, &vals);
        }
        test.sort_by_key(|e| (e.0, e.1));
        Ratings {
            train: train.finish(),
            test,
            w,
            h,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Popular items are rated more, and with MNAR the observed ratings are higher than
    /// the ratings of random entries.
    #[test]
    fn popularity_and_mnar_show() {
        let spec = RatingsSpec::new(2000, 300, 4)
            .density(0.05)
            .noise(0.0)
            .seed(1);
        let d = spec.clone().mnar(2.0).generate();
        let mut counts = vec![0usize; 300];
        let parts = d.train.view().parts();
        for &j in parts.indices {
            counts[j as usize] += 1;
        }
        counts.sort_unstable();
        assert!(
            counts[299] > 10 * counts[150].max(1),
            "{:?}",
            &counts[290..]
        );
        let observed: f64 = parts.data.iter().sum::<f64>() / parts.data.len() as f64;
        let all = d.w.dot(&d.h).mean().unwrap();
        assert!(observed > 1.1 * all, "{observed} vs {all}");
        assert!((all - 3.5).abs() < 0.5, "{all}");
    }
}
