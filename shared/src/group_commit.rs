//! Group commit: concurrent callers' writes gathered into one database transaction.
//!
//! Under load, a transaction per HTTP request (or per partition's batch) makes the commit (a WAL
//! flush and a round trip) the most frequent thing the database does, and a hot row (the queue
//! counter) serialises every one of them. A [`GroupCommit`] queues items and hands them to a batch handler, which
//! writes them in one transaction and answers each. A caller waits for its batch's commit,
//! exactly as it would for its own, so nothing is acknowledged before it is durable.
//!
//! Batches form on their own: while `max_in_flight` batches run, new items queue, and the next
//! batch takes all of them (up to `max_batch`). An idle system runs batches of one with no
//! added delay.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

/// Sizes of a [`GroupCommit`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most items in one batch; bounds a statement's size.
    pub max_batch: usize,
    /// Batches running at once. More than one keeps a slow commit from stalling every caller;
    /// few keep batches large.
    pub max_in_flight: usize,
}

struct Pending<I, O> {
    item: I,
    reply: oneshot::Sender<O>,
}

/// The batching task ended before answering (the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the batch writer stopped")]
pub struct Stopped;

/// Handle to a batching task. Cheap to clone; the task ends when every handle is dropped.
pub struct GroupCommit<I, O> {
    sender: mpsc::Sender<Pending<I, O>>,
}

impl<I, O> Clone for GroupCommit<I, O> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> GroupCommit<I, O> {
    /// Starts the task on the current runtime. `handler` gets each batch in arrival order and
    /// returns one output per item, in the same order.
    pub fn spawn<F, Fut>(limits: Limits, handler: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let max_batch = limits.max_batch.max(1);
        let (sender, receiver) = mpsc::channel(4 * max_batch);
        tokio::spawn(run(receiver, limits, Arc::new(handler)));
        Self { sender }
    }

    /// Queues the item and waits for its output.
    pub async fn submit(&self, item: I) -> Result<O, Stopped> {
        let (reply, output) = oneshot::channel();
        self.sender
            .send(Pending { item, reply })
            .await
            .map_err(|_| Stopped)?;
        output.await.map_err(|_| Stopped)
    }
}

async fn run<I, O, F, Fut>(
    mut receiver: mpsc::Receiver<Pending<I, O>>,
    limits: Limits,
    handler: Arc<F>,
) where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<O>> + Send + 'static,
{
    let max_batch = limits.max_batch.max(1);
    let slots = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    loop {
        // Waiting for a free slot before taking work is what lets the queue, and so the next
        // batch, grow while the database is busy.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = receiver.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let handler = handler.clone();
        tokio::spawn(async move {
            let (items, replies): (Vec<I>, Vec<oneshot::Sender<O>>) =
                batch.into_iter().map(|p| (p.item, p.reply)).unzip();
            let outputs = handler(items).await;
            debug_assert_eq!(outputs.len(), replies.len(), "one output per item");
            for (reply, output) in replies.into_iter().zip(outputs) {
                // A caller that gave up (its request was cancelled) no longer listens.
                let _ = reply.send(output);
            }
            drop(slot);
        });
    }
}

/// Writes `items` together with `together`, which returns one output per item in order. If
/// that fails (one bad item fails a whole statement or transaction), each item is written on
/// its own with `single`, so each gets its own answer and one item's trouble does not fail the
/// others. A single item goes straight to `single`.
pub async fn together_or_each<I, O, E, T, TFut, S, SFut>(
    items: Vec<I>,
    together: T,
    single: S,
) -> Vec<Result<O, E>>
where
    I: Clone,
    E: std::fmt::Display,
    T: FnOnce(Vec<I>) -> TFut,
    TFut: Future<Output = Result<Vec<O>, E>>,
    S: Fn(I) -> SFut,
    SFut: Future<Output = Result<O, E>>,
{
    if items.len() > 1 {
        match together(items.clone()).await {
            Ok(outputs) => return outputs.into_iter().map(Ok).collect(),
            Err(err) => tracing::warn!(
                // `#`: the whole chain of an anyhow error.
                error = format!("{err:#}"),
                size = items.len(),
                "a batched write failed; writing its items one by one"
            ),
        }
    }
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        results.push(single(item).await);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_items_share_batches_and_get_their_own_outputs() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counter = batches.clone();
        let doubler = GroupCommit::spawn(
            Limits {
                max_batch: 64,
                max_in_flight: 1,
            },
            move |items: Vec<u32>| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { items.into_iter().map(|i| i * 2).collect::<Vec<_>>() }
            },
        );
        let outputs = futures::future::join_all((0..200u32).map(|i| doubler.submit(i))).await;
        let outputs: Vec<u32> = outputs.into_iter().map(Result::unwrap).collect();
        assert_eq!(outputs, (0..200u32).map(|i| i * 2).collect::<Vec<_>>());
        let batches = batches.load(Ordering::SeqCst);
        assert!(
            (4..=10).contains(&batches),
            "200 items in batches of at most 64 took {batches} batches"
        );
    }

    #[tokio::test]
    async fn a_failing_batch_is_retried_item_by_item_and_the_others_succeed() {
        let calls = std::sync::Mutex::new(Vec::new());
        let write = |items: Vec<u32>| {
            calls.lock().unwrap().push(items.clone());
            async move {
                if items.contains(&13) {
                    return Err("cannot commit");
                }
                Ok(items)
            }
        };
        let single = |item: u32| {
            let result = write(vec![item]);
            async move { result.await.map(|mut items| items.remove(0)) }
        };
        let results = together_or_each(vec![1, 13, 3], write, single).await;
        assert_eq!(results, vec![Ok(1), Err("cannot commit"), Ok(3)]);
        assert_eq!(
            *calls.lock().unwrap(),
            vec![vec![1, 13, 3], vec![1], vec![13], vec![3]],
            "together first, then each alone"
        );

        calls.lock().unwrap().clear();
        let results = together_or_each(vec![1, 2], write, single).await;
        assert_eq!(results, vec![Ok(1), Ok(2)]);
        assert_eq!(*calls.lock().unwrap(), vec![vec![1, 2]], "one write");
    }
}
