//! A reading of how fast the machine computes at the moment, taken at the start and the end of
//! a run, so that runs made at different times can be compared.
//!
//! The project's machines are virtual, and their speed moves by a third or more within an hour
//! (the README's *Performance*), more than most changes the bench measures. The reading is
//! nanoseconds per step of a fixed integer loop on one thread, the fastest of [`REPEATS`]
//! short ones: a process still busy on the other core (an autovacuum, a checkpoint) slows a
//! single short reading, and the fastest of several is what the machine could do then.
//! Readings compare between release builds only: unoptimised, as in `bench.sh --smoke`, the
//! loop takes about four times as long.
//!
//! Wake-ups between threads, which much of the stack's cost is, are not read: a round trip
//! between two threads took 40 µs with the other core idle and 12.5 µs with it busy
//! (presumably because an idle virtual core must first be woken itself), so it tells how idle
//! the machine is rather than how fast.

use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Calibration {
    pub compute_ns_per_step: f64,
}

/// The readings at the start and at the end of a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MachineSpeed {
    pub at_start: Calibration,
    pub at_end: Calibration,
}

/// Short readings of which the fastest is kept.
pub const REPEATS: usize = 5;

/// Steps of one short reading: about 35 ms here.
const COMPUTE_STEPS: u64 = 20_000_000;

/// Takes one reading; it blocks for about a fifth of a second.
pub fn measure() -> Calibration {
    measure_with(COMPUTE_STEPS)
}

fn measure_with(steps: u64) -> Calibration {
    Calibration {
        compute_ns_per_step: fastest_of(REPEATS, || compute_ns_per_step(steps)),
    }
}

/// The smallest of `repeats` readings.
fn fastest_of(repeats: usize, mut read: impl FnMut() -> f64) -> f64 {
    (0..repeats).map(|_| read()).fold(f64::INFINITY, f64::min)
}

fn compute_ns_per_step(steps: u64) -> f64 {
    // A xorshift generator: each step depends on the last, so none can be skipped or merged,
    // and `black_box` keeps the compiler from computing the result ahead.
    let mut x = std::hint::black_box(0x9E37_79B9_7F4A_7C15_u64);
    let started = Instant::now();
    for _ in 0..steps {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x);
    started.elapsed().as_nanos() as f64 / steps.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_positive_and_finite() {
        let reading = measure_with(1_000_000);
        assert!(
            reading.compute_ns_per_step.is_finite() && reading.compute_ns_per_step > 0.0,
            "{reading:?}"
        );
    }

    #[test]
    fn the_fastest_of_the_repeats_is_kept() {
        let mut readings = [5.0, 2.0, 3.0].into_iter();
        assert_eq!(fastest_of(3, || readings.next().unwrap()), 2.0);
    }
}
