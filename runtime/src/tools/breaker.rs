//! Per-tool circuit breaker: closed (calls go through), open after `failure_threshold`
//! consecutive failures (calls are skipped), half-open after `cool_down` (one trial call; its
//! success closes the breaker, its failure opens it again).

use std::time::{Duration, Instant};

/// Consecutive failures that open a tool's breaker.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// How long an open breaker skips its tool before letting one trial call through.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            cool_down: DEFAULT_COOL_DOWN,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug)]
pub struct CircuitBreaker {
    state: BreakerState,
    consecutive_failures: u32,
    /// When the breaker opened, or when the half-open trial started.
    since: Instant,
}

/// A state change, for logs and metrics.
pub type Transition = (BreakerState, BreakerState);

impl CircuitBreaker {
    pub fn new(now: Instant) -> Self {
        Self {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            since: now,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a call may go through now, and the transition that allowing it caused. A trial
    /// call that never reports back (cancelled) does not block the tool forever: after another
    /// cool-down a new trial is allowed.
    pub fn admit(&mut self, now: Instant, config: &BreakerConfig) -> (bool, Option<Transition>) {
        match self.state {
            BreakerState::Closed => (true, None),
            BreakerState::Open | BreakerState::HalfOpen
                if now.duration_since(self.since) >= config.cool_down =>
            {
                let from = self.state;
                self.state = BreakerState::HalfOpen;
                self.since = now;
                (
                    true,
                    (from != BreakerState::HalfOpen).then_some((from, BreakerState::HalfOpen)),
                )
            }
            BreakerState::Open | BreakerState::HalfOpen => (false, None),
        }
    }

    pub fn on_success(&mut self) -> Option<Transition> {
        self.consecutive_failures = 0;
        let from = self.state;
        self.state = BreakerState::Closed;
        (from != BreakerState::Closed).then_some((from, BreakerState::Closed))
    }

    pub fn on_failure(&mut self, now: Instant, config: &BreakerConfig) -> Option<Transition> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let from = self.state;
        let open = from == BreakerState::HalfOpen
            || (from == BreakerState::Closed
                && self.consecutive_failures >= config.failure_threshold);
        if open {
            self.state = BreakerState::Open;
            self.since = now;
            return Some((from, BreakerState::Open));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_half_opens_after_cool_down() {
        let config = BreakerConfig {
            failure_threshold: 2,
            cool_down: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(t0);
        assert_eq!(b.on_failure(t0, &config), None);
        assert_eq!(
            b.on_failure(t0, &config),
            Some((BreakerState::Closed, BreakerState::Open))
        );
        assert_eq!(b.admit(t0 + Duration::from_secs(9), &config), (false, None));
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(
            b.admit(t1, &config),
            (true, Some((BreakerState::Open, BreakerState::HalfOpen)))
        );
        // One trial at a time.
        assert_eq!(b.admit(t1, &config), (false, None));
        assert_eq!(
            b.on_failure(t1, &config),
            Some((BreakerState::HalfOpen, BreakerState::Open))
        );
        let t2 = t1 + Duration::from_secs(10);
        assert!(b.admit(t2, &config).0);
        assert_eq!(
            b.on_success(),
            Some((BreakerState::HalfOpen, BreakerState::Closed))
        );
        assert_eq!(b.state(), BreakerState::Closed);
        // The count restarted: one failure does not reopen it.
        assert_eq!(b.on_failure(t2, &config), None);
    }
}
