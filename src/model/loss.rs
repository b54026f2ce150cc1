//! Losses: the beta-divergence family, with Frobenius (beta = 2), generalized
//! Kullback-Leibler (beta = 1) and Itakura-Saito (beta = 0) as named cases.
//!
//! Values are the divergence summed over entries, `D(X | WH) = Σ d(x_ij | v_ij)`, with
//! `d_2(x|v) = ½(x − v)²`, `d_1(x|v) = x log(x/v) − x + v`, `d_0(x|v) = x/v − log(x/v) − 1`
//! and `d_β(x|v) = (x^β + (β−1) v^β − β x v^(β−1)) / (β(β−1))` otherwise (Févotte & Idier
//! 2011). Regularization terms are not included. All sums are accumulated in f64.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::float::Float;
use crate::linalg::gemm::product;
pub use crate::linalg::CLIP;
use crate::matrix::MatRef;

/// Which divergence the model minimizes.
///
/// Parses from the CLI spellings `fro`, `kl`, `is` and `beta=X`:
///
/// ```
/// use streamnmf::Loss;
/// assert_eq!("kl".parse::<Loss>().unwrap(), Loss::KullbackLeibler);
/// assert_eq!("beta=1.5".parse::<Loss>().unwrap().beta(), 1.5);
/// assert_eq!("beta=2".parse::<Loss>().unwrap(), Loss::Frobenius);
/// assert!("cosine".parse::<Loss>().is_err());
/// ```
///
/// Sparse inputs are never densified for Frobenius and KL. Other betas need `(WH)^(β−1)`
/// at every entry, so their multiplicative updates work on a dense copy of each batch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Loss {
    /// ½‖X − WH‖², beta = 2.
    Frobenius,
    /// Generalized Kullback-Leibler divergence, beta = 1.
    KullbackLeibler,
    /// Itakura-Saito divergence, beta = 0 (data must be strictly positive).
    ItakuraSaito,
    /// Any other beta.
    Beta(f64),
}

impl Loss {
    /// The loss's beta.
    ///
    /// ```
    /// assert_eq!(streamnmf::Loss::ItakuraSaito.beta(), 0.0);
    /// ```
    pub fn beta(&self) -> f64 {
        match self {
            Loss::Frobenius => 2.0,
            Loss::KullbackLeibler => 1.0,
            Loss::ItakuraSaito => 0.0,
            Loss::Beta(b) => *b,
        }
    }

    /// The named case for `beta`, if there is one.
    ///
    /// ```
    /// use streamnmf::Loss;
    /// assert_eq!(Loss::from_beta(1.0), Loss::KullbackLeibler);
    /// assert_eq!(Loss::from_beta(0.5), Loss::Beta(0.5));
    /// ```
    pub fn from_beta(beta: f64) -> Loss {
        if beta == 2.0 {
            Loss::Frobenius
        } else if beta == 1.0 {
            Loss::KullbackLeibler
        } else if beta == 0.0 {
            Loss::ItakuraSaito
        } else {
            Loss::Beta(beta)
        }
    }

    /// The exponent γ(β) of the multiplicative updates: Févotte & Idier's (2011) descent
    /// exponents (`1/(2 − β)` below β = 1, `1/(β − 1)` above 2, 1 between), except 1 for
    /// Itakura-Saito (Févotte, Bertin & Durrieu 2009), which converges faster.
    ///
    /// ```
    /// use streamnmf::Loss;
    /// assert_eq!(Loss::ItakuraSaito.mu_exponent(), 1.0);
    /// assert_eq!(Loss::Beta(3.0).mu_exponent(), 0.5);
    /// assert_eq!(Loss::Beta(0.5).mu_exponent(), 1.0 / 1.5);
    /// assert_eq!(Loss::KullbackLeibler.mu_exponent(), 1.0);
    /// ```
    pub fn mu_exponent(&self) -> f64 {
        crate::solve::mu::mu_exponent(self.beta())
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::Frobenius => f.write_str("fro"),
            Loss::KullbackLeibler => f.write_str("kl"),
            Loss::ItakuraSaito => f.write_str("is"),
            Loss::Beta(b) => write!(f, "beta={b}"),
        }
    }
}

impl FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fro" | "frobenius" => Ok(Loss::Frobenius),
            "kl" | "kullback-leibler" => Ok(Loss::KullbackLeibler),
            "is" | "itakura-saito" => Ok(Loss::ItakuraSaito),
            other => match other.strip_prefix("beta=").map(str::parse::<f64>) {
                Some(Ok(b)) if b.is_finite() => Ok(Loss::from_beta(b)),
                _ => Err(format!(
                    "unknown loss '{s}': expected fro, kl, is or beta=<number>"
                )),
            },
        }
    }
}

/// The divergence of one entry, `d_β(x | v)`, exactly: no clipping, so a model value of
/// 0 under data above 0 is an infinite KL or Itakura-Saito divergence, as it should be
/// (a finite loss never hides zeros of `W H` where the data has energy).
///
/// ```
/// use streamnmf::loss::element;
/// assert_eq!(element(3.0, 1.0, 2.0), 2.0);
/// assert!((element(2.0, 1.0, 1.0) - (2.0 * 2f64.ln() - 1.0)).abs() < 1e-15);
/// assert!((element(2.0, 1.0, 0.0) - (2.0 - 2f64.ln() - 1.0)).abs() < 1e-15);
/// assert_eq!(element(1e-3, 0.0, 0.0), f64::INFINITY);
/// assert_eq!(element(0.0, 0.0, 1.0), 0.0);
/// ```
#[inline]
pub fn element(x: f64, v: f64, beta: f64) -> f64 {
    if beta == 2.0 {
        let d = x - v;
        return 0.5 * d * d;
    }
    if v <= 0.0 {
        return match (x > 0.0, beta <= 1.0) {
            (true, true) => f64::INFINITY,
            (true, false) => x.powf(beta) / (beta * (beta - 1.0)),
            (false, _) => 0.0,
        };
    }
    if beta == 1.0 {
        if x == 0.0 {
            v
        } else {
            x * (x / v).ln() - x + v
        }
    } else if beta == 0.0 {
        let r = x / v;
        r - r.ln() - 1.0
    } else {
        // Non-negative in exact arithmetic; the formula cancels near x = v.
        ((x.powf(beta) + (beta - 1.0) * v.powf(beta) - beta * x * v.powf(beta - 1.0))
            / (beta * (beta - 1.0)))
            .max(0.0)
    }
}

/// `D_β(X | V)` for a dense `X` and reconstruction `V`, both b × p.
pub(crate) fn dense_divergence<F: Float>(x: ArrayView2<F>, v: ArrayView2<F>, beta: f64) -> f64 {
    use crate::linalg::simd::{divergence_terms, Terms};
    let terms = match beta {
        0.0 => Some(Terms::ItakuraSaito),
        1.0 => Some(Terms::Kl),
        _ => None,
    };
    if let (Some(terms), Some(xs), Some(vs)) = (terms, x.as_slice(), v.as_slice()) {
        return divergence_terms(xs, vs, terms);
    }
    let mut s = 0.0;
    ndarray::Zip::from(x).and(v).for_each(|&x, &v| {
        s += element(x.as_f64(), v.as_f64(), beta);
    });
    s
}

/// `D_β(X | W H)` for a batch. Sparse X under Frobenius and KL visits only non-zeros:
/// `½‖X‖² − Σ W ⊙ (X Hᵀ) + ½ Σ (WᵀW) ⊙ (H Hᵀ)` and
/// `Σ_nnz (x log(x / (WH)) − x) + (1ᵀW)(H 1)`; everything else forms `WH` densely.
///
/// ```
/// use ndarray::array;
/// use streamnmf::{loss::divergence, CsrMatrix, MatRef};
/// let x = array![[1.0f64, 0.0], [0.0, 2.0]];
/// let w = array![[1.0], [1.0]];
/// let h = array![[0.5, 0.5]];
/// let dense = divergence(MatRef::from(&x), w.view(), h.view(), 2.0);
/// assert!((dense - 0.5 * (0.25 + 0.25 + 0.25 + 2.25)).abs() < 1e-12);
/// let csr = CsrMatrix::from_dense(x.view());
/// let sparse = divergence(MatRef::from(&csr), w.view(), h.view(), 2.0);
/// assert!((dense - sparse).abs() < 1e-12);
/// ```
pub fn divergence<F: Float>(x: MatRef<F>, w: ArrayView2<F>, h: ArrayView2<F>, beta: f64) -> f64 {
    match x {
        MatRef::Dense(xd) => {
            let v = product(&w, &h);
            dense_divergence(xd, v.view(), beta)
        }
        MatRef::Csr(_) if beta == 2.0 => {
            let ht = h.t().as_standard_layout().into_owned();
            let r = x.x_ht(ht.view());
            let g = product(&h, &h.t());
            frobenius_from_products(x.squared_norm(), w, r.view(), g.view())
        }
        MatRef::Csr(xs) if beta == 1.0 => {
            let ht = h.t().as_standard_layout().into_owned();
            let mut s = 0.0;
            for i in 0..xs.nrows() {
                let (cols, vals) = xs.row(i);
                let wi = w.row(i);
                for (&j, &xv) in cols.iter().zip(vals) {
                    let v = wi.dot(&ht.row(j as usize)).as_f64();
                    let xv = xv.as_f64();
                    s += if xv == 0.0 {
                        0.0
                    } else if v > 0.0 {
                        xv * (xv / v).ln() - xv
                    } else {
                        f64::INFINITY
                    };
                }
            }
            let wsum = w.sum_axis(ndarray::Axis(0));
            let hsum = h.sum_axis(ndarray::Axis(1));
            s + wsum
                .iter()
                .zip(hsum.iter())
                .map(|(a, b)| a.as_f64() * b.as_f64())
                .sum::<f64>()
        }
        MatRef::Csr(xs) => {
            let v: Array2<F> = product(&w, &h);
            dense_divergence(xs.to_dense().view(), v.view(), beta)
        }
    }
}

/// `½‖X − WH‖²` from `‖X‖²`, `R = X Hᵀ` and `G = H Hᵀ`, without forming `WH`:
/// `½(‖X‖² − 2 Σ W ⊙ R + Σ (WᵀW) ⊙ G)`, clamped at 0 against rounding.
pub(crate) fn frobenius_from_products<F: Float>(
    x_sq: f64,
    w: ArrayView2<F>,
    r: ArrayView2<F>,
    g: ArrayView2<F>,
) -> f64 {
    let mut cross = 0.0;
    ndarray::Zip::from(w)
        .and(r)
        .for_each(|&a, &b| cross += a.as_f64() * b.as_f64());
    let wtw = product(&w.t(), &w);
    let mut quad = 0.0;
    ndarray::Zip::from(&wtw)
        .and(g)
        .for_each(|&a, &b| quad += a.as_f64() * b.as_f64());
    // Clamped at zero (cancellation can leave it a little below), but a NaN, from
    // products that overflowed the element type, stays one: `max` would hide it as 0.
    let loss = 0.5 * (x_sq - 2.0 * cross + quad);
    if loss.is_nan() {
        loss
    } else {
        loss.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::CsrMatrix;
    use ndarray::array;

    /// Known values computed by hand for a 2 × 3 example.
    #[test]
    fn known_values() {
        let x = array![[1.0f64, 2.0, 0.0], [4.0, 1.0, 3.0]];
        let v = array![[2.0f64, 2.0, 1.0], [2.0, 1.0, 1.0]];
        // Frobenius: ½ (1 + 0 + 1 + 4 + 0 + 4) = 5
        assert!((dense_divergence(x.view(), v.view(), 2.0) - 5.0).abs() < 1e-12);
        // KL: Σ x log(x/v) − x + v
        let kl = (1.0 * (0.5f64).ln() - 1.0 + 2.0)
            + 0.0
            + 1.0
            + (4.0 * 2f64.ln() - 4.0 + 2.0)
            + 0.0
            + (3.0 * 3f64.ln() - 3.0 + 1.0);
        assert!((dense_divergence(x.view(), v.view(), 1.0) - kl).abs() < 1e-12);
        // general beta at 1.5 matches the formula
        let b = 1.5;
        let f = |x: f64, v: f64| {
            (x.powf(b) + (b - 1.0) * v.powf(b) - b * x * v.powf(b - 1.0)) / (b * (b - 1.0))
        };
        let want: f64 = x.iter().zip(v.iter()).map(|(&x, &v)| f(x, v)).sum();
        assert!((dense_divergence(x.view(), v.view(), b) - want).abs() < 1e-12);
    }

    /// The general formula tends to the named cases as beta approaches them.
    #[test]
    fn beta_family_is_continuous() {
        for &(x, v) in &[(1.0, 2.0), (3.0, 0.5), (0.2, 0.2)] {
            for &b in &[0.0, 1.0, 2.0] {
                let lim = element(x, v, b);
                let near = element(x, v, b + 1e-6);
                assert!((lim - near).abs() < 1e-4, "beta {b}: {lim} vs {near}");
            }
        }
    }

    #[test]
    fn sparse_kl_matches_dense() {
        let x = array![[1.0f64, 0.0, 2.0], [0.0, 0.0, 3.0]];
        let w = array![[1.0, 0.5], [0.2, 2.0]];
        let h = array![[1.0, 0.5, 0.1], [0.3, 0.0, 1.0]];
        let csr = CsrMatrix::from_dense(x.view());
        for beta in [0.5, 1.0, 1.5, 2.0, 3.0] {
            let d = divergence(MatRef::from(&x), w.view(), h.view(), beta);
            let s = divergence(MatRef::from(&csr), w.view(), h.view(), beta);
            assert!((d - s).abs() < 1e-10, "beta {beta}: {d} vs {s}");
        }
    }
}
