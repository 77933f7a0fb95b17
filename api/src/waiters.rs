//! Long-poll waiters, woken by completion events.
//!
//! A status request that must wait registers interest in its request id *before* reading the
//! database, so an event that lands between the read and the wait is not missed. The event
//! listener wakes every waiter of a request id at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;
use uuid::Uuid;

/// Entries are weak: a waiter that gave up frees its entry. Dead entries are pruned when the
/// map grows.
#[derive(Clone, Default)]
pub struct Waiters {
    inner: Arc<Mutex<HashMap<Uuid, Weak<Notify>>>>,
}

impl Waiters {
    /// The notifier of a request id; hold it while waiting.
    pub fn register(&self, id: Uuid) -> Arc<Notify> {
        let mut map = self.inner.lock().expect("waiters lock");
        if let Some(existing) = map.get(&id).and_then(Weak::upgrade) {
            return existing;
        }
        if map.len() >= 1024 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let notify = Arc::new(Notify::new());
        map.insert(id, Arc::downgrade(&notify));
        notify
    }

    /// Whether anyone waits for `id` now.
    pub fn is_waited_for(&self, id: Uuid) -> bool {
        self.inner
            .lock()
            .expect("waiters lock")
            .get(&id)
            .is_some_and(|w| w.strong_count() > 0)
    }

    /// Wakes everyone waiting for `id`.
    pub fn wake(&self, id: Uuid) {
        let entry = self.inner.lock().expect("waiters lock").remove(&id);
        if let Some(notify) = entry.and_then(|w| w.upgrade()) {
            notify.notify_waiters();
        }
    }
}
