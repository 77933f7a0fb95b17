//! `queue`: token status polls per second, closed loop, by admitted users; and
//! `queue-waiting`: the same by users waiting in line, the sale-day case, whose place in line
//! is computed on every poll. (Token issues per second are measured while the users are
//! created.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Api;
use crate::setup::{Issued, User};
use crate::stats::{Recorder, Summary};

#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueResult {
    pub token_issues: Issued,
    pub polls_per_sec: f64,
    pub poll_errors: u64,
    pub poll: Summary,
}

/// Polls the users' tokens, `concurrency` at a time, for `duration`. A poll counts when it
/// answers 200 with the token in `expected_status`; anything else is an error.
pub async fn polls(
    api: &Api,
    users: &[User],
    concurrency: usize,
    duration: Duration,
    issued: Issued,
    expected_status: &'static str,
) -> QueueResult {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(Recorder::default()));
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (api, done, errors, latency) =
            (api.clone(), done.clone(), errors.clone(), latency.clone());
        let tokens: Vec<String> = users
            .iter()
            .skip(worker)
            .step_by(concurrency)
            .map(|u| u.token.clone())
            .collect();
        tasks.spawn(async move {
            let mut i = 0;
            while Instant::now() < end && !tokens.is_empty() {
                let t0 = Instant::now();
                match api.token_status(&tokens[i % tokens.len()]).await {
                    Ok(a) if a.status == 200 && a.body["status"] == expected_status => {
                        done.fetch_add(1, Ordering::Relaxed);
                        latency.lock().expect("lock").record(t0.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let poll = latency.lock().expect("lock").summary();
    QueueResult {
        token_issues: issued,
        polls_per_sec: done.load(Ordering::Relaxed) as f64 / elapsed,
        poll_errors: errors.load(Ordering::Relaxed),
        poll,
    }
}
