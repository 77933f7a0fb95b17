//! `pay`: every seat the rush held is paid (one hold per user in the bench settings), by
//! `concurrency` clients; latency counts from the submission to the payment's outcome event.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use seatline_shared::events::OutcomeKind;
use serde::Serialize;
use uuid::Uuid;

use crate::client::Api;
use crate::events::Collector;
use crate::setup::User;
use crate::stats::{Recorder, Summary};

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PayResult {
    pub payments: u64,
    pub paid: u64,
    pub failed: u64,
    pub undecided: u64,
    pub payments_per_sec: f64,
    pub submit: Summary,
    pub completion: Summary,
}

/// `holds`: (user index, reservation id). Also returns the ids of the accepted payments.
pub async fn run(
    api: &Api,
    collector: &Collector,
    users: &[User],
    holds: &[(usize, Uuid)],
    concurrency: usize,
) -> (PayResult, Vec<Uuid>) {
    let started = Instant::now();
    let submitted: Vec<(Uuid, Instant, Duration, bool)> = stream::iter(holds.iter().copied())
        .map(|(user, reservation)| {
            let (api, token) = (api.clone(), users[user].token.clone());
            async move {
                let id = Uuid::new_v4();
                let t0 = Instant::now();
                let ok = api
                    .pay(&token, id, reservation)
                    .await
                    .map(|a| a.status == 202)
                    .unwrap_or(false);
                (id, t0, t0.elapsed(), ok)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let ids: Vec<Uuid> = submitted.iter().filter(|s| s.3).map(|s| s.0).collect();
    let undecided = collector.wait_for(&ids, Duration::from_secs(60)).await as u64;
    let (mut submit, mut completion) = (Recorder::default(), Recorder::default());
    let (mut paid, mut failed, mut last) = (0, 0, started);
    for (id, t0, latency, _) in &submitted {
        submit.record(*latency);
        if let Some(seen) = collector.get(id) {
            completion.record(seen.at.saturating_duration_since(*t0));
            last = last.max(seen.at);
            if seen.outcome.kind == OutcomeKind::PaymentSucceeded {
                paid += 1;
            } else {
                failed += 1;
            }
        }
    }
    let result = PayResult {
        payments: submitted.len() as u64,
        paid,
        failed,
        undecided,
        payments_per_sec: (paid + failed) as f64
            / last
                .saturating_duration_since(started)
                .as_secs_f64()
                .max(0.001),
        submit: submit.summary(),
        completion: completion.summary(),
    };
    (result, ids)
}
