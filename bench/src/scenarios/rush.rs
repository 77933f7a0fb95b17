//! `rush`: reservations at constant arrival rates (open loop: each request is due at its own
//! time, and latency counts from that time, so queueing is not hidden), stepped up until the
//! decision p99 passes the limit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seatline_shared::events::OutcomeKind;
use serde::Serialize;
use uuid::Uuid;

use super::SeatPicker;
use crate::client::Api;
use crate::events::{Collector, Seen};
use crate::resources::{CpuSplit, Processes};
use crate::setup::User;
use crate::stats::{Recorder, Summary};

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub offered_per_sec: u64,
    pub sent: u64,
    pub accepted: u64,
    pub refused: u64,
    pub undecided: u64,
    pub submit: Summary,
    pub decision: Summary,
    pub decisions_per_sec: f64,
    pub held: u64,
    pub sustainable: bool,
    /// From the step's first request until its last decision was seen (or given up on).
    pub cpu: Option<CpuSplit>,
    /// The step second by second, by when each request was due: whether a step's p99 comes
    /// from one stalled second or from all of them.
    pub seconds: Vec<StepSecond>,
}

/// The requests of one second of a step (those due in it).
#[derive(Debug, Clone, Serialize)]
pub struct StepSecond {
    /// Seconds from the step's start.
    pub second: u64,
    pub sent: u64,
    pub refused: u64,
    pub submit_p99_ms: f64,
    /// Of the requests of this second that were decided.
    pub decision_p99_ms: f64,
    /// How late the load generator started sending them: from when each was due until its
    /// task began to send it. A stalled second whose submit p99 is high while this stays low
    /// stalled past the load generator (the API, the broker or the kernel between); one where
    /// this is high too was held back in the load generator itself, or in the machine's
    /// scheduler before it.
    pub send_lag_p99_ms: f64,
}

/// Per-second latency recorders of one step.
#[derive(Default)]
struct SecondRecorder {
    sent: u64,
    refused: u64,
    submit: Recorder,
    decision: Recorder,
    send_lag: Recorder,
}

/// The requests of a step that started at `start`, second by second of when each was due;
/// `decided_at` yields, for each of `results` in turn, when its outcome was seen, if it was.
fn by_second(
    start: Instant,
    results: &[Sent],
    decided_at: impl IntoIterator<Item = Option<Instant>>,
) -> Vec<StepSecond> {
    let mut seconds: Vec<SecondRecorder> = Vec::new();
    for (sent, decided_at) in results.iter().zip(decided_at) {
        let index = sent.due.saturating_duration_since(start).as_secs() as usize;
        if seconds.len() <= index {
            seconds.resize_with(index + 1, SecondRecorder::default);
        }
        let second = &mut seconds[index];
        second.sent += 1;
        second.refused += u64::from(sent.id.is_none());
        second.submit.record(sent.latency);
        second.send_lag.record(sent.send_lag);
        if let Some(at) = decided_at {
            second
                .decision
                .record(at.saturating_duration_since(sent.due));
        }
    }
    seconds
        .iter()
        .enumerate()
        .map(|(second, r)| StepSecond {
            second: second as u64,
            sent: r.sent,
            refused: r.refused,
            submit_p99_ms: r.submit.summary().p99_ms,
            decision_p99_ms: r.decision.summary().p99_ms,
            send_lag_p99_ms: r.send_lag.summary().p99_ms,
        })
        .collect()
}

/// One sent request.
struct Sent {
    /// When it was due.
    due: Instant,
    /// From when it was due until its task began to send it.
    send_lag: Duration,
    /// From when it was due until the 202 (or the refusal).
    latency: Duration,
    /// The request id, if accepted.
    id: Option<Uuid>,
}

/// Accepted requests of the whole rush: (request id, user index).
pub type Accepted = Arc<Mutex<Vec<(Uuid, usize)>>>;

pub struct Rush<'a> {
    pub api: &'a Api,
    pub collector: &'a Collector,
    pub users: &'a [User],
    pub seats: &'a SeatPicker,
    pub step: Duration,
    pub p99_limit: Duration,
    pub processes: &'a Processes,
}

impl Rush<'_> {
    pub async fn run(&self, rates: &[u64], accepted: &Accepted) -> Vec<Step> {
        let mut steps = Vec::new();
        for &rate in rates {
            let step = self.step_at(rate, accepted).await;
            tracing::info!(
                rate,
                decision_p99_ms = step.decision.p99_ms,
                decisions_per_sec = step.decisions_per_sec,
                "rush step"
            );
            let stop = !step.sustainable;
            steps.push(step);
            if stop {
                break;
            }
        }
        steps
    }

    async fn step_at(&self, rate: u64, all_accepted: &Accepted) -> Step {
        let total = rate * self.step.as_secs();
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let start = Instant::now() + Duration::from_millis(50);
        // Sized up front, like the rush's list of accepted requests, so that no push copies the
        // whole list while the tasks that push next wait for the lock.
        let results: Arc<Mutex<Vec<Sent>>> =
            Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
        all_accepted.lock().expect("lock").reserve(total as usize);
        let mut rng = StdRng::from_entropy();
        let mut tasks = tokio::task::JoinSet::new();
        let cpu_before = self.processes.snapshot();
        for i in 0..total {
            let due = start + interval * i as u32;
            tokio::time::sleep_until(due.into()).await;
            let user_index = rng.gen_range(0..self.users.len());
            let (date, seat) = self.seats.pick(&mut rng);
            let (api, token, results) = (
                self.api.clone(),
                self.users[user_index].token.clone(),
                results.clone(),
            );
            let accepted = all_accepted.clone();
            tasks.spawn(async move {
                let send_lag = due.elapsed();
                let answer = api.reserve(&token, date, seat).await;
                let latency = due.elapsed();
                let id = answer.ok().and_then(|a| a.request_id);
                if let Some(id) = id {
                    accepted.lock().expect("lock").push((id, user_index));
                }
                results.lock().expect("lock").push(Sent {
                    due,
                    send_lag,
                    latency,
                    id,
                });
            });
        }
        while tasks.join_next().await.is_some() {}
        let results = std::mem::take(&mut *results.lock().expect("lock"));
        let ids: Vec<Uuid> = results.iter().filter_map(|r| r.id).collect();
        let undecided = self
            .collector
            .wait_for(&ids, self.p99_limit.max(Duration::from_secs(10)) * 3)
            .await as u64;
        let cpu = self.processes.split_since(cpu_before);

        let mut submit = Recorder::default();
        let mut decision = Recorder::default();
        let mut last_decision = start;
        let mut held = 0;
        // Each outcome is looked up once, for the step's figures and its seconds alike.
        let seen: Vec<Option<Seen>> = results
            .iter()
            .map(|r| r.id.and_then(|id| self.collector.get(&id)))
            .collect();
        for (sent, seen) in results.iter().zip(&seen) {
            submit.record(sent.latency);
            if let Some(seen) = seen {
                decision.record(seen.at.saturating_duration_since(sent.due));
                last_decision = last_decision.max(seen.at);
                if seen.outcome.kind == OutcomeKind::Held {
                    held += 1;
                }
            }
        }
        let decided = ids.len() as u64 - undecided;
        let span = last_decision
            .saturating_duration_since(start)
            .as_secs_f64()
            .max(self.step.as_secs_f64());
        let decision = decision.summary();
        Step {
            offered_per_sec: rate,
            sent: results.len() as u64,
            accepted: ids.len() as u64,
            refused: (results.len() - ids.len()) as u64,
            undecided,
            submit: submit.summary(),
            decisions_per_sec: decided as f64 / span,
            sustainable: undecided == 0
                && ids.len() == results.len()
                && decision.p99_ms <= self.p99_limit.as_millis() as f64,
            decision,
            held,
            cpu,
            seconds: by_second(start, &results, seen.iter().map(|s| s.map(|s| s.at))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use uuid::Uuid;

    use super::{by_second, Sent};

    /// Requests fall in the second they were due in; a refused one counts as sent and refused,
    /// and only decided ones count towards the decision p99. Each second's send lag is of all
    /// its requests.
    #[test]
    fn requests_are_counted_in_the_second_they_were_due_in() {
        let start = Instant::now();
        let (early, late, undecided) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let ms = Duration::from_millis;
        let sent = |due, send_lag, latency, id| Sent {
            due: start + due,
            send_lag,
            latency,
            id,
        };
        let results = vec![
            sent(ms(200), ms(1), ms(5), Some(early)),
            sent(ms(1_500), ms(30), ms(40), Some(late)),
            sent(ms(1_700), ms(2), ms(9), None),
            sent(ms(1_900), ms(3), ms(7), Some(undecided)),
        ];
        let decided = [Some(start + ms(250)), Some(start + ms(1_600)), None, None];
        let seconds = by_second(start, &results, decided);
        assert_eq!(seconds.len(), 2);
        let (first, second) = (&seconds[0], &seconds[1]);
        assert_eq!((first.second, first.sent, first.refused), (0, 1, 0));
        assert_eq!((second.second, second.sent, second.refused), (1, 3, 1));
        // HDR histograms keep three significant digits.
        assert!((first.submit_p99_ms - 5.0).abs() < 0.01, "{first:?}");
        assert!((first.decision_p99_ms - 50.0).abs() < 0.1, "{first:?}");
        assert!((second.submit_p99_ms - 40.0).abs() < 0.1, "{second:?}");
        assert!((second.decision_p99_ms - 100.0).abs() < 0.1, "{second:?}");
        assert!((first.send_lag_p99_ms - 1.0).abs() < 0.01, "{first:?}");
        assert!((second.send_lag_p99_ms - 30.0).abs() < 0.1, "{second:?}");
    }
}
