//! Seconds between the steps of a run, for the timings reports carry.

use std::time::Instant;

/// Measures one step after another: each [`Lap::lap`] returns the seconds since the last.
pub(crate) struct Lap(Instant);

impl Lap {
    pub(crate) fn start() -> Lap {
        Lap(Instant::now())
    }

    pub(crate) fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let seconds = (now - self.0).as_secs_f64();
        self.0 = now;
        seconds
    }
}
