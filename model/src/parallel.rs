//! Order-preserving parallel map over a slice with scoped threads.
//!
//! Loading and rendering are independent per instance, and the benchmark
//! (PERFORMANCE.md) showed a 1000-instance run spending its time in
//! allocation and file-system calls spread evenly over instances: splitting
//! them across the cores roughly halves wall time. Small inputs stay on one
//! thread, where spawning would cost more than it saves.

/// Below this many items the work runs on the calling thread.
pub const MIN_PARALLEL_ITEMS: usize = 64;
const MAX_THREADS: usize = 4;

pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_THREADS);
    if threads <= 1 || items.len() < MIN_PARALLEL_ITEMS {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (handle, part) in handles.into_iter().zip(items.chunks(chunk)) {
            match handle.join() {
                Ok(results) => out.extend(results),
                // A worker can only fail by panicking; redo its part here so
                // the caller still gets every result (or the same panic).
                Err(_) => out.extend(part.iter().map(&f)),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order() {
        let items: Vec<u32> = (0..1000).collect();
        let doubled = par_map(&items, |x| x * 2);
        assert_eq!(doubled, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(par_map(&items[..3], |x| x + 1), vec![1, 2, 3]);
    }
}
