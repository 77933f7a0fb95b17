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
//! A second reading is the cost of one system call made by one thread, the fastest of
//! [`REPEATS`] as well. Much of the stack's CPU is in the kernel (loopback TCP, wake-ups), and
//! on these virtual machines entering the kernel costs more than on bare hardware and may move
//! on its own: the loop alone read 1.64-1.75 ns at every start and end of two runs whose
//! stacks took 178 and 219 µs of CPU per decision at the same 9,000/s step.
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
    /// Nanoseconds per `getpid` system call.
    pub syscall_ns: f64,
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

/// System calls of one short reading: about 35 ms here.
const SYSCALLS: u32 = 200_000;

/// Takes both readings; it blocks for about two fifths of a second.
pub fn measure() -> Calibration {
    measure_with(COMPUTE_STEPS, SYSCALLS)
}

fn measure_with(steps: u64, syscalls: u32) -> Calibration {
    Calibration {
        compute_ns_per_step: fastest_of(REPEATS, || compute_ns_per_step(steps)),
        syscall_ns: fastest_of(REPEATS, || syscall_ns(syscalls)),
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

fn syscall_ns(calls: u32) -> f64 {
    let started = Instant::now();
    for _ in 0..calls {
        // glibc has not cached the process id since 2.25, so each call enters the kernel; it
        // is about the cheapest call there is, so the reading is the cost of entering.
        std::hint::black_box(std::process::id());
    }
    started.elapsed().as_nanos() as f64 / calls.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_positive_and_finite() {
        let reading = measure_with(1_000_000, 10_000);
        for value in [reading.compute_ns_per_step, reading.syscall_ns] {
            assert!(value.is_finite() && value > 0.0, "{reading:?}");
        }
    }

    #[test]
    fn the_fastest_of_the_repeats_is_kept() {
        let mut readings = [5.0, 2.0, 3.0].into_iter();
        assert_eq!(fastest_of(3, || readings.next().unwrap()), 2.0);
    }
}
