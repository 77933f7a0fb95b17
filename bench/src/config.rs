//! The benchmark's command line. Connection settings come from the same variables as the
//! services (`DATABASE_URL`, `KAFKA_*`, `ADMIN_TOKEN`).

use std::path::PathBuf;

use seatline_shared::config::{DatabaseConfig, KafkaConfig};

/// Sale-day load against a running Seatline.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "seatline-bench", version, about, args_override_self = true)]
pub struct BenchArgs {
    /// Base URL of the API.
    #[arg(long, env = "BENCH_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// The API's admin token, to create bench data.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub kafka: KafkaConfig,
    /// Users holding ACTIVE tokens in the rush.
    #[arg(long, default_value_t = 20_000)]
    pub users: usize,
    /// Concert dates to create (50 seats each) for the rush.
    #[arg(long, default_value_t = 200)]
    pub dates: usize,
    /// Zipf exponent of seat popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// Offered reservation rates of the rush, in requests per second, stepped up in order; finer
    /// near the ceiling measured on the project's machine, coarser past it.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "250,500,1000,1500,2000,2500,3000,3500,4000,5000,6000,7000,8000,9000,10000,11000,12000,13000,14000,16000,18000,20000"
    )]
    pub rates: Vec<u64>,
    /// Seconds per rate step.
    #[arg(long, default_value_t = 10)]
    pub step_secs: u64,
    /// Decision p99 above which the rush stops stepping up (and a step is not sustainable).
    #[arg(long, default_value_t = 1000)]
    pub p99_limit_ms: u64,
    /// Requests in flight at once, and so open connections, at most (0: unbounded). A request
    /// due while every slot is taken waits for one, and its latency counts from when it was due,
    /// as behind a proxy that keeps a bounded pool of connections to the API. Unbounded, every
    /// request past the API's connection cap opens a connection only to be refused.
    #[arg(long, default_value_t = 0)]
    pub max_http_connections: usize,
    /// Concurrent clients of the closed-loop scenarios (pay, queue, baseline-sync).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds each closed-loop scenario runs.
    #[arg(long, default_value_t = 10)]
    pub closed_loop_secs: u64,
    /// Scenarios to run. `queue-waiting` (polls by users waiting in line) needs a stack that
    /// admits nobody, and is not in the default list; deploy/local/bench.sh runs it last, with
    /// the workers stopped.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "queue,rush,pay,baseline-sync"
    )]
    pub scenarios: Vec<String>,
    /// PIDs of the api and workers, for peak RSS and CPU time from /proc.
    #[arg(long)]
    pub api_pid: Option<u32>,
    #[arg(long)]
    pub workers_pid: Option<u32>,
    /// PIDs of PostgreSQL's postmaster and of the Kafka broker, when they run on this machine:
    /// each scenario's CPU time is then split among all of the stack's processes.
    #[arg(long)]
    pub postgres_pid: Option<u32>,
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// A label for this run in the report (e.g. "10k seats").
    #[arg(long, default_value = "")]
    pub label: String,
    /// Where the JSON result and the plot go.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
}

impl BenchArgs {
    /// The length of each rush step (at least a second).
    pub fn step(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.step_secs.max(1))
    }

    /// Whether the run includes `scenario`.
    pub fn wants(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }

    /// Outcome events the run's requests can have at most: every rush step sent in full, and a
    /// payment by every user.
    pub fn outcomes_at_most(&self) -> usize {
        let rush: u64 = if self.wants("rush") {
            let step_secs = self.step().as_secs();
            self.rates.iter().map(|rate| rate * step_secs).sum()
        } else {
            0
        };
        let pay = if self.wants("pay") { self.users } else { 0 };
        usize::try_from(rush)
            .unwrap_or(usize::MAX)
            .saturating_add(pay)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::BenchArgs;

    fn args(extra: &[&str]) -> BenchArgs {
        let base = ["seatline-bench", "--admin-token", "t", "--users", "100"];
        BenchArgs::parse_from(base.iter().chain(extra))
    }

    #[test]
    fn outcomes_at_most_count_every_rush_step_and_a_payment_per_user() {
        let rush_and_pay = args(&["--rates", "10,20", "--step-secs", "3"]);
        assert_eq!(rush_and_pay.outcomes_at_most(), (10 + 20) * 3 + 100);
        let rush_only = args(&[
            "--rates",
            "10,20",
            "--step-secs",
            "3",
            "--scenarios",
            "rush",
        ]);
        assert_eq!(rush_only.outcomes_at_most(), 90);
        assert_eq!(args(&["--scenarios", "queue"]).outcomes_at_most(), 0);
    }
}
