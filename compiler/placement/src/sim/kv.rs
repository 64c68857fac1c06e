//! One device's KV memory: bytes held by running sequences plus a prefix cache of shared prompt
//! prefixes, evicted least recently used when a sequence or a new prefix needs the room. Entries
//! used by a running sequence are pinned and never evicted.

/// A cached prefix.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    group: usize,
    bytes: f64,
    last_use: u64,
    pins: u32,
}

/// KV memory of one device.
#[derive(Debug, Clone, Default)]
pub(super) struct KvMemory {
    capacity: f64,
    /// Bytes held by running sequences.
    held: f64,
    entries: Vec<Entry>,
    clock: u64,
    pub evictions: u64,
}

impl KvMemory {
    pub fn new(capacity: f64) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    fn cached(&self) -> f64 {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    fn free(&self) -> f64 {
        self.capacity - self.held - self.cached()
    }

    /// Evicts unpinned entries, least recently used first, until `bytes` fit; false if they
    /// cannot (what was evicted stays evicted, as in a real cache under pressure).
    fn make_room(&mut self, bytes: f64) -> bool {
        while self.free() < bytes {
            let victim = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.pins == 0)
                .min_by_key(|(_, e)| e.last_use)
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    self.entries.swap_remove(i);
                    self.evictions += 1;
                }
                None => return false,
            }
        }
        true
    }

    /// Whether `bytes` could be reserved now, evicting if needed (without reserving them).
    pub fn fits_after_eviction(&self, bytes: f64) -> bool {
        let pinned: f64 = self
            .entries
            .iter()
            .filter(|e| e.pins > 0)
            .map(|e| e.bytes)
            .sum();
        self.capacity - self.held - pinned >= bytes
    }

    /// Reserves `bytes` for a sequence, evicting as needed; false (nothing reserved) if they do
    /// not fit even after evicting every unpinned entry.
    pub fn reserve(&mut self, bytes: f64) -> bool {
        if !self.fits_after_eviction(bytes) {
            return false;
        }
        self.make_room(bytes);
        self.held += bytes;
        true
    }

    pub fn release(&mut self, bytes: f64) {
        self.held = (self.held - bytes).max(0.0);
    }

    /// Looks `group` up; on a hit marks it used and pins it.
    pub fn lookup_and_pin(&mut self, group: usize) -> bool {
        self.clock += 1;
        let clock = self.clock;
        match self.entries.iter_mut().find(|e| e.group == group) {
            Some(e) => {
                e.last_use = clock;
                e.pins += 1;
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, group: usize) -> bool {
        self.entries.iter().any(|e| e.group == group)
    }

    pub fn unpin(&mut self, group: usize) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.group == group) {
            e.pins = e.pins.saturating_sub(1);
        }
    }

    /// Caches `group`'s prefix of `bytes` if it is absent and fits after evicting unpinned
    /// entries; true if it is cached afterwards.
    pub fn insert(&mut self, group: usize, bytes: f64) -> bool {
        self.clock += 1;
        let clock = self.clock;
        if let Some(e) = self.entries.iter_mut().find(|e| e.group == group) {
            e.last_use = clock;
            return true;
        }
        if !self.fits_after_eviction(bytes) || !self.make_room(bytes) {
            return false;
        }
        self.entries.push(Entry {
            group,
            bytes,
            last_use: clock,
            pins: 0,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_unpinned_entries() {
        let mut kv = KvMemory::new(10.0);
        assert!(kv.insert(0, 4.0));
        assert!(kv.insert(1, 4.0));
        assert!(kv.lookup_and_pin(0));
        kv.unpin(0);
        // 2 bytes free; 4 more need one eviction: group 1 is older than group 0's lookup.
        assert!(kv.insert(2, 4.0));
        assert_eq!(kv.evictions, 1);
        assert!(kv.contains(0) && !kv.contains(1) && kv.contains(2));
        // Pinned entries stay: with group 0 pinned only group 2 can go.
        assert!(kv.lookup_and_pin(0));
        assert!(kv.reserve(6.0));
        assert_eq!(kv.evictions, 2);
        assert!(kv.contains(0) && !kv.contains(2));
        assert!(!kv.reserve(1.0));
        assert!(!kv.insert(3, 1.0));
        kv.release(6.0);
        assert!(kv.insert(3, 1.0));
    }
}
