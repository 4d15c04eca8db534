//! The noise of the aggregate tier, all of it from OpenDP (the reference implementation of
//! differential privacy): discrete Laplace noise on integer counts and sums, and the noisy
//! threshold that decides which group keys may be released. OpenDP draws its randomness from
//! OpenSSL's CSPRNG (`RAND_priv_bytes`); nothing here can be seeded.
//!
//! Each release says what it cost: the privacy map of the OpenDP measurement, not a formula
//! of ours, gives the ε (and δ) spent.

use std::collections::HashMap;

use opendp::accuracy::discrete_laplacian_scale_to_accuracy;
use opendp::domains::{AtomDomain, MapDomain, VectorDomain};
use opendp::measurements::{make_laplace, make_laplace_threshold};
use opendp::measures::{Approximate, MaxDivergence};
use opendp::metrics::{AbsoluteDistance, L01InfDistance, L1Distance};

/// A failure of the DP library: a bug of ours (a scale or sensitivity out of range), never a
/// client's doing.
#[derive(Debug, thiserror::Error)]
#[error("differential privacy: {0}")]
pub struct NoiseError(String);

fn failed(e: opendp::error::Error) -> NoiseError {
    NoiseError(format!("{e:?}"))
}

/// Values released with noise, and what they cost.
#[derive(Clone, Debug)]
pub struct Noisy {
    pub values: Vec<i64>,
    /// The scale of the discrete Laplace noise on each value.
    pub scale: f64,
    pub epsilon: f64,
}

impl Noisy {
    /// Half-width of the 95 % interval of each value's noise.
    pub fn error_95(&self) -> f64 {
        error_95(self.scale)
    }
}

/// Half-width of the 95 % interval of discrete Laplace noise of `scale`.
pub fn error_95(scale: f64) -> f64 {
    discrete_laplacian_scale_to_accuracy(scale, 0.05).unwrap_or(f64::INFINITY)
}

/// Adds discrete Laplace noise to `values`, whose L1 distance between neighbouring data sets
/// (one patient added or removed) is at most `sensitivity`, spending `epsilon`.
pub fn laplace(values: &[i64], sensitivity: i64, epsilon: f64) -> Result<Noisy, NoiseError> {
    let scale = sensitivity.max(1) as f64 / epsilon;
    let measurement = make_laplace::<_, _, MaxDivergence>(
        VectorDomain::new(AtomDomain::<i64>::default()),
        L1Distance::<i64>::default(),
        scale,
        None,
    )
    .map_err(failed)?;
    let spent = measurement.map(&sensitivity.max(1)).map_err(failed)?;
    let values = measurement.invoke(&values.to_vec()).map_err(failed)?;
    Ok(Noisy {
        values,
        scale,
        epsilon: spent,
    })
}

/// The keys released, their noisy patient counts, and what the selection cost.
#[derive(Clone, Debug)]
pub struct Selected {
    pub counts: HashMap<String, i64>,
    pub threshold: i64,
    pub scale: f64,
    pub epsilon: f64,
    pub delta: f64,
}

/// Releases the keys whose noisy patient count reaches the release threshold, with those
/// counts (a key a patient alone stands behind appears with probability at most δ). Each
/// patient counts once in at most `keys_per_patient` keys. The threshold is the smallest at or
/// above `k` that keeps δ within `delta`.
pub fn select_keys(
    patients: HashMap<String, i64>,
    keys_per_patient: u32,
    epsilon: f64,
    delta: f64,
    k: i64,
) -> Result<Selected, NoiseError> {
    let l0 = keys_per_patient.max(1);
    let scale = f64::from(l0) / epsilon;
    let make = |threshold: i64| {
        make_laplace_threshold::<_, _, Approximate<MaxDivergence>>(
            MapDomain::new(
                AtomDomain::<String>::default(),
                AtomDomain::<i64>::default(),
            ),
            L01InfDistance::<AbsoluteDistance<i64>>::default(),
            scale,
            threshold,
            None,
        )
        .map_err(failed)
    };
    let cost = |threshold: i64| -> Result<(f64, f64), NoiseError> {
        make(threshold)?
            .map(&(l0, i64::from(l0), 1))
            .map_err(failed)
    };
    // δ falls as the threshold rises: the first threshold at or above k that meets δ.
    let (mut low, mut high) = (k.max(1), k.max(1));
    while cost(high)?.1 > delta {
        low = high;
        high = high.saturating_mul(2);
        if high > 1_000_000 {
            return Err(NoiseError("no release threshold meets δ".into()));
        }
    }
    while low < high {
        let mid = low + (high - low) / 2;
        if cost(mid)?.1 > delta {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    let threshold = high;
    let (epsilon, delta) = cost(threshold)?;
    let counts = make(threshold)?.invoke(&patients).map_err(failed)?;
    Ok(Selected {
        counts,
        threshold,
        scale,
        epsilon,
        delta,
    })
}

/// Values re-noised with discrete Laplace noise of `scale`, for the error bounds of figures
/// derived from a release (post-processing: the release is already made, and its scales are
/// public). Never used for a release itself: it is a fast sampler from a seedable generator,
/// so that an answer's bounds are the same each time they are computed.
pub fn redraw(values: &[i64], scale: f64, rng: &mut impl rand::Rng) -> Vec<i64> {
    // The difference of two geometric variables of p = 1 − e^{−1/scale} is discrete Laplace.
    let q = (-1.0 / scale.max(1e-9)).exp();
    let geometric = |rng: &mut dyn rand::RngCore| -> i64 {
        let u: f64 = rand::Rng::gen_range(rng, f64::MIN_POSITIVE..1.0);
        (u.ln() / q.ln()).floor() as i64
    };
    values
        .iter()
        .map(|v| v + geometric(rng) - geometric(rng))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The privacy map is OpenDP's: a sensitivity of 3 at scale 3/ε costs ε.
    #[test]
    fn laplace_spends_what_it_is_asked() {
        let noisy = laplace(&[100, 200, 300], 3, 0.5).unwrap();
        assert_eq!(noisy.values.len(), 3);
        assert!((noisy.epsilon - 0.5).abs() < 1e-9, "{}", noisy.epsilon);
        assert!((noisy.scale - 6.0).abs() < 1e-12);
    }

    /// The noise is discrete Laplace of the stated scale: over many draws its mean absolute
    /// value and its 95 % interval are those of the distribution (a check of the library's
    /// sampler as this service calls it, not a mechanism of ours).
    #[test]
    fn the_noise_has_its_stated_distribution() {
        let draws = 20_000;
        let noisy = laplace(&vec![0; draws], 1, 0.25).unwrap();
        // Discrete Laplace with t = 1/scale: P(x) ∝ e^{-t|x|}; E|X| = 2e^{-t} / (1 − e^{-2t}).
        let t = 1.0 / noisy.scale;
        let expected = 2.0 * (-t).exp() / (1.0 - (-2.0 * t).exp());
        let mean_abs = noisy.values.iter().map(|v| v.abs() as f64).sum::<f64>() / draws as f64;
        assert!(
            (mean_abs - expected).abs() / expected < 0.05,
            "{mean_abs} vs {expected}"
        );
        let bound = noisy.error_95();
        let outside = noisy
            .values
            .iter()
            .filter(|v| (v.abs() as f64) > bound)
            .count();
        let share = outside as f64 / draws as f64;
        assert!(
            share <= 0.06,
            "{share} of draws outside the 95 % bound {bound}"
        );
        let mean = noisy.values.iter().sum::<i64>() as f64 / draws as f64;
        assert!(mean.abs() < 0.2, "centred on zero: {mean}");
    }

    /// The sampler of the error bounds draws the same distribution as the releases: the same
    /// mean absolute value and 95 % interval, centred on the value.
    #[test]
    fn the_error_bound_sampler_matches_the_release_distribution() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let draws = 50_000;
        let scale = 4.0;
        let values = redraw(&vec![0; draws], scale, &mut rng);
        let t = 1.0 / scale;
        let expected = 2.0 * (-t).exp() / (1.0 - (-2.0 * t).exp());
        let mean_abs = values.iter().map(|v| v.abs() as f64).sum::<f64>() / draws as f64;
        assert!(
            (mean_abs - expected).abs() / expected < 0.03,
            "{mean_abs} vs {expected}"
        );
        let bound = error_95(scale);
        let share =
            values.iter().filter(|v| (v.abs() as f64) > bound).count() as f64 / draws as f64;
        assert!((0.03..=0.06).contains(&share), "{share} outside {bound}");
        let mean = values.iter().sum::<i64>() as f64 / draws as f64;
        assert!(mean.abs() < 0.1, "{mean}");
    }

    /// A key a patient alone stands behind is almost never released; a key with many patients
    /// almost always is.
    #[test]
    fn the_threshold_releases_large_groups_and_hides_a_lone_patient() {
        let mut lone_released = 0;
        for _ in 0..2_000 {
            let counts = HashMap::from([("lone".to_owned(), 1i64), ("crowd".to_owned(), 500)]);
            let selected = select_keys(counts, 1, 0.5, 1e-6, 11).unwrap();
            assert!(selected.counts.contains_key("crowd"));
            lone_released += usize::from(selected.counts.contains_key("lone"));
            assert!(selected.delta <= 1e-6 && selected.threshold >= 11);
            assert!((selected.epsilon - 0.5).abs() < 1e-9);
        }
        assert_eq!(lone_released, 0);
    }
}
