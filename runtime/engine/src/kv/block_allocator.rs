//! [`BlockAllocator`]: a fixed pool of KV block ids with reference counts.
//!
//! A [`Block`] is one counted reference to a block: cloning it adds a reference, dropping it
//! removes one, and the block returns to the free list when its last reference is dropped. Every
//! holder (a running sequence's block table, the prefix index) owns `Block`s, so no code path
//! frees a block by hand and a block in use can never be handed out twice.
//!
//! The allocator lives on the scheduler thread (the serving engine's actor), so the counts sit
//! behind an `Rc<RefCell<..>>` rather than atomics.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

/// Index of a block in the KV store.
pub type BlockId = u32;

#[derive(Debug)]
struct Counts {
    refcounts: Vec<u32>,
    /// Free block ids; allocation pops from the end.
    free: Vec<BlockId>,
    /// Releases of a block whose count was already zero. Never expected; kept as a counter (not
    /// a panic) so the property tests can assert it stays zero.
    faults: u64,
}

/// Hands out [`Block`]s from a pool of `total` blocks. Clones share the same pool.
#[derive(Clone)]
pub struct BlockAllocator {
    counts: Rc<RefCell<Counts>>,
}

impl fmt::Debug for BlockAllocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockAllocator")
            .field("total", &self.total())
            .field("free", &self.free())
            .finish()
    }
}

impl BlockAllocator {
    /// A pool of `total` blocks, all free. Ids are handed out lowest first.
    pub fn new(total: usize) -> Self {
        let total = u32::try_from(total).unwrap_or(u32::MAX);
        Self {
            counts: Rc::new(RefCell::new(Counts {
                refcounts: vec![0; total as usize],
                free: (0..total).rev().collect(),
                faults: 0,
            })),
        }
    }

    /// One new reference to a free block, or `None` when every block is in use.
    pub fn allocate(&self) -> Option<Block> {
        let mut counts = self.counts.borrow_mut();
        let id = counts.free.pop()?;
        counts.refcounts[id as usize] = 1;
        Some(Block {
            id,
            counts: Rc::clone(&self.counts),
        })
    }

    /// `n` new blocks, or none at all (and nothing allocated) if fewer than `n` are free.
    pub fn allocate_many(&self, n: usize) -> Option<Vec<Block>> {
        if self.free() < n {
            return None;
        }
        (0..n).map(|_| self.allocate()).collect()
    }

    pub fn total(&self) -> usize {
        self.counts.borrow().refcounts.len()
    }

    pub fn free(&self) -> usize {
        self.counts.borrow().free.len()
    }

    /// Blocks with at least one reference.
    pub fn used(&self) -> usize {
        self.total() - self.free()
    }

    /// References to block `id` (0 for a free or unknown block).
    pub fn refcount(&self, id: BlockId) -> u32 {
        self.counts
            .borrow()
            .refcounts
            .get(id as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Releases of an already free block seen so far (always 0 unless there is a bug).
    pub fn faults(&self) -> u64 {
        self.counts.borrow().faults
    }

    /// Whether block `id` is on the free list (for invariant checks).
    pub fn is_free(&self, id: BlockId) -> bool {
        self.counts.borrow().free.contains(&id)
    }
}

/// One reference to a KV block; the block is freed when its last reference is dropped.
pub struct Block {
    id: BlockId,
    counts: Rc<RefCell<Counts>>,
}

impl Block {
    pub fn id(&self) -> BlockId {
        self.id
    }

    /// References to this block, this one included.
    pub fn refcount(&self) -> u32 {
        self.counts.borrow().refcounts[self.id as usize]
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Block({})", self.id)
    }
}

impl Clone for Block {
    fn clone(&self) -> Self {
        self.counts.borrow_mut().refcounts[self.id as usize] += 1;
        Self {
            id: self.id,
            counts: Rc::clone(&self.counts),
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let mut counts = self.counts.borrow_mut();
        let count = &mut counts.refcounts[self.id as usize];
        match *count {
            0 => counts.faults += 1,
            1 => {
                *count = 0;
                counts.free.push(self.id);
            }
            _ => *count -= 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_return_to_the_pool_when_the_last_reference_drops() {
        let pool = BlockAllocator::new(2);
        let a = pool.allocate().expect("free block");
        let a2 = a.clone();
        assert_eq!((pool.free(), a.refcount()), (1, 2));
        drop(a);
        assert_eq!(pool.free(), 1);
        let b = pool.allocate().expect("free block");
        assert!(pool.allocate().is_none());
        assert!(pool.allocate_many(1).is_none());
        drop((a2, b));
        assert_eq!((pool.free(), pool.faults()), (2, 0));
    }
}
