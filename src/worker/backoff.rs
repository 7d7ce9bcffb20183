//! Exponential backoff with full jitter: retries of many failed items spread
//! out instead of arriving together.

use std::time::Duration;

/// The first retry waits about this long.
const BASE: Duration = Duration::from_secs(1);
/// No retry waits longer than this.
const CAP: Duration = Duration::from_secs(15 * 60);

/// How long to wait before attempt `attempts + 1`, given `attempts` made so
/// far (at least 1): a random duration in `[d/2, d]` where `d` doubles per
/// attempt from [`BASE`] up to [`CAP`].
pub fn delay(attempts: u32) -> Duration {
    delay_between(attempts, BASE, CAP)
}

/// [`delay`] with the first delay `base` and the longest `cap`.
pub fn delay_between(attempts: u32, base: Duration, cap: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let ceiling = base.saturating_mul(1 << exp).min(cap);
    let half = ceiling / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_stay_within_jitter_bounds() {
        for attempts in 1..=12 {
            let ceiling = BASE.saturating_mul(1 << (attempts - 1)).min(CAP);
            for _ in 0..50 {
                let d = delay(attempts);
                assert!(d >= ceiling / 2 && d <= ceiling, "{attempts}: {d:?}");
            }
        }
    }

    #[test]
    fn delays_are_capped() {
        assert!(delay(u32::MAX) <= CAP);
        assert!(delay(0) <= BASE);
    }
}
