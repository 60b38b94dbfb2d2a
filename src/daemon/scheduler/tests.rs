//! The scheduler under paused tokio time: coalescing, never twice at once, re-run after a trigger that
//! arrived while running, jitter bounds, backoff by class and its reset.

use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// The key `next` hands out within `within` of virtual time, if any.
async fn next_within(
    scheduler: &mut Scheduler<&'static str>,
    within: Duration,
) -> Option<&'static str> {
    tokio::time::timeout(within, scheduler.next()).await.ok()
}

#[tokio::test(start_paused = true)]
async fn duplicate_triggers_coalesce_to_the_earliest() {
    let mut scheduler = Scheduler::new();
    let now = Instant::now();
    scheduler.schedule("repo", now + Duration::from_secs(60));
    scheduler.schedule("repo", now + Duration::from_secs(5));
    scheduler.schedule("repo", now + Duration::from_secs(30));
    assert_eq!(scheduler.len(), 1);
    assert_eq!(scheduler.due(&"repo"), Some(now + Duration::from_secs(5)));
    assert_eq!(
        next_within(&mut scheduler, Duration::from_secs(4)).await,
        None
    );
    assert_eq!(
        next_within(&mut scheduler, Duration::from_secs(2)).await,
        Some("repo")
    );
    // Handed out once only.
    assert_eq!(
        next_within(&mut scheduler, Duration::from_secs(600)).await,
        None
    );
}

#[tokio::test(start_paused = true)]
async fn a_running_key_is_not_handed_out_again_but_runs_once_more_after() {
    let mut scheduler = Scheduler::new();
    scheduler.schedule("repo", Instant::now());
    assert_eq!(
        next_within(&mut scheduler, Duration::ZERO).await,
        Some("repo")
    );
    assert!(scheduler.is_running(&"repo"));
    // Three triggers while it runs.
    for _ in 0..3 {
        scheduler.schedule("repo", Instant::now());
    }
    assert_eq!(
        next_within(&mut scheduler, Duration::from_secs(60)).await,
        None
    );
    scheduler.done(&"repo", Some(Instant::now() + Duration::from_secs(300)));
    assert_eq!(
        next_within(&mut scheduler, Duration::from_millis(1)).await,
        Some("repo"),
        "the trigger that came while it ran is served right after"
    );
    scheduler.done(&"repo", Some(Instant::now() + Duration::from_secs(300)));
    assert_eq!(
        next_within(&mut scheduler, Duration::from_secs(299)).await,
        None
    );
    assert_eq!(
        next_within(&mut scheduler, Duration::from_secs(2)).await,
        Some("repo")
    );
}

#[tokio::test(start_paused = true)]
async fn keys_come_in_due_order_and_cancel_removes() {
    let mut scheduler = Scheduler::new();
    let now = Instant::now();
    scheduler.schedule("b", now + Duration::from_secs(2));
    scheduler.schedule("a", now + Duration::from_secs(1));
    scheduler.schedule("c", now + Duration::from_secs(3));
    scheduler.cancel(&"c");
    let first = next_within(&mut scheduler, Duration::from_secs(10)).await;
    let second = next_within(&mut scheduler, Duration::from_secs(10)).await;
    assert_eq!((first, second), (Some("a"), Some("b")));
    assert_eq!(
        next_within(&mut scheduler, Duration::from_secs(60)).await,
        None
    );
}

#[tokio::test(start_paused = true)]
async fn a_permanent_failure_waits_for_a_trigger() {
    let mut scheduler = Scheduler::new();
    scheduler.schedule("repo", Instant::now());
    next_within(&mut scheduler, Duration::ZERO).await.unwrap();
    let mut timing = Timing::default();
    let next = timing.next(
        "repo",
        Ran::Failure(ErrorClass::Permanent),
        Instant::now(),
        0.5,
    );
    assert_eq!(next, None);
    scheduler.done(&"repo", next);
    assert_eq!(
        next_within(&mut scheduler, Duration::from_secs(86_400)).await,
        None
    );
    scheduler.schedule("repo", Instant::now());
    assert_eq!(
        next_within(&mut scheduler, Duration::ZERO).await,
        Some("repo")
    );
}

#[test]
fn jitter_stays_within_ten_percent() {
    let interval = Duration::from_secs(60);
    assert_eq!(jittered(interval, 0.0), Duration::from_secs(54));
    assert_eq!(jittered(interval, 0.5), Duration::from_secs(60));
    assert!(jittered(interval, 0.999_999) <= Duration::from_secs(66));
    for step in 0..=100 {
        let random = f64::from(step) / 100.0;
        let delay = jittered(interval, random);
        assert!(delay >= Duration::from_secs(54) && delay <= Duration::from_secs(66));
        assert!(first_poll(interval, random) <= interval);
    }
}

#[test]
fn transient_failures_back_off_exponentially_and_success_resets() {
    let mut timing = Timing::default();
    let now = Instant::now();
    let mut delays = Vec::new();
    for _ in 0..12 {
        let at = timing
            .next("img", Ran::Failure(ErrorClass::Transient), now, 0.5)
            .unwrap();
        delays.push(at - now);
    }
    // Equal jitter: each wait lies in [step/2, step] of a doubling step, capped.
    assert!(delays[0] <= RETRY_BASE_DELAY, "{delays:?}");
    assert!(delays[3] >= RETRY_BASE_DELAY * 4, "{delays:?}");
    assert!(delays.iter().all(|delay| *delay <= MAX_RETRY_DELAY));
    assert!(delays[11] >= MAX_RETRY_DELAY / 2, "{delays:?}");
    // Another key has its own memory.
    let other = timing
        .next("other", Ran::Failure(ErrorClass::Transient), now, 0.5)
        .unwrap();
    assert!(other - now <= RETRY_BASE_DELAY);
    // Success resets.
    let interval = Duration::from_secs(300);
    let success = timing
        .next(
            "img",
            Ran::Success {
                interval,
                due: None,
            },
            now,
            0.5,
        )
        .unwrap();
    assert_eq!(success - now, interval);
    let again = timing
        .next("img", Ran::Failure(ErrorClass::Transient), now, 0.5)
        .unwrap();
    assert!(again - now <= RETRY_BASE_DELAY);
}

#[test]
fn a_rate_limit_waits_as_told_within_bounds() {
    let mut timing = Timing::default();
    let now = Instant::now();
    let told = timing.next(
        "img",
        Ran::Failure(ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(90)),
        }),
        now,
        0.5,
    );
    assert_eq!(told, Some(now + Duration::from_secs(90)));
    let absurd = timing.next(
        "img",
        Ran::Failure(ErrorClass::RateLimited {
            retry_after: Some(Duration::from_secs(10 * 86_400)),
        }),
        now,
        0.5,
    );
    assert_eq!(absurd, Some(now + MAX_RATE_LIMIT_WAIT));
}

#[test]
fn a_window_opening_before_the_interval_comes_first() {
    let mut timing = Timing::default();
    let now = Instant::now();
    let due = now + Duration::from_secs(30);
    let next = timing.next(
        "repo",
        Ran::Success {
            interval: Duration::from_secs(300),
            due: Some(due),
        },
        now,
        0.5,
    );
    assert_eq!(next, Some(due));
}

#[test]
fn polls_due_within_one_tick_move_to_the_same_point_and_never_earlier() {
    let epoch = Instant::now();
    let tick = Duration::from_millis(500);
    let at = |millis| epoch + Duration::from_millis(millis);
    assert_eq!(on_tick(epoch, at(0), tick), at(0));
    assert_eq!(on_tick(epoch, at(1), tick), at(500));
    assert_eq!(on_tick(epoch, at(499), tick), at(500));
    assert_eq!(on_tick(epoch, at(500), tick), at(500));
    assert_eq!(on_tick(epoch, at(60_001), tick), at(60_500));
    // Before the grid starts (a restored key), and on an absurd tick: unchanged.
    let before = epoch.checked_sub(Duration::from_secs(1)).unwrap_or(epoch);
    assert_eq!(on_tick(epoch, before, tick), before);
    assert_eq!(on_tick(epoch, at(1), Duration::ZERO), at(1));
    for millis in [3, 250, 777, 59_999, 61_234] {
        let moved = on_tick(epoch, at(millis), tick);
        assert!(moved >= at(millis) && moved - at(millis) < tick, "{millis}");
    }
}

#[test]
fn an_event_lists_at_once_unless_the_image_was_listed_within_the_spacing() {
    let now = Instant::now();
    let spacing = Duration::from_millis(500);
    let ms = Duration::from_millis;
    // Never listed, or listed longer ago than the spacing: now.
    assert_eq!(event_listing_at(None, now, spacing), now);
    assert_eq!(event_listing_at(Some(now - ms(800)), now, spacing), now);
    assert_eq!(event_listing_at(Some(now - ms(500)), now, spacing), now);
    // Listed 100 ms ago (or still listing): 500 ms after that listing started.
    assert_eq!(
        event_listing_at(Some(now - ms(100)), now, spacing),
        now + ms(400)
    );
    assert_eq!(event_listing_at(Some(now), now, spacing), now + spacing);
}

#[test]
fn an_unlisted_event_tag_is_checked_again_with_doubling_waits_then_left_to_the_poll() {
    let waits: Vec<Duration> = (0..10).map_while(event_recheck_after).collect();
    assert_eq!(waits.len(), EVENT_RECHECKS as usize);
    assert_eq!(waits[0], EVENT_SPACING, "never sooner than events may list");
    for pair in waits.windows(2) {
        assert_eq!(pair[1], pair[0] * 2);
    }
    assert!(waits.iter().sum::<Duration>() <= Duration::from_secs(20));
    assert_eq!(event_recheck_after(EVENT_RECHECKS), None);
}
