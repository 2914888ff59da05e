//! Where committed changes go besides their rows: the webhook worker's wake-up and the
//! subscribers' channel. Below the services (which fill it) and the state (which holds it).

use crate::ids::Ids;

/// What appending needs beyond the transaction: the ID codec (for payloads) and whom to tell
/// of new deliveries. Cheap to clone, so background work can own one.
#[derive(Clone)]
pub struct Outbox {
    /// The ID codec.
    pub ids: Ids,
    /// Woken when deliveries are queued, so the webhook worker need not wait for its poll.
    pub deliveries_due: std::sync::Arc<tokio::sync::Notify>,
    /// Committed events, for subscriptions.
    pub committed: tokio::sync::broadcast::Sender<std::sync::Arc<entity::event::Model>>,
    /// Whether committed events reach `committed` through PostgreSQL's notifications (so
    /// events committed by other instances arrive too) rather than straight from the commit.
    pub notified: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Outbox {
    /// An outbox for `ids` with no one listening yet.
    pub fn new(ids: Ids) -> Self {
        Outbox {
            ids,
            deliveries_due: Default::default(),
            // Subscribers that fall this far behind miss events (they are told so).
            committed: tokio::sync::broadcast::channel(4096).0,
            notified: Default::default(),
        }
    }

    /// Tells subscribers of events whose transaction committed (unless the notification
    /// listener does).
    pub fn announce(&self, events: Vec<entity::event::Model>) {
        if self.notified.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        for e in events {
            // No subscriber is no error.
            let _ = self.committed.send(std::sync::Arc::new(e));
        }
    }
}
