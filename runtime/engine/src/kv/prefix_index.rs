//! [`PrefixIndex`]: a radix tree over block-aligned token prefixes, for reusing KV blocks across
//! requests that share a prompt prefix.
//!
//! Each edge is one full block of `block_size` tokens and each node holds a [`Block`] reference
//! to the KV of that chunk (given all the chunks before it). A lookup walks the longest cached
//! prefix and returns new references to its blocks. The index's own reference keeps a cached
//! block alive after its sequences end; [`PrefixIndex::evict`] drops the least recently used
//! leaves that nobody else references and nobody pinned, which frees their blocks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::block_allocator::Block;

const ROOT: usize = 0;

#[derive(Debug)]
struct Node {
    parent: usize,
    chunk: Vec<u32>,
    /// `None` only for the root.
    block: Option<Block>,
    children: HashMap<Vec<u32>, usize>,
    last_used: u64,
    /// Retention hints holding this node: a pinned node is never evicted.
    pins: u32,
}

/// Cached KV blocks keyed by the token prefix they hold.
#[derive(Debug)]
pub struct PrefixIndex {
    block_size: usize,
    /// Arena of nodes; `None` marks a removed slot (reused by `vacant`).
    nodes: Vec<Option<Node>>,
    vacant: Vec<usize>,
    clock: u64,
    cached: usize,
}

impl PrefixIndex {
    pub fn new(block_size: usize) -> Self {
        let root = Node {
            parent: ROOT,
            chunk: Vec::new(),
            block: None,
            children: HashMap::new(),
            last_used: 0,
            pins: 0,
        };
        Self {
            block_size: block_size.max(1),
            nodes: vec![Some(root)],
            vacant: Vec::new(),
            clock: 0,
            cached: 0,
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks the index holds a reference to.
    pub fn cached_blocks(&self) -> usize {
        self.cached
    }

    /// The blocks of the longest cached block-aligned prefix of `tokens` (new references, in
    /// order); marks them as just used.
    pub fn lookup(&mut self, tokens: &[u32]) -> Vec<Block> {
        let stamp = self.tick();
        let path = self.path(tokens);
        path.iter()
            .filter_map(|&id| {
                let node = self.node_mut(id)?;
                node.last_used = stamp;
                node.block.clone()
            })
            .collect()
    }

    /// Caches `blocks[i]` as the KV of `tokens`' chunk `i`, for every full chunk that `blocks`
    /// covers. Chunks already cached keep their existing block. Returns the blocks added.
    pub fn insert(&mut self, tokens: &[u32], blocks: &[Block]) -> usize {
        let stamp = self.tick();
        let mut at = ROOT;
        let mut added = 0;
        for (chunk, block) in tokens.chunks_exact(self.block_size).zip(blocks) {
            let existing = self.node(at).and_then(|n| n.children.get(chunk).copied());
            let next = match existing {
                Some(next) => next,
                None => {
                    added += 1;
                    self.add_child(at, chunk, block.clone())
                }
            };
            if let Some(node) = self.node_mut(next) {
                node.last_used = stamp;
            }
            at = next;
        }
        added
    }

    /// Adds a retention hint to every cached block of `tokens`' block-aligned prefix: they are
    /// not evicted until [`PrefixIndex::unpin`] removes the hint. Returns the blocks pinned.
    pub fn pin(&mut self, tokens: &[u32]) -> usize {
        let path = self.path(tokens);
        for &id in &path {
            if let Some(node) = self.node_mut(id) {
                node.pins += 1;
            }
        }
        path.len()
    }

    /// Removes one retention hint from the cached blocks of `tokens`' prefix. Pass the tokens
    /// that [`PrefixIndex::pin`] covered (its result times the block size): later inserts may
    /// have extended the cached path past them. Blocks without a hint are left alone.
    pub fn unpin(&mut self, tokens: &[u32]) -> usize {
        let path = self.path(tokens);
        let mut unpinned = 0;
        for &id in &path {
            if let Some(node) = self.node_mut(id).filter(|n| n.pins > 0) {
                node.pins -= 1;
                unpinned += 1;
            }
        }
        unpinned
    }

    /// Removes every retention hint (when pinned blocks would otherwise starve running work).
    pub fn clear_pins(&mut self) {
        for node in self.nodes.iter_mut().flatten() {
            node.pins = 0;
        }
    }

    /// Blocks with at least one retention hint.
    pub fn pinned_blocks(&self) -> usize {
        self.nodes.iter().flatten().filter(|n| n.pins > 0).count()
    }

    /// Blocks that [`PrefixIndex::evict`] could free now: unpinned, referenced only by the
    /// index, with no descendant that must stay.
    pub fn evictable(&self) -> usize {
        let mut removable = vec![false; self.nodes.len()];
        // Arena slots are reused, so ids say nothing about depth: walk children first.
        let mut count = 0;
        for id in self.post_order() {
            let Some(node) = self.node(id) else { continue };
            let ok = id != ROOT
                && Self::unreferenced(node)
                && node.children.values().all(|&c| removable[c]);
            removable[id] = ok;
            count += usize::from(ok);
        }
        count
    }

    /// Frees up to `wanted` blocks, least recently used leaves first, never touching a block
    /// that a sequence still references or that is pinned. Returns the number freed.
    pub fn evict(&mut self, wanted: usize) -> usize {
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(id, n)| n.as_ref().map(|n| (id, n)))
            .filter(|&(id, n)| id != ROOT && n.children.is_empty() && Self::unreferenced(n))
            .map(|(id, n)| Reverse((n.last_used, id)))
            .collect();
        let mut freed = 0;
        while freed < wanted {
            let Some(Reverse((_, id))) = heap.pop() else {
                break;
            };
            let Some(node) = self.remove_leaf(id) else {
                continue;
            };
            freed += 1;
            let parent = node.parent;
            if let Some(p) = self.node(parent)
                && parent != ROOT
                && p.children.is_empty()
                && Self::unreferenced(p)
            {
                heap.push(Reverse((p.last_used, parent)));
            }
        }
        freed
    }

    /// Drops every unpinned, unreferenced block (e.g. at shutdown or in tests).
    pub fn evict_all(&mut self) -> usize {
        self.evict(usize::MAX)
    }

    fn unreferenced(node: &Node) -> bool {
        node.pins == 0 && node.block.as_ref().is_some_and(|b| b.refcount() == 1)
    }

    /// Node ids along the longest cached prefix of `tokens`.
    fn path(&self, tokens: &[u32]) -> Vec<usize> {
        let mut path = Vec::new();
        let mut at = ROOT;
        for chunk in tokens.chunks_exact(self.block_size) {
            match self.node(at).and_then(|n| n.children.get(chunk)) {
                Some(&next) => {
                    path.push(next);
                    at = next;
                }
                None => break,
            }
        }
        path
    }

    fn post_order(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![(ROOT, false)];
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                order.push(id);
                continue;
            }
            stack.push((id, true));
            if let Some(node) = self.node(id) {
                stack.extend(node.children.values().map(|&c| (c, false)));
            }
        }
        order
    }

    fn add_child(&mut self, parent: usize, chunk: &[u32], block: Block) -> usize {
        let node = Node {
            parent,
            chunk: chunk.to_vec(),
            block: Some(block),
            children: HashMap::new(),
            last_used: self.clock,
            pins: 0,
        };
        let id = match self.vacant.pop() {
            Some(id) => {
                self.nodes[id] = Some(node);
                id
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        if let Some(p) = self.node_mut(parent) {
            p.children.insert(chunk.to_vec(), id);
        }
        self.cached += 1;
        id
    }

    /// Unlinks leaf `id` and returns it (its block reference drops with it).
    fn remove_leaf(&mut self, id: usize) -> Option<Node> {
        if id == ROOT || !self.node(id).is_some_and(|n| n.children.is_empty()) {
            return None;
        }
        let node = self.nodes.get_mut(id)?.take()?;
        if let Some(p) = self.node_mut(node.parent) {
            p.children.remove(&node.chunk);
        }
        self.vacant.push(id);
        self.cached -= 1;
        Some(node)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn node(&self, id: usize) -> Option<&Node> {
        self.nodes.get(id).and_then(Option::as_ref)
    }

    fn node_mut(&mut self, id: usize) -> Option<&mut Node> {
        self.nodes.get_mut(id).and_then(Option::as_mut)
    }
}

#[cfg(test)]
mod tests {
    use super::super::block_allocator::BlockAllocator;
    use super::*;

    #[test]
    fn lookup_finds_the_longest_cached_block_prefix() {
        let pool = BlockAllocator::new(8);
        let mut index = PrefixIndex::new(2);
        let blocks = pool.allocate_many(3).expect("free blocks");
        assert_eq!(index.insert(&[1, 2, 3, 4, 5, 6, 7], &blocks), 3);
        drop(blocks);
        let hit = index.lookup(&[1, 2, 3, 4, 9, 9]);
        assert_eq!(hit.iter().map(Block::id).collect::<Vec<_>>(), [0, 1]);
        // Block 1 is referenced by `hit`, so only the leaf block 2 can go, then nothing.
        assert_eq!(index.evictable(), 1);
        assert_eq!(index.evict(3), 1);
        drop(hit);
        index.pin(&[1, 2]);
        assert_eq!(index.evict(3), 1);
        assert_eq!(pool.free(), 7);
        index.unpin(&[1, 2]);
        assert_eq!(index.evict_all(), 1);
        assert_eq!((pool.free(), index.cached_blocks()), (8, 0));
    }
}
