//! Logging: structured `tracing` output, human-readable by default, JSON with `LOG_FORMAT=json`.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global subscriber. The filter comes from `RUST_LOG` (default `info`).
pub fn init(config: &TelemetryConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr, so command output on stdout stays clean.
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(std::io::stderr);
    // A second init (tests that start several services in one process) is harmless.
    let _ = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// W3C trace context: the incoming `traceparent` when it is well formed, else a new one.
pub fn traceparent_or_new(incoming: Option<&str>) -> String {
    match incoming {
        Some(tp) if is_valid_traceparent(tp) => tp.to_ascii_lowercase(),
        // Random UUIDs carry a version digit, so neither id can be all zeros, which W3C forbids.
        _ => format!(
            "00-{}-{:016x}-01",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().as_u64_pair().0
        ),
    }
}

/// `version-traceid-parentid-flags`, hex, with non-zero ids.
pub fn is_valid_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

/// The trace id part of a traceparent.
pub fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_kept_when_valid_and_made_otherwise() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(traceparent_or_new(Some(tp)), tp);
        assert_eq!(trace_id(tp), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "",
            "00-abc-def-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let made = traceparent_or_new(Some(bad));
            assert!(is_valid_traceparent(&made), "{made}");
            assert_ne!(made, bad);
        }
        let (first, second) = (traceparent_or_new(None), traceparent_or_new(None));
        assert!(is_valid_traceparent(&first), "{first}");
        assert_ne!(trace_id(&first), trace_id(&second));
    }
}
