//! The daemon's keyed work queue (kube-runtime's scheduler is the model): each key (an image to poll, a
//! repository to reconcile) is scheduled at most once; scheduling a key again keeps the earlier instant
//! (duplicate triggers coalesce); a key that is running is never handed out again until it is
//! [`done`](Scheduler::done) — a trigger that arrives meanwhile runs it once more right after.
//!
//! Also the pure timing rules: when a key runs next after success or failure ([`Timing`]), with jitter
//! and per-class backoff.
//!
//! Must not: run work or await the channel that feeds it (the daemon's loop owns both).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::time::DelayQueue;
use tokio_util::time::delay_queue;

use crate::backoff::Backoff;
use crate::error::ErrorClass;

/// A keyed queue of due times.
pub struct Scheduler<K> {
    queue: DelayQueue<K>,
    scheduled: HashMap<K, (delay_queue::Key, Instant)>,
    running: HashSet<K>,
    /// Triggers that arrived while the key was running: run it again at that instant when it is done.
    again: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> Default for Scheduler<K> {
    fn default() -> Self {
        Scheduler {
            queue: DelayQueue::new(),
            scheduled: HashMap::new(),
            running: HashSet::new(),
            again: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Scheduler<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `key` at `at`, or earlier if it is already scheduled earlier.
    pub fn schedule(&mut self, key: K, at: Instant) {
        if self.running.contains(&key) {
            let again = self.again.entry(key).or_insert(at);
            *again = (*again).min(at);
            return;
        }
        match self.scheduled.get_mut(&key) {
            Some((_, known)) if *known <= at => {}
            Some((queue_key, known)) => {
                self.queue.reset_at(queue_key, at);
                *known = at;
            }
            None => {
                let queue_key = self.queue.insert_at(key.clone(), at);
                self.scheduled.insert(key, (queue_key, at));
            }
        }
    }

    /// Drops `key` from the queue (a repository or image removed by a reload).
    pub fn cancel(&mut self, key: &K) {
        if let Some((queue_key, _)) = self.scheduled.remove(key) {
            self.queue.remove(&queue_key);
        }
        self.again.remove(key);
    }

    /// When `key` is due, if it is scheduled.
    pub fn due(&self, key: &K) -> Option<Instant> {
        self.scheduled.get(key).map(|(_, at)| *at)
    }

    pub fn is_running(&self, key: &K) -> bool {
        self.running.contains(key)
    }

    /// Keys scheduled (not running).
    pub fn len(&self) -> usize {
        self.scheduled.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scheduled.is_empty()
    }

    /// The next due key, marked running. Pending while nothing is due (also when the queue is empty).
    pub async fn next(&mut self) -> K {
        let key = std::future::poll_fn(|context| match self.queue.poll_expired(context) {
            Poll::Ready(Some(expired)) => Poll::Ready(expired.into_inner()),
            // An empty queue is "nothing due yet": the caller's other branches wake it.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        })
        .await;
        self.scheduled.remove(&key);
        self.running.insert(key.clone());
        key
    }

    /// `key` finished; `next` is when it should run again (`None`: only on a new trigger). A trigger
    /// that arrived while it ran wins if it is earlier.
    pub fn done(&mut self, key: &K, next: Option<Instant>) {
        self.running.remove(key);
        let again = self.again.remove(key);
        let at = match (again, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = at {
            self.schedule(key.clone(), at);
        }
    }
}

/// First retry after a transient failure; doubled per failure, with jitter, up to [`MAX_RETRY_DELAY`].
pub const RETRY_BASE_DELAY: Duration = Duration::from_secs(1);
/// A failing key is retried at least this often: long enough to spare a broken registry or remote,
/// short enough that recovery is noticed within minutes.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(5 * 60);
/// A rate limit's announced wait is honoured up to this long (an absurd `Retry-After` must not park a key
/// for days).
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60 * 60);
/// Poll intervals vary by up to this fraction either way, so images polled at one interval spread out.
pub const JITTER: f64 = 0.1;

/// Per-key failure memory and the rules for the next run.
#[derive(Debug, Default)]
pub struct Timing {
    failures: HashMap<String, Backoff>,
}

/// How a key's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Succeeded: the next regular run is `interval` away (jittered), or at `due` if earlier.
    Success {
        interval: Duration,
        due: Option<Instant>,
    },
    Failure(ErrorClass),
}

impl Timing {
    /// When `key` runs next after `ran`, from `now`; `None` for a permanent failure (it waits for a
    /// trigger or a reload). Success resets the key's backoff.
    pub fn next(&mut self, key: &str, ran: Ran, now: Instant, random: f64) -> Option<Instant> {
        match ran {
            Ran::Success { interval, due } => {
                self.failures.remove(key);
                let regular = now + jittered(interval, random);
                Some(due.map_or(regular, |due| due.min(regular)))
            }
            Ran::Failure(ErrorClass::Permanent) => {
                self.failures.remove(key);
                None
            }
            Ran::Failure(ErrorClass::RateLimited {
                retry_after: Some(wait),
            }) => Some(now + wait.min(MAX_RATE_LIMIT_WAIT)),
            Ran::Failure(ErrorClass::RateLimited { retry_after: None })
            | Ran::Failure(ErrorClass::Transient) => {
                let backoff = self
                    .failures
                    .entry(key.to_string())
                    .or_insert_with(|| Backoff::new(RETRY_BASE_DELAY, MAX_RETRY_DELAY, u32::MAX));
                Some(now + backoff.step())
            }
        }
    }

    /// Forgets every key's failures (a reload may have fixed them).
    pub fn reset(&mut self) {
        self.failures.clear();
    }
}

/// `interval` scaled by a factor in `[1 - JITTER, 1 + JITTER]` picked by `random` in `[0, 1)`.
pub fn jittered(interval: Duration, random: f64) -> Duration {
    let factor = 1.0 - JITTER + 2.0 * JITTER * random.clamp(0.0, 1.0);
    interval.mul_f64(factor)
}

/// Regular image polls fall on a grid of this step: polls due within one step run together, so the
/// daemon wakes once a step for all of them instead of once for each (1,000 images at `interval: 1m`
/// are 17 polls a second). It is far below the jitter of any interval (±10 %), so no poll moves
/// noticeably; webhooks, retries and repositories are not on the grid.
pub const POLL_TICK: Duration = Duration::from_millis(500);

/// `at` moved forward to the next point of the grid of `tick`s that starts at `epoch` (`at` itself
/// when it is on the grid or before `epoch`).
pub fn on_tick(epoch: Instant, at: Instant, tick: Duration) -> Instant {
    if at <= epoch {
        return at;
    }
    let since = (at - epoch).as_nanos();
    let step = tick.as_nanos().max(1);
    let rounded = since.div_ceil(step) * step;
    u64::try_from(rounded)
        .ok()
        .and_then(|nanos| epoch.checked_add(Duration::from_nanos(nanos)))
        .unwrap_or(at)
        .max(at)
}

/// The least time between the starts of two listings of one image when a webhook event asks for the
/// second: a stream of events for an image (a flood, or a registry retrying) costs at most one listing
/// per spacing, whatever its rate, while a push whose image was not listed within the spacing is listed
/// at once (docs/reliability/load.md).
pub const EVENT_SPACING: Duration = Duration::from_millis(500);

/// When an event that arrives at `now` lists its image: at once, or `spacing` after the image's
/// previous listing started (`previous`), whichever is later.
pub fn event_listing_at(previous: Option<Instant>, now: Instant, spacing: Duration) -> Instant {
    previous.map_or(now, |started| now.max(started + spacing))
}

/// How often an image is listed again when a webhook named a tag its listing does not hold yet.
/// Registries announce a push before every reader sees its tag: `docker-registry` sends the event
/// when the manifest is stored, before it links the tag, and replicated or cached registries lag
/// further (a loaded machine lost that race: docs/reliability/load.md).
pub const EVENT_RECHECKS: u32 = 5;

/// The wait before the `done`-th re-check (0-based) of an image whose event's tag was not listed:
/// 0.5 s doubling to 8 s, ≈ 15 s in all; `None` once [`EVENT_RECHECKS`] were made (the regular poll
/// takes over).
pub fn event_recheck_after(done: u32) -> Option<Duration> {
    (done < EVENT_RECHECKS).then(|| EVENT_SPACING * 2u32.pow(done))
}

/// Where in `[0, interval)` the first poll of an image falls, spread by `random`, so a start (or a
/// restart) does not list every registry at once.
pub fn first_poll(interval: Duration, random: f64) -> Duration {
    interval.mul_f64(random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests;
