//! Retry policy: exponential backoff with a cap and deterministic jitter.
//!
//! A policy is validated once, when built; afterwards every computation is
//! total. Jitter is a pure function of (run id, step seq, attempt) so a
//! replayed run computes the same delays — although replay never needs to,
//! because the chosen retry time is recorded in the journal.

use crate::error::PolicyError;
use crate::journal::{ErrorInfo, Seq};
use crate::time::Millis;

/// A validated retry policy. Build it with [`RetryPolicy::builder`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay_ms: Millis,
    multiplier: f64,
    max_delay_ms: Millis,
    jitter: f64,
    non_retryable: Vec<String>,
}

/// What to do after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this time.
    RetryAt(Millis),
    /// Stop: the step has failed for good.
    GiveUp(GiveUpReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The error said it must not be retried (or its type is listed as non-retryable).
    NotRetryable,
    /// `max_attempts` failed attempts were made.
    AttemptsExhausted,
}

/// Upper bound on `max_attempts`: a typo like 1e9 should be an error, not a run that never ends.
pub const MAX_ATTEMPTS_LIMIT: u32 = 10_000;

impl RetryPolicy {
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    /// A policy that never retries.
    pub fn no_retry() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicyBuilder::default().build_unchecked()
        }
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    pub fn initial_delay_ms(&self) -> Millis {
        self.initial_delay_ms
    }
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }
    pub fn max_delay_ms(&self) -> Millis {
        self.max_delay_ms
    }
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
    pub fn non_retryable(&self) -> &[String] {
        &self.non_retryable
    }

    /// The delay before the attempt after `failed_attempt` (1-based), before jitter:
    /// `initial * multiplier^(failed_attempt - 1)`, capped at `max_delay`.
    pub fn base_delay_ms(&self, failed_attempt: u32) -> Millis {
        let exponent = failed_attempt.saturating_sub(1).min(1_000) as i32;
        let delay = self.initial_delay_ms as f64 * self.multiplier.powi(exponent);
        if !delay.is_finite() || delay >= self.max_delay_ms as f64 {
            self.max_delay_ms
        } else {
            delay as Millis
        }
    }

    /// The delay with jitter applied: the base delay reduced by up to
    /// `jitter` × itself, chosen by a hash of `seed` (so it never exceeds `max_delay`).
    pub fn delay_ms(&self, failed_attempt: u32, seed: u64) -> Millis {
        let base = self.base_delay_ms(failed_attempt);
        if self.jitter == 0.0 || base == 0 {
            return base;
        }
        let unit = (splitmix64(seed) >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let reduction = (base as f64 * self.jitter * unit) as Millis;
        base - reduction.min(base)
    }

    /// Decides after attempt `failed_attempts` (the count of failed attempts so far,
    /// including this one) failed with `error`.
    pub fn decide(
        &self,
        error: &ErrorInfo,
        failed_attempts: u32,
        now_ms: Millis,
        seed: u64,
    ) -> RetryDecision {
        if !error.retryable || self.non_retryable.iter().any(|t| t == &error.error_type) {
            return RetryDecision::GiveUp(GiveUpReason::NotRetryable);
        }
        // No sleep after the last attempt: give up right away.
        if failed_attempts >= self.max_attempts {
            return RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted);
        }
        RetryDecision::RetryAt(now_ms.saturating_add(self.delay_ms(failed_attempts, seed)))
    }
}

/// The jitter seed of one attempt: stable across processes and versions.
pub fn jitter_seed(run_id: &str, seq: Seq, attempt: u32) -> u64 {
    // FNV-1a over the run id, then mixed with seq and attempt.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in run_id.as_bytes() {
        hash ^= *byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^ ((seq as u64) << 32 | attempt as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Builds a [`RetryPolicy`]; unset fields take the defaults
/// (3 attempts, 1 s initial delay, ×2, capped at 60 s, 20 % jitter).
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder {
    max_attempts: u32,
    initial_delay_ms: Millis,
    multiplier: f64,
    max_delay_ms: Option<Millis>,
    jitter: f64,
    non_retryable: Vec<String>,
}

impl Default for RetryPolicyBuilder {
    fn default() -> Self {
        RetryPolicyBuilder {
            max_attempts: 3,
            initial_delay_ms: 1_000,
            multiplier: 2.0,
            max_delay_ms: None,
            jitter: 0.2,
            non_retryable: Vec::new(),
        }
    }
}

impl RetryPolicyBuilder {
    pub fn max_attempts(mut self, value: u32) -> Self {
        self.max_attempts = value;
        self
    }
    pub fn initial_delay_ms(mut self, value: Millis) -> Self {
        self.initial_delay_ms = value;
        self
    }
    pub fn multiplier(mut self, value: f64) -> Self {
        self.multiplier = value;
        self
    }
    pub fn max_delay_ms(mut self, value: Millis) -> Self {
        self.max_delay_ms = Some(value);
        self
    }
    pub fn jitter(mut self, value: f64) -> Self {
        self.jitter = value;
        self
    }
    pub fn non_retryable(
        mut self,
        error_types: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.non_retryable = error_types.into_iter().map(Into::into).collect();
        self
    }

    /// Validates every field; the error names the first bad one.
    pub fn build(self) -> Result<RetryPolicy, PolicyError> {
        let fail = |field, reason: String| Err(PolicyError { field, reason });
        if self.max_attempts == 0 {
            return fail(
                "max_attempts",
                "must be at least 1 (1 means no retries)".into(),
            );
        }
        if self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return fail(
                "max_attempts",
                format!(
                    "{} is over the limit of {MAX_ATTEMPTS_LIMIT}",
                    self.max_attempts
                ),
            );
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return fail(
                "multiplier",
                format!("must be a finite number >= 1.0, got {}", self.multiplier),
            );
        }
        if !self.jitter.is_finite() || !(0.0..=1.0).contains(&self.jitter) {
            return fail(
                "jitter",
                format!("must be between 0.0 and 1.0, got {}", self.jitter),
            );
        }
        let max_delay_ms = self
            .max_delay_ms
            .unwrap_or(self.initial_delay_ms.max(60_000));
        if max_delay_ms < self.initial_delay_ms {
            return fail(
                "max_delay",
                format!(
                    "{max_delay_ms} ms is shorter than initial_delay ({} ms)",
                    self.initial_delay_ms
                ),
            );
        }
        if self.non_retryable.iter().any(|t| t.is_empty()) {
            return fail("non_retryable", "error type names must not be empty".into());
        }
        Ok(self.build_unchecked_with(max_delay_ms))
    }

    fn build_unchecked(self) -> RetryPolicy {
        let max = self.max_delay_ms.unwrap_or(60_000);
        self.build_unchecked_with(max)
    }

    fn build_unchecked_with(self, max_delay_ms: Millis) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            initial_delay_ms: self.initial_delay_ms,
            multiplier: self.multiplier,
            max_delay_ms,
            jitter: self.jitter,
            non_retryable: self.non_retryable,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicyBuilder::default().build_unchecked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(
        max_attempts: u32,
        initial: Millis,
        multiplier: f64,
        max: Millis,
        jitter: f64,
    ) -> RetryPolicy {
        RetryPolicy::builder()
            .max_attempts(max_attempts)
            .initial_delay_ms(initial)
            .multiplier(multiplier)
            .max_delay_ms(max)
            .jitter(jitter)
            .build()
            .unwrap()
    }

    #[test]
    fn exponential_and_capped() {
        let p = policy(10, 1_000, 2.0, 30_000, 0.0);
        let delays: Vec<_> = (1..=7).map(|a| p.base_delay_ms(a)).collect();
        assert_eq!(
            delays,
            vec![1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
        assert_eq!(p.base_delay_ms(u32::MAX), 30_000);
    }

    #[test]
    fn no_sleep_after_last_attempt() {
        let p = policy(3, 1_000, 2.0, 30_000, 0.0);
        let err = ErrorInfo::new("E", "boom", true);
        assert_eq!(p.decide(&err, 1, 100, 0), RetryDecision::RetryAt(1_100));
        assert_eq!(p.decide(&err, 2, 100, 0), RetryDecision::RetryAt(2_100));
        assert_eq!(
            p.decide(&err, 3, 100, 0),
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
        );
    }

    #[test]
    fn non_retryable_errors_stop_at_once() {
        let p = RetryPolicy::builder()
            .non_retryable(["PaymentDeclined"])
            .build()
            .unwrap();
        assert_eq!(
            p.decide(&ErrorInfo::new("PaymentDeclined", "no", true), 1, 0, 0),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable)
        );
        assert_eq!(
            p.decide(&ErrorInfo::new("Other", "no", false), 1, 0, 0),
            RetryDecision::GiveUp(GiveUpReason::NotRetryable)
        );
    }

    #[test]
    fn validation_names_the_field() {
        let field = |b: RetryPolicyBuilder| b.build().unwrap_err().field;
        assert_eq!(
            field(RetryPolicy::builder().max_attempts(0)),
            "max_attempts"
        );
        assert_eq!(
            field(RetryPolicy::builder().max_attempts(MAX_ATTEMPTS_LIMIT + 1)),
            "max_attempts"
        );
        assert_eq!(field(RetryPolicy::builder().multiplier(0.5)), "multiplier");
        assert_eq!(
            field(RetryPolicy::builder().multiplier(f64::NAN)),
            "multiplier"
        );
        assert_eq!(field(RetryPolicy::builder().jitter(1.5)), "jitter");
        assert_eq!(
            field(
                RetryPolicy::builder()
                    .initial_delay_ms(10_000)
                    .max_delay_ms(5_000)
            ),
            "max_delay"
        );
        assert_eq!(
            field(RetryPolicy::builder().non_retryable([""])),
            "non_retryable"
        );
    }

    #[test]
    fn default_max_delay_is_at_least_initial() {
        let p = RetryPolicy::builder()
            .initial_delay_ms(120_000)
            .build()
            .unwrap();
        assert_eq!(p.max_delay_ms(), 120_000);
    }

    proptest! {
        #[test]
        fn jitter_is_deterministic_and_bounded(
            attempt in 1u32..50, initial in 0u64..100_000, mult in 1.0f64..5.0, jitter in 0.0f64..=1.0,
            run in ".{0,16}", seq in any::<u32>()
        ) {
            let p = policy(100, initial, mult, initial.max(1) * 1_000, jitter);
            let seed = jitter_seed(&run, seq, attempt);
            let d = p.delay_ms(attempt, seed);
            prop_assert_eq!(d, p.delay_ms(attempt, seed));
            let base = p.base_delay_ms(attempt);
            prop_assert!(d <= base);
            prop_assert!(d as f64 >= base as f64 * (1.0 - jitter) - 1.0);
            prop_assert!(d <= p.max_delay_ms());
        }
    }
}
