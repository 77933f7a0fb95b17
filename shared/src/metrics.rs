//! Prometheus metrics. Each process installs one recorder; the API renders it at `/metrics`,
//! the workers serve it on `WORKERS_METRICS_ADDR`. Metric names are listed in the README.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets, in seconds: sub-millisecond to tens of seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .expect("valid buckets")
        .set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS)
        .expect("valid buckets")
}

/// How often histogram samples are folded into their buckets when no scrape does it.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder (once) and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be set (tests that embed several services).
            let _ = metrics::set_global_recorder(recorder);
            spawn_upkeep(handle.clone(), UPKEEP_INTERVAL);
            handle
        })
        .clone()
}

/// Folds the recorded histogram samples into their buckets every `interval`. A recorder built
/// without an exporter keeps every sample until something renders it, so an API that nobody
/// scraped grew by eight bytes per sample (two or so per request), without bound. A thread of
/// its own, not a task: the recorder lives as long as the process, whichever runtime installed
/// it.
fn spawn_upkeep(handle: PrometheusHandle, interval: Duration) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            handle.run_upkeep();
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "metrics upkeep did not start; samples wait for a scrape");
    }
}

/// Installs the recorder and serves it over HTTP at `addr` (`GET /metrics`). Must be called
/// inside a Tokio runtime.
pub fn install_with_listener(addr: SocketAddr) -> anyhow::Result<()> {
    let (recorder, exporter) = builder().with_http_listener(addr).build()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    let _ = HANDLE.set(handle);
    tokio::spawn(async move {
        if let Err(err) = exporter.await {
            tracing::error!(error = ?err, "metrics listener stopped");
        }
    });
    tracing::info!(%addr, "metrics listening");
    Ok(())
}
