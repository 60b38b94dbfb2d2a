//! Pure CPU work over many files, on all cores.
//!
//! Items are handed out in small batches from a shared counter, so a thread slowed by the rest of the
//! machine takes fewer of them instead of holding up the whole map; results come back in item order.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Items per batch: small enough to balance two threads over a few hundred files, large enough that
/// the shared counter is not contended.
const BATCH: usize = 16;

/// Below this many items the work runs on the calling thread alone (a thread costs more than it saves).
const MIN_PARALLEL_ITEMS: usize = 64;

/// How many threads [`map`] and [`map_with`] use for `items` items.
pub(crate) fn threads_for(items: usize) -> usize {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items < MIN_PARALLEL_ITEMS {
        1
    } else {
        threads.min(items.div_ceil(BATCH))
    }
}

/// Runs `work` over `items` on all cores, returning results in the order of `items`.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let states = vec![(); threads_for(items.len())];
    map_with(items, states, |(), item| work(item))
}

/// Runs `work` over `items` on one thread per element of `states` (each thread owns one state, e.g. a
/// handle that must not be shared between threads; the calling thread is one of them), returning
/// results in the order of `items`.
pub(crate) fn map_with<T: Sync, S: Send, R: Send>(
    items: &[T],
    states: Vec<S>,
    work: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R> {
    if items.is_empty() {
        return Vec::new();
    }
    let mut states = states.into_iter();
    let mut first = states.next().expect("map_with needs at least one state");
    if states.len() == 0 {
        return items.iter().map(|item| work(&mut first, item)).collect();
    }
    let next = AtomicUsize::new(0);
    // One thread's share: batches `(start, results)` in the order it took them.
    let run = |state: &mut S| {
        let mut batches = Vec::new();
        loop {
            let start = next.fetch_add(BATCH, Ordering::Relaxed);
            if start >= items.len() {
                return batches;
            }
            let end = (start + BATCH).min(items.len());
            let results: Vec<R> = items[start..end]
                .iter()
                .map(|item| work(state, item))
                .collect();
            batches.push((start, results));
        }
    };
    let mut batches = std::thread::scope(|scope| {
        let handles: Vec<_> = states
            .map(|mut state| scope.spawn(move || run(&mut state)))
            .collect();
        let mut batches = run(&mut first);
        for handle in handles {
            batches.extend(handle.join().expect("a worker thread panicked"));
        }
        batches
    });
    batches.sort_unstable_by_key(|(start, _)| *start);
    let mut results = Vec::with_capacity(items.len());
    for (_, batch) in batches {
        results.extend(batch);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order_whatever_thread_computed_them() {
        let items: Vec<usize> = (0..1000).collect();
        let states = vec![0usize; 3];
        let results = map_with(&items, states, |seen, item| {
            *seen += 1;
            item * 2
        });
        assert_eq!(
            results,
            items.iter().map(|item| item * 2).collect::<Vec<_>>()
        );
        assert_eq!(
            map(&items[..10], |item| item + 1),
            (1..11).collect::<Vec<_>>()
        );
        assert!(map_with(&items[..0], Vec::<()>::new(), |(), item| *item).is_empty());
    }
}
