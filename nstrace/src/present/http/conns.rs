//! Who holds the server's connection slots, so that a client that only
//! holds one (trickling its headers, or idle between keep-alive requests)
//! gives it up to a new client, and a real scrape is never locked out by a
//! crowd of slow ones.
//!
//! A connection is *busy* from the moment hyper hands us a whole request
//! until the reply's body has been written out (the body is dropped then),
//! and *waiting* otherwise. When every slot is taken, a new connection
//! evicts, oldest first: one idle after a reply (a keep-alive; its client
//! reconnects for its next request), else one that has not sent a whole
//! request within the grace period (a trickler; a fast client's request in
//! flight is not cut). If there is none, every slot is serving or just
//! taken, and the new client gets a clean 503.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// The connection slots.
pub struct Conns {
    max: usize,
    grace: Duration,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    by_id: HashMap<u64, Slot>,
}

struct Slot {
    /// Since when it waits for a request; None while it serves one.
    waiting_since: Option<Instant>,
    /// It has been answered at least once (so it waits on a keep-alive).
    answered: bool,
    evict: Arc<Notify>,
}

/// What a new connection gets.
pub enum Admission {
    /// A slot; `evicted` says whether another connection gave it up.
    Slot { conn: Conn, evicted: bool },
    /// Every slot is serving a request.
    Full,
}

impl Conns {
    pub fn new(max: usize, grace: Duration) -> Arc<Conns> {
        Arc::new(Conns { max: max.max(1), grace, open: Mutex::new(Open::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection accepted `now`.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Admission {
        let mut open = self.lock();
        let mut evicted = false;
        if open.by_id.len() >= self.max {
            // (idle keep-alive first, waiting since) of each that may go.
            let longest = open
                .by_id
                .iter()
                .filter_map(|(id, s)| Some((*id, s.answered, s.waiting_since?)))
                .filter(|(_, answered, since)| *answered || now.saturating_duration_since(*since) >= self.grace)
                .min_by_key(|(_, answered, since)| (!answered, *since))
                .map(|(id, _, since)| (id, since));
            let Some((id, _)) = longest else { return Admission::Full };
            if let Some(slot) = open.by_id.remove(&id) {
                // Its task closes it; the slot is the new client's now.
                slot.evict.notify_one();
                evicted = true;
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let evict = Arc::new(Notify::new());
        open.by_id.insert(id, Slot { waiting_since: Some(now), answered: false, evict: evict.clone() });
        Admission::Slot { conn: Conn { conns: self.clone(), id, evict }, evicted }
    }

    /// Connections holding a slot.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    fn set_waiting(&self, id: u64, since: Option<Instant>) {
        if let Some(slot) = self.lock().by_id.get_mut(&id) {
            slot.answered |= slot.waiting_since.is_none() && since.is_some();
            slot.waiting_since = since;
        }
    }
}

/// One connection's slot, given back when dropped.
pub struct Conn {
    conns: Arc<Conns>,
    id: u64,
    evict: Arc<Notify>,
}

impl Conn {
    /// Completes when the slot was given to another client.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }

    /// Marks the connection busy until the returned guard is dropped.
    pub fn busy(&self) -> Busy {
        self.conns.set_waiting(self.id, None);
        Busy { conns: self.conns.clone(), id: self.id }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.conns.lock().by_id.remove(&self.id);
    }
}

/// A connection serving a request; waiting again once dropped.
pub struct Busy {
    conns: Arc<Conns>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conns.set_waiting(self.id, Some(Instant::now()));
    }
}

/// A reply body that keeps its connection busy until hyper has written it
/// all out (and drops it).
pub struct Tracked<B> {
    pub body: B,
    pub _busy: Option<Busy>,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(a: Admission) -> (Conn, bool) {
        match a {
            Admission::Slot { conn, evicted } => (conn, evicted),
            Admission::Full => panic!("no slot"),
        }
    }

    #[test]
    fn the_longest_waiting_gives_way_and_a_serving_one_never_does() {
        let conns = Conns::new(2, Duration::from_millis(250));
        let t0 = Instant::now();
        let (old, _) = slot(conns.admit(t0));
        let (young, _) = slot(conns.admit(t0 + Duration::from_millis(100)));
        // Within the grace period nobody is evicted: a clean 503.
        assert!(matches!(conns.admit(t0 + Duration::from_millis(200)), Admission::Full));
        // Later the oldest waiter goes.
        let (third, evicted) = slot(conns.admit(t0 + Duration::from_secs(1)));
        assert!(evicted);
        assert_eq!(conns.len(), 2);
        let woken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let w = woken.clone();
            rt.block_on(async move {
                if tokio::time::timeout(Duration::from_secs(1), old.evicted()).await.is_ok() {
                    w.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
        assert!(woken.load(std::sync::atomic::Ordering::SeqCst), "the evicted connection is told");
        // Both left are serving: nobody gives way.
        let (_b1, _b2) = (young.busy(), third.busy());
        assert!(matches!(conns.admit(t0 + Duration::from_secs(10)), Admission::Full));
        drop(_b1);
        // A reply written out: that connection waits again, and can go.
        let (_fourth, evicted) = slot(conns.admit(Instant::now() + Duration::from_secs(1)));
        assert!(evicted);
        drop(young);
        assert_eq!(conns.len(), 2, "an evicted connection's drop does not free another's slot");
    }

    #[test]
    fn an_idle_keep_alive_goes_first_and_at_once() {
        let conns = Conns::new(2, Duration::from_millis(250));
        let t0 = Instant::now();
        let (_trickler, _) = slot(conns.admit(t0));
        let (kept_alive, _) = slot(conns.admit(t0));
        drop(kept_alive.busy());
        // The keep-alive went idle just now, the trickler long ago: the
        // keep-alive goes, with no grace period.
        let (_new, evicted) = slot(conns.admit(Instant::now()));
        assert!(evicted);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let told = rt.block_on(async { tokio::time::timeout(Duration::from_millis(100), kept_alive.evicted()).await });
        assert!(told.is_ok(), "the idle keep-alive was the one evicted");
    }
}
