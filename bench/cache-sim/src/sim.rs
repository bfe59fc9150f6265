//! The replay loop and the policies it compares.
//!
//! Every policy sees the same sequence of calls the hot cache makes: on a request, a hit is
//! recorded as a use; on a miss the object is copied from the origin and inserted, and before
//! the insert, if `used + size` would exceed the high watermark, the policy evicts down to the
//! low watermark minus `size`. Every miss is admitted (the hot cache has to hold a file on disk
//! to serve it), so the policies differ only in which files they evict.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tessera_hotcache::policy::Policy;

/// "Never requested again" in a next-use table.
pub const NEVER: u32 = u32::MAX;

/// A cache index driven the way the hot cache drives `Policy`. `t` is the event index.
pub trait Cache {
    /// If `id` is cached, record a use at `t` and return true.
    fn hit(&mut self, id: u32, t: u32) -> bool;
    /// Add `id`, just copied from the origin, at `t`. It is not cached.
    fn insert(&mut self, id: u32, size: u64, t: u32);
    fn contains(&self, id: u32) -> bool;
    /// Bytes held.
    fn used(&self) -> u64;
    /// Evict until at most `target` bytes are held.
    fn evict_to(&mut self, target: u64, t: u32);
}

/// The disk budget and its watermarks, computed as the hot cache computes them.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub capacity: u64,
    pub high: u64,
    pub low: u64,
}

impl Budget {
    /// The hot cache's defaults: high watermark 0.9, low 0.8 of the capacity.
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            high: (capacity as f64 * 0.9) as u64,
            low: (capacity as f64 * 0.8) as u64,
        }
    }
}

/// Requests and hits, counted and in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub hits: u64,
    pub bytes: u64,
    pub hit_bytes: u64,
}

impl Counts {
    fn add(&mut self, size: u64, hit: bool) {
        self.requests += 1;
        self.bytes += size;
        if hit {
            self.hits += 1;
            self.hit_bytes += size;
        }
    }

    pub fn object_hit_ratio(&self) -> f64 {
        self.hits as f64 / self.requests.max(1) as f64
    }

    pub fn byte_hit_ratio(&self) -> f64 {
        self.hit_bytes as f64 / self.bytes.max(1) as f64
    }

    /// Bytes copied from the origin: every miss is one copy of the whole object.
    pub fn origin_bytes(&self) -> u64 {
        self.bytes - self.hit_bytes
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Requests from `measure_from` on.
    pub measured: Counts,
    /// The same, only for images below `viewer_ids` (not the crawler's).
    pub measured_viewers: Counts,
    /// Every request.
    pub whole: Counts,
    /// Misses larger than the high watermark: served, never cached (the hot cache refuses them).
    pub too_large: u64,
}

/// Replay `trace` (image ids; `sizes[id]` is the size) through `cache`.
pub fn replay<C: Cache + ?Sized>(
    cache: &mut C,
    trace: &[u32],
    sizes: &[u64],
    budget: Budget,
    measure_from: usize,
    viewer_ids: u32,
) -> Stats {
    assert!(
        trace.len() < NEVER as usize,
        "trace too long for u32 event indices"
    );
    let mut st = Stats::default();
    for (t, &id) in trace.iter().enumerate() {
        let t32 = t as u32;
        let size = sizes[id as usize];
        let hit = cache.hit(id, t32);
        if !hit {
            if size > budget.high {
                st.too_large += 1;
            } else {
                if cache.used() + size > budget.high {
                    cache.evict_to(budget.low.saturating_sub(size), t32);
                }
                cache.insert(id, size, t32);
                debug_assert!(cache.contains(id));
            }
        }
        st.whole.add(size, hit);
        if t >= measure_from {
            st.measured.add(size, hit);
            if id < viewer_ids {
                st.measured_viewers.add(size, hit);
            }
        }
    }
    st
}

/// For each event, the index of the next event for the same image, or [`NEVER`].
pub fn next_uses(trace: &[u32], ids: usize) -> Vec<u32> {
    let mut last = vec![NEVER; ids];
    let mut next = vec![NEVER; trace.len()];
    for t in (0..trace.len()).rev() {
        let id = trace[t] as usize;
        next[t] = last[id];
        last[id] = t as u32;
    }
    next
}

/// Tessera's segmented LRU, called exactly as the hot cache calls it.
pub struct Tessera<'a> {
    policy: Policy,
    names: &'a [String],
    capacity: u64,
}

impl<'a> Tessera<'a> {
    /// `names[id]` is the file name used for image `id`.
    pub fn new(protected_share: f64, reuse_gap: u64, capacity: u64, names: &'a [String]) -> Self {
        Self {
            policy: Policy::new(protected_share, reuse_gap),
            names,
            capacity,
        }
    }
}

impl Cache for Tessera<'_> {
    fn hit(&mut self, id: u32, t: u32) -> bool {
        self.policy.touch(&self.names[id as usize], u64::from(t))
    }
    fn insert(&mut self, id: u32, size: u64, t: u32) {
        self.policy
            .insert(&self.names[id as usize], size, u64::from(t));
    }
    fn contains(&self, id: u32) -> bool {
        self.policy.contains(&self.names[id as usize])
    }
    fn used(&self) -> u64 {
        self.policy.used()
    }
    fn evict_to(&mut self, target: u64, _t: u32) {
        self.policy.evict_to(target, self.capacity);
    }
}

/// Plain LRU: evicts the least recently used first.
pub struct Lru {
    /// Use order -> (id, size); the first entry is the least recent.
    order: BTreeMap<u64, (u32, u64)>,
    /// Per id: its key in `order`, 0 when not cached.
    seq_of: Vec<u64>,
    seq: u64,
    used: u64,
}

impl Lru {
    pub fn new(ids: usize) -> Self {
        Self {
            order: BTreeMap::new(),
            seq_of: vec![0; ids],
            seq: 0,
            used: 0,
        }
    }
}

impl Cache for Lru {
    fn hit(&mut self, id: u32, _t: u32) -> bool {
        let slot = &mut self.seq_of[id as usize];
        if *slot == 0 {
            return false;
        }
        let entry = self.order.remove(slot).expect("indexed entry");
        self.seq += 1;
        *slot = self.seq;
        self.order.insert(self.seq, entry);
        true
    }
    fn insert(&mut self, id: u32, size: u64, _t: u32) {
        debug_assert_eq!(self.seq_of[id as usize], 0);
        self.seq += 1;
        self.seq_of[id as usize] = self.seq;
        self.order.insert(self.seq, (id, size));
        self.used += size;
    }
    fn contains(&self, id: u32) -> bool {
        self.seq_of[id as usize] != 0
    }
    fn used(&self) -> u64 {
        self.used
    }
    fn evict_to(&mut self, target: u64, _t: u32) {
        while self.used > target {
            let Some((_, (id, size))) = self.order.pop_first() else {
                break;
            };
            self.seq_of[id as usize] = 0;
            self.used -= size;
        }
    }
}

/// Belady's offline policy: evicts the objects whose next request is furthest away (never
/// requested again counts as infinitely far). Optimal for equal sizes and one eviction per
/// miss; for mixed sizes it is the classic heuristic, not a proven optimum.
pub struct Belady<'a> {
    next: &'a [u32],
    /// (next use, id); the last entry is evicted first.
    by_next: BTreeSet<(u32, u32)>,
    /// Per id: (next use, size) while cached.
    slot: Vec<Option<(u32, u64)>>,
    used: u64,
}

impl<'a> Belady<'a> {
    /// `next` comes from [`next_uses`] over the trace that will be replayed.
    pub fn new(ids: usize, next: &'a [u32]) -> Self {
        Self {
            next,
            by_next: BTreeSet::new(),
            slot: vec![None; ids],
            used: 0,
        }
    }
}

impl Cache for Belady<'_> {
    fn hit(&mut self, id: u32, t: u32) -> bool {
        let Some((n, size)) = self.slot[id as usize] else {
            return false;
        };
        debug_assert_eq!(n, t, "the stored next use is this request");
        self.by_next.remove(&(n, id));
        let n = self.next[t as usize];
        self.by_next.insert((n, id));
        self.slot[id as usize] = Some((n, size));
        true
    }
    fn insert(&mut self, id: u32, size: u64, t: u32) {
        let n = self.next[t as usize];
        self.by_next.insert((n, id));
        self.slot[id as usize] = Some((n, size));
        self.used += size;
    }
    fn contains(&self, id: u32) -> bool {
        self.slot[id as usize].is_some()
    }
    fn used(&self) -> u64 {
        self.used
    }
    fn evict_to(&mut self, target: u64, _t: u32) {
        while self.used > target {
            let Some((_, id)) = self.by_next.pop_last() else {
                break;
            };
            let (_, size) = self.slot[id as usize].take().expect("indexed entry");
            self.used -= size;
        }
    }
}

/// Size-aware offline variant: evicts first what is never requested again, then the largest
/// `size × distance to the next request` (the space-time an object would hold until its next
/// hit). It aims at the object hit ratio; for the byte hit ratio plain Belady is the better
/// reference, since a hit's worth in bytes grows with the size as fast as its cost does.
pub struct BeladySize<'a> {
    next: &'a [u32],
    /// id -> (next use, size).
    entries: HashMap<u32, (u32, u64)>,
    used: u64,
}

impl<'a> BeladySize<'a> {
    pub fn new(next: &'a [u32]) -> Self {
        Self {
            next,
            entries: HashMap::new(),
            used: 0,
        }
    }
}

impl Cache for BeladySize<'_> {
    fn hit(&mut self, id: u32, t: u32) -> bool {
        let Some(e) = self.entries.get_mut(&id) else {
            return false;
        };
        e.0 = self.next[t as usize];
        true
    }
    fn insert(&mut self, id: u32, size: u64, t: u32) {
        self.entries.insert(id, (self.next[t as usize], size));
        self.used += size;
    }
    fn contains(&self, id: u32) -> bool {
        self.entries.contains_key(&id)
    }
    fn used(&self) -> u64 {
        self.used
    }
    fn evict_to(&mut self, target: u64, t: u32) {
        if self.used <= target {
            return;
        }
        // Distances change with t, so the order is computed per eviction round (as the hot
        // cache's policy also does).
        let mut order: Vec<(f64, u32, u64)> = self
            .entries
            .iter()
            .map(|(&id, &(n, size))| {
                let cost = if n == NEVER {
                    f64::INFINITY
                } else {
                    f64::from(n.saturating_sub(t)) * size as f64
                };
                (cost, id, size)
            })
            .collect();
        order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, id, size) in order {
            if self.used <= target {
                break;
            }
            self.entries.remove(&id);
            self.used -= size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    /// Room for exactly `k` objects of size 10, one eviction per miss when full (classic
    /// demand paging: the high and low watermarks coincide).
    fn paging(k: u64) -> Budget {
        Budget {
            capacity: 10 * k,
            high: 10 * k,
            low: 10 * k,
        }
    }

    fn names(ids: usize) -> Vec<String> {
        (0..ids).map(|i| format!("img-{i}")).collect()
    }

    #[test]
    fn budget_uses_the_hot_cache_watermarks() {
        let b = Budget::new(1000);
        assert_eq!((b.high, b.low), (900, 800));
    }

    #[test]
    fn next_uses_point_to_the_following_request() {
        assert_eq!(
            next_uses(&[0, 1, 0, 2, 1], 3),
            vec![2, 4, NEVER, NEVER, NEVER]
        );
    }

    #[test]
    fn lru_evicts_the_least_recent() {
        let (a, b, c, d) = (0, 1, 2, 3);
        let mut lru = Lru::new(4);
        let st = replay(&mut lru, &[a, b, c, a, d], &[10; 4], paging(3), 0, 4);
        assert_eq!(st.whole.hits, 1);
        assert!(lru.contains(a) && lru.contains(c) && lru.contains(d));
        assert!(!lru.contains(b), "b was the least recently used");
        assert_eq!(lru.used(), 30);
    }

    #[test]
    fn lru_with_watermarks_evicts_down_to_low_minus_the_new_object() {
        // Capacity 100: high 90, low 80. Nine objects of 10 fill to 90; the tenth would go over,
        // so use goes down to 80 - 10 = 70 (the two least recent leave), then the insert: 80.
        let trace: Vec<u32> = (0..10).collect();
        let mut lru = Lru::new(10);
        replay(&mut lru, &trace, &[10; 10], Budget::new(100), 0, 10);
        assert_eq!(lru.used(), 80);
        assert!(!lru.contains(0) && !lru.contains(1) && lru.contains(2) && lru.contains(9));
    }

    #[test]
    fn belady_evicts_the_furthest_next_use() {
        let (a, b, c, d) = (0, 1, 2, 3);
        let trace = [a, b, c, d, c, b, a];
        let next = next_uses(&trace, 4);
        let mut opt = Belady::new(4, &next);
        let st = replay(&mut opt, &trace[..4], &[10; 4], paging(3), 0, 4);
        assert_eq!(st.whole.hits, 0);
        assert!(!opt.contains(a), "a is needed last");
        assert!(opt.contains(b) && opt.contains(c) && opt.contains(d));
    }

    #[test]
    fn belady_evicts_never_requested_again_first() {
        let (a, b, c, d) = (0, 1, 2, 3);
        // b is never requested after t=1, even though it is more recent than a.
        let trace = [a, b, c, d, a, c, d];
        let next = next_uses(&trace, 4);
        let mut opt = Belady::new(4, &next);
        let st = replay(&mut opt, &trace, &[10; 4], paging(3), 0, 4);
        assert_eq!(st.whole.hits, 3);
        assert!(!opt.contains(b));
    }

    #[test]
    fn belady_is_never_worse_than_lru_on_a_fixed_trace() {
        // A loop one larger than the cache: LRU always misses, Belady keeps most of it.
        let trace: Vec<u32> = (0..40).map(|i| i % 4).collect();
        let next = next_uses(&trace, 4);
        let lru = replay(&mut Lru::new(4), &trace, &[10; 4], paging(3), 0, 4);
        let opt = replay(
            &mut Belady::new(4, &next),
            &trace,
            &[10; 4],
            paging(3),
            0,
            4,
        );
        assert_eq!(lru.whole.hits, 0);
        assert_eq!(
            opt.whole.hits, 24,
            "after 4 cold misses, one miss per 3 requests"
        );
        assert!(opt.whole.hits >= lru.whole.hits);
    }

    #[test]
    fn belady_is_never_worse_than_lru_or_tessera_with_equal_sizes() {
        let ids = 8;
        let names = names(ids);
        for seed in 0..300 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let trace: Vec<u32> = (0..80).map(|_| rng.random_range(0..ids as u32)).collect();
            let next = next_uses(&trace, ids);
            let sizes = vec![10; ids];
            for k in 1..=5 {
                let b = paging(k);
                let opt = replay(&mut Belady::new(ids, &next), &trace, &sizes, b, 0, 8);
                let lru = replay(&mut Lru::new(ids), &trace, &sizes, b, 0, 8);
                let mut slru = Tessera::new(0.8, 1, b.capacity, &names);
                let slru = replay(&mut slru, &trace, &sizes, b, 0, 8);
                assert!(opt.whole.hits >= lru.whole.hits, "seed {seed}, k {k}");
                assert!(opt.whole.hits >= slru.whole.hits, "seed {seed}, k {k}");
            }
        }
    }

    #[test]
    fn belady_size_prefers_evicting_big_objects() {
        let (a, b, c) = (0, 1, 2);
        let sizes = [100, 10, 10];
        // At t=2 (c arrives, no room): a is next used at 3 (100 × 1), b at 4 (10 × 2).
        let trace = [a, b, c, a, b];
        let next = next_uses(&trace, 3);
        let budget = Budget {
            capacity: 110,
            high: 110,
            low: 110,
        };
        let mut by_size = BeladySize::new(&next);
        replay(&mut by_size, &trace[..3], &sizes, budget, 0, 3);
        assert!(!by_size.contains(a) && by_size.contains(b));
        let mut opt = Belady::new(3, &next);
        replay(&mut opt, &trace[..3], &sizes, budget, 0, 3);
        assert!(
            opt.contains(a) && !opt.contains(b),
            "plain Belady evicts b (further)"
        );
    }

    #[test]
    fn tessera_policy_resists_a_scan_where_lru_does_not() {
        // h is viewed twice, then five cold images pass through a cache of four.
        let h = 0;
        let trace = [h, h, 1, 2, 3, 4, 5, h];
        let names = names(6);
        let sizes = [10; 6];
        let mut slru = Tessera::new(0.8, 1, 40, &names);
        let slru = replay(&mut slru, &trace, &sizes, paging(4), 0, 6);
        let lru = replay(&mut Lru::new(6), &trace, &sizes, paging(4), 0, 6);
        assert_eq!((slru.whole.hits, lru.whole.hits), (2, 1));
    }

    #[test]
    fn only_the_measured_part_and_viewer_images_are_counted_there() {
        let trace = [0, 0, 1, 0, 2];
        let sizes = [10, 20, 2000];
        let mut lru = Lru::new(3);
        let st = replay(&mut lru, &trace, &sizes, Budget::new(1000), 2, 2);
        assert_eq!(
            st.whole,
            Counts {
                requests: 5,
                hits: 2,
                bytes: 2050,
                hit_bytes: 20
            }
        );
        assert_eq!((st.measured.requests, st.measured.hits), (3, 1));
        assert_eq!(st.measured.origin_bytes(), 2020);
        assert_eq!(
            (st.measured_viewers.requests, st.measured_viewers.bytes),
            (2, 30)
        );
        // 2000 bytes is over the high watermark (900): served, never cached.
        assert_eq!(st.too_large, 1);
        assert!(!lru.contains(2));
        assert_eq!(lru.used(), 30);
    }
}
