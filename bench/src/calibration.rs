//! Two readings of how fast the machine is at the moment, taken at the start and the end of a
//! run, so that runs made at different times can be compared.
//!
//! The project's machines are virtual, and their speed moves by a third or more within an hour
//! (the README's *Performance*), more than most changes it measures. The stack's cost per
//! request is mostly system calls and wake-ups between threads and processes (loopback TCP,
//! librdkafka's threads, PostgreSQL's backends), which a virtual machine makes dearer than its
//! plain computing, so the two are read apart:
//!
//! - **compute**: nanoseconds per step of a fixed integer loop on one thread;
//! - **wake-up round trip**: microseconds for one byte to go to another thread blocked on a
//!   Unix socket and come back: two writes, two reads, and two threads woken.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Calibration {
    pub compute_ns_per_step: f64,
    pub wake_up_round_trip_us: f64,
}

/// The readings at the start and at the end of a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MachineSpeed {
    pub at_start: Calibration,
    pub at_end: Calibration,
}

/// Steps and round trips of one reading: about a quarter of a second each here.
const COMPUTE_STEPS: u64 = 100_000_000;
const ROUND_TRIPS: u32 = 5_000;

/// Takes one reading; it blocks for about half a second.
pub fn measure() -> std::io::Result<Calibration> {
    measure_with(COMPUTE_STEPS, ROUND_TRIPS)
}

fn measure_with(steps: u64, round_trips: u32) -> std::io::Result<Calibration> {
    Ok(Calibration {
        compute_ns_per_step: compute_ns_per_step(steps),
        wake_up_round_trip_us: wake_up_round_trip_us(round_trips)?,
    })
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

fn wake_up_round_trip_us(round_trips: u32) -> std::io::Result<f64> {
    let (mut here, mut there) = UnixStream::pair()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let mut byte = [0_u8; 1];
        for _ in 0..round_trips {
            there.read_exact(&mut byte)?;
            there.write_all(&byte)?;
        }
        Ok(())
    });
    let mut byte = [1_u8; 1];
    let started = Instant::now();
    for _ in 0..round_trips {
        here.write_all(&byte)?;
        here.read_exact(&mut byte)?;
    }
    let elapsed = started.elapsed();
    echo.join()
        .map_err(|_| std::io::Error::other("the echo thread panicked"))??;
    Ok(elapsed.as_secs_f64() * 1e6 / f64::from(round_trips.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_positive_and_finite() {
        let reading = measure_with(1_000_000, 200).expect("a socket pair and a thread");
        for value in [reading.compute_ns_per_step, reading.wake_up_round_trip_us] {
            assert!(value.is_finite() && value > 0.0, "{reading:?}");
        }
    }
}
