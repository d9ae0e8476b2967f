//! Sorting through one instance of the standard library's sort.
//!
//! `slice::sort_by` is generic over the element and the comparator: each call site
//! with its own element type or closure is a copy of the whole sort in the wasm
//! (~4 KB each). Here the sort runs once, on indices, through a comparator behind
//! `dyn`; the items are then moved into place by swaps. The result is the standard
//! stable sort's, exactly: a stable sort's output is the one order of the items that
//! the comparator allows with ties kept in input order.

use std::cmp::Ordering;

/// Sorts `items` stably by `compare`: what `items.sort_by(compare)` does.
pub(crate) fn sort_by<T>(items: &mut [T], compare: impl Fn(&T, &T) -> Ordering) {
    let swaps = sorted_swaps(items.len(), &|a, b| compare(&items[a], &items[b]));
    for (a, b) in swaps {
        items.swap(a, b);
    }
}

/// Sorts `items` by their order: what `items.sort()` does, and `sort_unstable()` for
/// types whose equal values are alike (numbers, strings, tuples of them).
pub(crate) fn sort<T: Ord>(items: &mut [T]) {
    sort_by(items, T::cmp);
}

/// The swaps that sort `len` items stably by `compare` (given two indices into the
/// input), in the order to apply them.
fn sorted_swaps(len: usize, compare: &dyn Fn(usize, usize) -> Ordering) -> Vec<(usize, usize)> {
    // `order[k]`: the input index of the item that belongs at position `k`.
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| compare(a, b));
    // Each cycle of the permutation: position `k` takes its item from `order[k]`,
    // which takes its own from the next, and so on back to the cycle's start.
    let mut placed = vec![false; len];
    let mut swaps = Vec::new();
    for start in 0..len {
        let mut k = start;
        while !placed[k] {
            placed[k] = true;
            let from = order[k];
            if from == start {
                break;
            }
            swaps.push((k, from));
            k = from;
        }
    }
    swaps
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random lists with many ties, sorted by key only.
    #[test]
    fn sorts_as_the_standard_stable_sort() {
        let mut seed: u64 = 7;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        for len in (0..40).chain([100, 257]) {
            let items: Vec<(u64, usize)> = (0..len).map(|i| (next() % 5, i)).collect();
            let mut expected = items.clone();
            expected.sort_by_key(|item| std::cmp::Reverse(item.0));
            let mut ours = items.clone();
            sort_by(&mut ours, |a, b| b.0.cmp(&a.0));
            assert_eq!(ours, expected, "len {len}");
            let mut expected = items.clone();
            expected.sort();
            let mut ours = items;
            sort(&mut ours);
            assert_eq!(ours, expected, "len {len}");
        }
    }
}
