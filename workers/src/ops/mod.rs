//! Operator commands: replaying events and requests, and the dead-letter topic. Each long
//! operation shows progress (a bar on a terminal, log lines otherwise) and stops safely on
//! ctrl-c: it finishes the step in hand (a published chunk, a decided and committed batch) and
//! reports how far it got.

pub mod dlq;
pub mod replay_events;
pub mod replay_requests;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Set once ctrl-c (or SIGTERM) arrives; checked between steps.
#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Listens for the shutdown signal in the background.
    pub fn on_signal() -> Self {
        let flag = Self::default();
        let set = flag.clone();
        tokio::spawn(async move {
            seatline_shared::shutdown::signal().await;
            set.0.store(true, Ordering::SeqCst);
            eprintln!("interrupted: finishing the current step, then stopping");
        });
        flag
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Progress of a long operation.
pub struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    bar: Option<ProgressBar>,
    last_log: Instant,
}

impl Progress {
    pub fn new(label: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(label);
            bar
        });
        Self {
            label,
            total,
            done: 0,
            bar,
            last_log: Instant::now(),
        }
    }

    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.set_position(self.done),
            None if self.last_log.elapsed() >= Duration::from_secs(1) => {
                self.last_log = Instant::now();
                tracing::info!(done = self.done, total = self.total, "{}", self.label);
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish(),
            None => tracing::info!(
                done = self.done,
                total = self.total,
                "{} finished",
                self.label
            ),
        }
    }
}
