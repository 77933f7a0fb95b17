//! The report: a table on stdout, a JSON result, and an SVG plot of latency percentiles
//! against offered load.

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::calibration::MachineSpeed;
use crate::invariants::Invariants;
use crate::resources::Usage;
use crate::scenarios::{
    baseline::BaselineResult,
    pay::PayResult,
    queue::QueueResult,
    rush::{Step, StepSecond},
};

/// Reads one latency figure of a rush step, for a plotted series.
type StepValue = fn(&Step) -> f64;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model: cpuinfo
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .unwrap_or("unknown")
                .trim()
                .to_owned(),
            memory_gib: kib / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub label: String,
    pub machine: Machine,
    /// How fast the machine was at the start and the end of the run.
    pub machine_speed: MachineSpeed,
    pub seats_in_database: i64,
    pub rush_seats: usize,
    pub users: usize,
    /// Polls by admitted users (`queue`).
    pub queue: Option<QueueResult>,
    /// Polls by users waiting in line (`queue-waiting`).
    pub queue_waiting: Option<QueueResult>,
    pub rush: Vec<Step>,
    /// The highest offered rate whose every request was decided with p99 within the limit.
    pub sustainable_rate: Option<u64>,
    pub sustainable_decisions_per_sec: Option<f64>,
    pub pay: Option<PayResult>,
    pub baseline: Option<BaselineResult>,
    pub ratio_to_baseline: Option<f64>,
    pub api: Option<Usage>,
    pub workers: Option<Usage>,
    pub invariants: Invariants,
}

impl Report {
    pub fn print(&self) {
        println!(
            "\nSeatline bench {} ({} CPUs, {}, {:.0} GiB; {} seats in the database, rush over {})",
            self.label,
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.memory_gib,
            self.seats_in_database,
            self.rush_seats
        );
        let speed = &self.machine_speed;
        println!(
            "machine speed, start / end: {:.2} / {:.2} ns per step of a fixed loop, {:.0} / {:.0} ns per system call (each the fastest of {})",
            speed.at_start.compute_ns_per_step,
            speed.at_end.compute_ns_per_step,
            speed.at_start.syscall_ns,
            speed.at_end.syscall_ns,
            crate::calibration::REPEATS
        );
        for (name, queue) in [
            ("queue", &self.queue),
            ("queue-waiting", &self.queue_waiting),
        ] {
            if let Some(q) = queue {
                println!(
                    "{name}: token issues {:.0}/s (p99 {:.1} ms), status polls {:.0}/s (p99 {:.1} ms, {} errors)",
                    q.token_issues.issues_per_sec,
                    q.token_issues.latency.p99_ms,
                    q.polls_per_sec,
                    q.poll.p99_ms,
                    q.poll_errors
                );
                if let Some(cpu) = &q.token_issues.cpu {
                    println!(
                        "  while issuing: {}",
                        cpu.describe(q.token_issues.issued, "token")
                    );
                }
            }
        }
        if !self.rush.is_empty() {
            println!(
                "{:>9} {:>8} {:>8} {:>9} {:>11} {:>11} {:>12} {:>12} {:>11}",
                "offered/s",
                "sent",
                "refused",
                "undecided",
                "submit p50",
                "submit p99",
                "decision p50",
                "decision p99",
                "decided/s"
            );
            for s in &self.rush {
                println!(
                    "{:>9} {:>8} {:>8} {:>9} {:>9.1}ms {:>9.1}ms {:>10.1}ms {:>10.1}ms {:>11.0}{}",
                    s.offered_per_sec,
                    s.sent,
                    s.refused,
                    s.undecided,
                    s.submit.p50_ms,
                    s.submit.p99_ms,
                    s.decision.p50_ms,
                    s.decision.p99_ms,
                    s.decisions_per_sec,
                    if s.sustainable {
                        ""
                    } else {
                        "  (not sustainable)"
                    }
                );
            }
            match (self.sustainable_rate, self.sustainable_decisions_per_sec) {
                (Some(r), Some(d)) => {
                    println!("sustainable: {r} requests/s offered, {d:.0} decisions/s")
                }
                _ => println!("sustainable: none of the offered rates"),
            }
            for s in &self.rush {
                if !s.seconds.is_empty() {
                    let p99s = |p99: fn(&StepSecond) -> f64| {
                        s.seconds
                            .iter()
                            .map(|second| format!("{:.0}", p99(second)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    };
                    println!(
                        "{:>9}/s by second: submit p99 {} ms; decision p99 {} ms; send lag p99 {} ms",
                        s.offered_per_sec,
                        p99s(|second| second.submit_p99_ms),
                        p99s(|second| second.decision_p99_ms),
                        p99s(|second| second.send_lag_p99_ms)
                    );
                }
            }
            for s in &self.rush {
                if let Some(cpu) = &s.cpu {
                    let decided = s.accepted - s.undecided;
                    println!(
                        "{:>9}/s: {}",
                        s.offered_per_sec,
                        cpu.describe(decided, "decision")
                    );
                }
            }
        }
        if let Some(p) = &self.pay {
            println!("pay: {} payments ({} paid, {} failed, {} undecided), {:.0}/s, submit p99 {:.1} ms, completion p50 {:.1} ms p99 {:.1} ms", p.payments, p.paid, p.failed, p.undecided, p.payments_per_sec, p.submit.p99_ms, p.completion.p50_ms, p.completion.p99_ms);
        }
        if let Some(b) = &self.baseline {
            println!(
                "baseline-sync: {:.0} decisions/s (p99 {:.1} ms, {} errors)",
                b.decisions_per_sec, b.latency.p99_ms, b.errors
            );
            if let Some(cpu) = &b.cpu {
                println!("  {}", cpu.describe(b.decisions, "decision"));
            }
        }
        if let Some(r) = self.ratio_to_baseline {
            println!("ratio of sustainable decisions/s to baseline-sync: {r:.2}x");
        }
        for (name, usage) in [("api", &self.api), ("workers", &self.workers)] {
            if let Some(u) = usage {
                println!(
                    "{name}: peak RSS {:.1} MiB, CPU {:.1} s",
                    u.peak_rss_mib, u.cpu_seconds
                );
            }
        }
        let i = &self.invariants;
        println!(
            "invariants: seats held or sold twice {}, accepted without outcome {}, balances+payments {} vs charges {} => {}",
            i.seats_held_or_sold_twice, i.accepted_without_outcome, i.balances_plus_payments, i.charges,
            if i.ok { "OK" } else { "FAILED" }
        );
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let stem = format!(
            "bench-{}{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            if self.label.is_empty() {
                String::new()
            } else {
                format!("-{}", self.label.replace(' ', "-"))
            }
        );
        let json = dir.join(format!("{stem}.json"));
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        let svg = dir.join(format!("{stem}.svg"));
        self.plot(&svg)?;
        Ok((json, svg))
    }

    fn plot(&self, path: &Path) -> anyhow::Result<()> {
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let max_x = self
            .rush
            .iter()
            .map(|s| s.offered_per_sec)
            .max()
            .unwrap_or(1) as f64
            * 1.05;
        let max_y = self
            .rush
            .iter()
            .map(|s| s.decision.p99_ms.max(s.submit.p99_ms))
            .fold(10.0, f64::max)
            .min(10_000.0)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Seatline rush {}: latency vs offered load", self.label),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_x, 0f64..max_y)?;
        chart
            .configure_mesh()
            .x_desc("offered reservations per second")
            .y_desc("latency (ms)")
            .draw()?;
        let series: [(&str, RGBColor, StepValue); 4] = [
            ("submit p50", BLUE, |s| s.submit.p50_ms),
            ("submit p99", CYAN, |s| s.submit.p99_ms),
            ("decision p50", RED, |s| s.decision.p50_ms),
            ("decision p99", MAGENTA, |s| s.decision.p99_ms),
        ];
        for (name, color, value) in series {
            let points: Vec<(f64, f64)> = self
                .rush
                .iter()
                .map(|s| (s.offered_per_sec as f64, value(s).min(max_y)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
        Ok(())
    }
}
