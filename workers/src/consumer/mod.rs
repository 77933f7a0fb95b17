//! The ordered, batching consumer that every request worker runs on.
//!
//! One `StreamConsumer` polls the main queue (so rebalance callbacks always run) and hands each
//! message to a task owned by its partition. A partition task takes whatever is already waiting
//! (up to `WORKER_BATCH_SIZE`), gives the batch to the topic's [`BatchHandler`], which decides it
//! in one database transaction, and only after that commit stores the next offset. Partitions
//! run in parallel; within one, messages are handled strictly in offset order.
//!
//! Why not `split_partition_queue`: split queues can stall on a lost wakeup, a dropped queue
//! leaves its partition unreadable, and rebalance hooks only fire while the main queue is
//! polled. Dispatching from the main queue avoids all three.
//!
//! Rebalances: every assignment of a partition gets a fresh generation. A partition task stores
//! offsets only while its generation is current, checked under the same lock the revoke
//! callback takes, so a task still finishing a batch for a revoked partition cannot store a
//! stale offset into a later assignment (librdkafka commits stored offsets on revoke). What it
//! had decided but not stored is redelivered to the next owner and found in the inbox
//! (`processed_requests`), so it changes nothing.

pub mod dead_letter;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use seatline_shared::config::KafkaConfig;

/// Decides one batch of messages from one partition, in offset order, and commits the outcome
/// to the database before returning `Ok`. An `Err` means nothing was committed; the batch is
/// retried (with backoff) for as long as the partition stays assigned.
pub trait BatchHandler: Send + Sync + 'static {
    fn handle(&self, batch: &[OwnedMessage]) -> impl Future<Output = anyhow::Result<()>> + Send;
}

type PartitionKey = (String, i32);

/// Current generation of each assigned partition. Shared by the rebalance callbacks and the
/// partition tasks.
#[derive(Default)]
struct Assignments {
    generations: Mutex<HashMap<PartitionKey, u64>>,
    next_generation: AtomicU64,
}

impl Assignments {
    fn current(&self, key: &PartitionKey) -> Option<u64> {
        self.generations
            .lock()
            .expect("assignments lock")
            .get(key)
            .copied()
    }
}

/// Consumer context that tracks assignments and commits stored offsets before a revoke.
pub struct RebalanceContext {
    assignments: Arc<Assignments>,
}

impl ClientContext for RebalanceContext {
    /// librdkafka's periodic statistics carry each partition's lag behind the high watermark.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // Partition -1 is librdkafka's internal unassigned partition; negative lag is unknown.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!("consumer_lag", "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            {
                let mut generations = self
                    .assignments
                    .generations
                    .lock()
                    .expect("assignments lock");
                for elem in tpl.elements() {
                    generations.remove(&(elem.topic().to_owned(), elem.partition()));
                }
            }
            // Everything stored so far was committed to the database first; hand it over.
            commit_stored(consumer, "revoke");
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut generations = self
                .assignments
                .generations
                .lock()
                .expect("assignments lock");
            for elem in tpl.elements() {
                let generation = self
                    .assignments
                    .next_generation
                    .fetch_add(1, Ordering::Relaxed);
                generations.insert((elem.topic().to_owned(), elem.partition()), generation);
            }
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
    }
}

type Consumer_ = StreamConsumer<RebalanceContext>;

/// Commits the stored offsets (each stored only after its batch's database commit). Nothing
/// stored is fine; a failure only means the next owner redoes that work, idempotently.
fn commit_stored<C: Consumer<RebalanceContext>>(consumer: &C, when: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
        Err(err) => {
            tracing::warn!(error = %err, when, "offset commit failed; the work is redone idempotently")
        }
    }
}

/// Settings of one consumer run.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group_id: String,
    pub topics: Vec<String>,
    pub batch_size: usize,
}

struct PartitionWorker {
    generation: u64,
    sender: mpsc::Sender<OwnedMessage>,
}

/// Creates the consumer and subscribes it.
pub fn subscribe(
    kafka: &KafkaConfig,
    settings: &ConsumerSettings,
) -> anyhow::Result<Arc<Consumer_>> {
    let context = RebalanceContext {
        assignments: Arc::new(Assignments::default()),
    };
    let consumer: Consumer_ = seatline_shared::kafka::consumer_config(kafka, &settings.group_id)
        .set("statistics.interval.ms", "5000")
        .set_log_level(RDKafkaLogLevel::Warning)
        .create_with_context(context)?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    Ok(Arc::new(consumer))
}

/// Runs the consumer until `shutdown`: dispatches messages to partition tasks, which give
/// their batches to `handler` (one batch is always from one partition of one topic). On shutdown, partition tasks finish (or abandon) their current batch,
/// stored offsets are committed, and the consumer leaves the group.
pub async fn run<H: BatchHandler>(
    kafka: KafkaConfig,
    settings: ConsumerSettings,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let consumer = subscribe(&kafka, &settings)?;
    let assignments = consumer.context().assignments.clone();
    let mut workers: HashMap<PartitionKey, PartitionWorker> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let stop_tasks = CancellationToken::new();

    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        let message = match message {
            Ok(m) => m.detach(),
            Err(err) => {
                tracing::warn!(error = %err, "consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let key: PartitionKey = (message.topic().to_owned(), message.partition());
        let Some(generation) = assignments.current(&key) else {
            // Fetched before a revoke took effect; the next owner reads it again.
            continue;
        };
        let stale = workers
            .get(&key)
            .is_none_or(|w| w.generation != generation || w.sender.is_closed());
        if stale {
            let (sender, receiver) = mpsc::channel(settings.batch_size.max(1) * 2);
            let task = PartitionTask {
                key: key.clone(),
                generation,
                consumer: consumer.clone(),
                assignments: assignments.clone(),
                handler: handler.clone(),
                batch_size: settings.batch_size.max(1),
                stop: stop_tasks.clone(),
            };
            tasks.spawn(task.run(receiver));
            workers.insert(key.clone(), PartitionWorker { generation, sender });
        }
        let worker = workers.get(&key).expect("worker just ensured");
        // A full channel pauses dispatch: back-pressure instead of unbounded buffering.
        let sent = tokio::select! {
            _ = shutdown.cancelled() => break,
            sent = worker.sender.send(message) => sent,
        };
        if sent.is_err() {
            workers.remove(&key);
        }
        // Reap finished tasks so the set does not grow with rebalances.
        while tasks.try_join_next().is_some() {}
    }

    // Let running batches finish, abandon queued messages, then hand over what is stored.
    drop(workers);
    stop_tasks.cancel();
    while tasks.join_next().await.is_some() {}
    commit_stored(&*consumer, "shutdown");
    consumer.unsubscribe();
    tracing::info!(group = %settings.group_id, "consumer stopped");
    Ok(())
}

struct PartitionTask<H> {
    key: PartitionKey,
    generation: u64,
    consumer: Arc<Consumer_>,
    assignments: Arc<Assignments>,
    handler: Arc<H>,
    batch_size: usize,
    stop: CancellationToken,
}

impl<H: BatchHandler> PartitionTask<H> {
    fn owned(&self) -> bool {
        self.assignments.current(&self.key) == Some(self.generation)
    }

    async fn run(self, mut receiver: mpsc::Receiver<OwnedMessage>) {
        let mut batch = Vec::with_capacity(self.batch_size);
        loop {
            let first = tokio::select! {
                _ = self.stop.cancelled() => return,
                m = receiver.recv() => match m { Some(m) => m, None => return },
            };
            batch.clear();
            batch.push(first);
            while batch.len() < self.batch_size {
                match receiver.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            metrics::histogram!("worker_batch_size", "topic" => self.key.0.clone())
                .record(batch.len() as f64);
            if !self.handle_until_committed(&batch).await {
                return;
            }
            if !self.store_offset(batch.last().expect("non-empty batch").offset()) {
                return;
            }
        }
    }

    /// Retries the batch with backoff until it commits. False when the partition was revoked
    /// or the worker is stopping first; the batch is then left for redelivery.
    async fn handle_until_committed(&self, batch: &[OwnedMessage]) -> bool {
        let mut delay = Duration::from_millis(50);
        loop {
            match self.handler.handle(batch).await {
                Ok(()) => return true,
                Err(err) => {
                    tracing::warn!(
                        topic = %self.key.0, partition = self.key.1, size = batch.len(),
                        error = format!("{err:#}"), "batch failed; retrying"
                    );
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
            if !self.owned() {
                return false;
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Stores `offset + 1` if this task's assignment is still current. The check and the store
    /// happen under the assignments lock, which the revoke callback also takes.
    fn store_offset(&self, offset: i64) -> bool {
        let generations = self
            .assignments
            .generations
            .lock()
            .expect("assignments lock");
        if generations.get(&self.key) != Some(&self.generation) {
            return false;
        }
        let mut tpl = TopicPartitionList::new();
        if let Err(err) =
            tpl.add_partition_offset(&self.key.0, self.key.1, Offset::Offset(offset + 1))
        {
            tracing::error!(error = %err, "cannot build offset list");
            return false;
        }
        match self.consumer.store_offsets(&tpl) {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(topic = %self.key.0, partition = self.key.1, error = %err, "storing offset failed");
                false
            }
        }
    }
}
