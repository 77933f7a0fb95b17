//! Latency summaries from HDR histograms, in milliseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

pub struct Recorder(Histogram<u64>);

impl Default for Recorder {
    fn default() -> Self {
        // Microseconds, up to 10 minutes, 3 significant digits.
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"))
    }
}

impl Recorder {
    pub fn record(&mut self, d: Duration) {
        let micros = (d.as_micros() as u64).clamp(1, 600_000_000);
        self.0.record(micros).expect("within bounds");
    }

    pub fn summary(&self) -> Summary {
        let ms = |q: f64| self.0.value_at_quantile(q) as f64 / 1000.0;
        Summary {
            count: self.0.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            max_ms: self.0.max() as f64 / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}
