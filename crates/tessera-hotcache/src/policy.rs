//! Which files to evict: a segmented LRU that counts *views*, not requests.
//!
//! Plain LRU lets one pass over many cold images (a crawler, a batch job) flush every popular
//! image out of the cache. A segmented LRU keeps two groups: files seen once (*probation*) and
//! files seen again later (*protected*, at most `protected_share` of the capacity). Eviction takes
//! the least recently used probation file first, then the least recently used protected one.
//!
//! A deep-zoom viewer asks for dozens of tiles of one image within seconds; those are one view.
//! A use counts as a re-use only when it comes at least `reuse_gap` after the previous one, so
//! a single viewing session does not make an image "popular".
//!
//! This type is pure (no I/O, no clock): the hot cache drives it, and `bench/` replays traces
//! through it to compare it with plain LRU and the offline optimum.

use std::collections::HashMap;

#[derive(Clone, Debug)]
struct Entry {
    size: u64,
    /// Order of last use (a counter, so ties cannot happen).
    seq: u64,
    /// Time of the last use that counted, in the caller's unit (milliseconds in the cache).
    last_use: u64,
    protected: bool,
    pins: u32,
}

#[derive(Clone, Debug)]
pub struct Policy {
    entries: HashMap<String, Entry>,
    seq: u64,
    used: u64,
    protected_bytes: u64,
    pinned: u64,
    /// Largest share of the capacity the protected group may hold.
    protected_share: f64,
    /// Uses closer together than this are one use.
    reuse_gap: u64,
}

impl Policy {
    pub fn new(protected_share: f64, reuse_gap: u64) -> Self {
        Self {
            entries: HashMap::new(),
            seq: 0,
            used: 0,
            protected_bytes: 0,
            pinned: 0,
            protected_share: protected_share.clamp(0.0, 1.0),
            reuse_gap,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Add a file that was just copied (or found at start). It starts on probation.
    pub fn insert(&mut self, name: &str, size: u64, now: u64) {
        self.remove(name);
        let seq = self.next_seq();
        self.entries.insert(
            name.to_string(),
            Entry {
                size,
                seq,
                last_use: now,
                protected: false,
                pins: 0,
            },
        );
        self.used += size;
    }

    /// Record a use of a file already present. Returns false if it is not present.
    pub fn touch(&mut self, name: &str, now: u64) -> bool {
        let seq = self.next_seq();
        let gap = self.reuse_gap;
        let Some(e) = self.entries.get_mut(name) else {
            return false;
        };
        e.seq = seq;
        if now.saturating_sub(e.last_use) >= gap {
            e.last_use = now;
            if !e.protected {
                e.protected = true;
                self.protected_bytes += e.size;
            }
        }
        true
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn pin(&mut self, name: &str) {
        if let Some(e) = self.entries.get_mut(name) {
            if e.pins == 0 {
                self.pinned += 1;
            }
            e.pins += 1;
        }
    }

    pub fn unpin(&mut self, name: &str) {
        if let Some(e) = self.entries.get_mut(name) {
            if e.pins > 0 {
                e.pins -= 1;
                if e.pins == 0 {
                    self.pinned -= 1;
                }
            }
        }
    }

    pub fn is_pinned(&self, name: &str) -> bool {
        self.entries.get(name).is_some_and(|e| e.pins > 0)
    }

    pub fn remove(&mut self, name: &str) -> Option<u64> {
        let e = self.entries.remove(name)?;
        self.used -= e.size;
        if e.protected {
            self.protected_bytes -= e.size;
        }
        if e.pins > 0 {
            self.pinned -= 1;
        }
        Some(e.size)
    }

    /// Bytes held by the files in the index.
    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn files(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Files that at least one lease holds.
    pub fn pinned_files(&self) -> u64 {
        self.pinned
    }

    /// Remove unpinned files, in eviction order, until at most `target` bytes are used, and
    /// return them (name, size). Fewer are returned if pinned files are in the way.
    pub fn evict_to(&mut self, target: u64, capacity: u64) -> Vec<(String, u64)> {
        if self.used <= target {
            return Vec::new();
        }
        // Keep the protected group within its share: its oldest go back to probation.
        let cap = (capacity as f64 * self.protected_share) as u64;
        if self.protected_bytes > cap {
            let mut protected: Vec<(&String, u64)> = self
                .entries
                .iter()
                .filter(|(_, e)| e.protected)
                .map(|(n, e)| (n, e.seq))
                .collect();
            protected.sort_by_key(|&(_, seq)| seq);
            let demote: Vec<String> = protected.iter().map(|(n, _)| (*n).clone()).collect();
            for name in demote {
                if self.protected_bytes <= cap {
                    break;
                }
                if let Some(e) = self.entries.get_mut(&name) {
                    e.protected = false;
                    self.protected_bytes -= e.size;
                }
            }
        }
        let mut order: Vec<(bool, u64, &String)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pins == 0)
            .map(|(n, e)| (e.protected, e.seq, n))
            .collect();
        order.sort_unstable_by_key(|&(protected, seq, _)| (protected, seq));
        let names: Vec<String> = order.into_iter().map(|(_, _, n)| n.clone()).collect();
        let mut victims = Vec::new();
        for name in names {
            if self.used <= target {
                break;
            }
            if let Some(size) = self.remove(&name) {
                victims.push((name, size));
            }
        }
        victims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probation_goes_before_protected_and_pins_are_kept() {
        let mut p = Policy::new(0.8, 10);
        p.insert("a", 10, 0);
        p.insert("b", 10, 0);
        p.insert("c", 10, 0);
        assert!(p.touch("a", 20)); // a re-used later: protected
        assert!(p.touch("b", 5)); // b used again within the gap: still probation
        p.pin("c");
        let victims = p.evict_to(10, 100);
        let names: Vec<&str> = victims.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b", "a"], "probation first, pinned c stays");
        assert_eq!(p.used(), 10);
        assert!(p.contains("c") && p.is_pinned("c"));
    }

    #[test]
    fn the_protected_share_is_enforced_by_demotion() {
        let mut p = Policy::new(0.5, 1);
        for n in ["a", "b", "c"] {
            p.insert(n, 10, 0);
        }
        for n in ["a", "b", "c"] {
            p.touch(n, 100);
        }
        p.insert("d", 10, 101);
        // 30 bytes protected > 50% of 40: "a" (oldest protected) is demoted, then evicted
        // before "d", which is on probation but was used more recently.
        let victims = p.evict_to(30, 40);
        assert_eq!(victims, vec![("a".to_string(), 10)]);
    }

    #[test]
    fn counters_follow_every_change() {
        let mut p = Policy::new(0.8, 0);
        p.insert("a", 7, 0);
        p.insert("a", 9, 0); // replacing an entry does not double count
        p.pin("a");
        p.pin("a");
        assert_eq!((p.used(), p.files(), p.pinned_files()), (9, 1, 1));
        p.unpin("a");
        assert_eq!(p.pinned_files(), 1);
        p.unpin("a");
        assert_eq!(p.pinned_files(), 0);
        assert_eq!(p.remove("a"), Some(9));
        assert_eq!((p.used(), p.files()), (0, 0));
        assert!(p.evict_to(0, 10).is_empty());
    }
}
