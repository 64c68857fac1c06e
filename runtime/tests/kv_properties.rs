//! Property tests of the KV block allocator and the prefix index over random operation
//! sequences: a model of who holds which block is kept beside them, and after every operation
//! the real reference counts must equal the model's (no leak, no double free, never negative),
//! and eviction must never free a block a sequence still holds or a pinned block.

use std::collections::HashMap;

use agentc_runtime::kv::{Block, BlockAllocator, BlockId, PrefixIndex};
use proptest::prelude::*;

const TOTAL: usize = 24;
const BLOCK: usize = 2;

#[derive(Clone, Debug)]
enum Op {
    /// A new sequence over a prompt from a small alphabet (so prefixes collide): it looks up
    /// the cached prefix, then allocates blocks for the rest.
    Start {
        prompt: Vec<u32>,
    },
    /// A sequence grows by `tokens` positions (new blocks as needed).
    Grow {
        seq: usize,
        tokens: usize,
    },
    /// A sequence ends, caching its full blocks in the index.
    Finish {
        seq: usize,
    },
    /// A sequence is cancelled without caching anything.
    Cancel {
        seq: usize,
    },
    /// A sequence is forked (its block table shared, as a copy-on-write parent would).
    Fork {
        seq: usize,
    },
    Evict {
        wanted: usize,
    },
    Pin {
        seq_prompt: usize,
    },
    Unpin {
        seq_prompt: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(0u32..3, 0..12).prop_map(|prompt| Op::Start { prompt }),
        3 => (0usize..8, 1usize..6).prop_map(|(seq, tokens)| Op::Grow { seq, tokens }),
        2 => (0usize..8).prop_map(|seq| Op::Finish { seq }),
        1 => (0usize..8).prop_map(|seq| Op::Cancel { seq }),
        1 => (0usize..8).prop_map(|seq| Op::Fork { seq }),
        2 => (0usize..TOTAL).prop_map(|wanted| Op::Evict { wanted }),
        1 => (0usize..8).prop_map(|seq_prompt| Op::Pin { seq_prompt }),
        1 => (0usize..8).prop_map(|seq_prompt| Op::Unpin { seq_prompt }),
    ]
}

struct Seq {
    tokens: Vec<u32>,
    blocks: Vec<Block>,
}

struct World {
    pool: BlockAllocator,
    index: PrefixIndex,
    seqs: Vec<Seq>,
    prompts: Vec<Vec<u32>>,
    /// Pins added per prompt and not yet removed.
    pins: Vec<(Vec<u32>, usize)>,
}

impl World {
    fn seq(&mut self, i: usize) -> Option<usize> {
        (!self.seqs.is_empty()).then(|| i % self.seqs.len())
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Start { prompt } => {
                let mut blocks = self.index.lookup(&prompt);
                let needed = prompt.len().div_ceil(BLOCK).saturating_sub(blocks.len());
                if self.pool.free() < needed {
                    self.index.evict(needed - self.pool.free());
                }
                let Some(fresh) = self.pool.allocate_many(needed) else {
                    return; // not enough memory: the sequence is refused, its lookups dropped
                };
                blocks.extend(fresh);
                self.prompts.push(prompt.clone());
                self.seqs.push(Seq {
                    tokens: prompt,
                    blocks,
                });
            }
            Op::Grow { seq, tokens } => {
                let Some(s) = self.seq(seq) else { return };
                for t in 0..tokens {
                    let s = &mut self.seqs[s];
                    if s.tokens.len() == s.blocks.len() * BLOCK {
                        if self.pool.free() == 0 {
                            self.index.evict(1);
                        }
                        match self.pool.allocate() {
                            Some(b) => s.blocks.push(b),
                            None => return,
                        }
                    }
                    s.tokens.push(t as u32 % 3);
                }
            }
            Op::Finish { seq } => {
                let Some(s) = self.seq(seq) else { return };
                let s = self.seqs.swap_remove(s);
                self.index.insert(&s.tokens, &s.blocks);
            }
            Op::Cancel { seq } => {
                if let Some(s) = self.seq(seq) {
                    self.seqs.swap_remove(s);
                }
            }
            Op::Fork { seq } => {
                if let Some(s) = self.seq(seq) {
                    let fork = Seq {
                        tokens: self.seqs[s].tokens.clone(),
                        blocks: self.seqs[s].blocks.clone(),
                    };
                    self.seqs.push(fork);
                }
            }
            Op::Evict { wanted } => {
                let held = self.held_outside_index();
                let pinned = self.pinned_ids();
                let free_before = self.pool.free();
                let freed = self.index.evict(wanted);
                assert!(freed <= wanted);
                assert_eq!(
                    self.pool.free(),
                    free_before + freed,
                    "evict frees what it says"
                );
                for id in held.keys().chain(&pinned) {
                    assert!(
                        !self.pool.is_free(*id),
                        "evicted block {id} is still in use"
                    );
                }
            }
            Op::Pin { seq_prompt } => {
                if self.prompts.is_empty() {
                    return;
                }
                let prompt = self.prompts[seq_prompt % self.prompts.len()].clone();
                let pinned = self.index.pin(&prompt);
                // Later inserts may extend the cached path; the pin covers what it reached.
                self.pins.push((prompt[..pinned * BLOCK].to_vec(), pinned));
            }
            Op::Unpin { seq_prompt } => {
                if self.pins.is_empty() {
                    return;
                }
                let (prompt, _) = self.pins.swap_remove(seq_prompt % self.pins.len());
                self.index.unpin(&prompt);
            }
        }
    }

    /// References held by sequences, per block.
    fn held_outside_index(&self) -> HashMap<BlockId, u32> {
        let mut held = HashMap::new();
        for b in self.seqs.iter().flat_map(|s| &s.blocks) {
            *held.entry(b.id()).or_insert(0) += 1;
        }
        held
    }

    fn pinned_ids(&mut self) -> Vec<BlockId> {
        let prompts: Vec<_> = self.pins.iter().map(|(p, _)| p.clone()).collect();
        let mut ids = Vec::new();
        for prompt in prompts {
            // A lookup clones the blocks; read their ids and drop the extra references at once.
            ids.extend(self.index.lookup(&prompt).iter().map(Block::id));
        }
        ids
    }

    fn check(&self) {
        assert_eq!(self.pool.faults(), 0, "a block was released twice");
        let held = self.held_outside_index();
        let mut referenced = 0;
        for id in 0..TOTAL as BlockId {
            let count = self.pool.refcount(id);
            let outside = held.get(&id).copied().unwrap_or(0);
            // The index holds at most one reference per block on top of the sequences'.
            assert!(
                count == outside || count == outside + 1,
                "block {id}: refcount {count}, sequences hold {outside}"
            );
            assert_eq!(
                count == 0,
                self.pool.is_free(id),
                "block {id} free-list state"
            );
            referenced += usize::from(count > 0);
        }
        assert_eq!(referenced + self.pool.free(), TOTAL, "leak");
        assert!(self.index.cached_blocks() <= TOTAL);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn allocator_and_index_keep_counts_exact(ops in prop::collection::vec(op(), 1..80)) {
        let mut world = World {
            pool: BlockAllocator::new(TOTAL),
            index: PrefixIndex::new(BLOCK),
            seqs: Vec::new(),
            prompts: Vec::new(),
            pins: Vec::new(),
        };
        for op in ops {
            world.apply(op);
            world.check();
        }
        // Everything ends: sequences drop, pins go, the index empties: every block is free.
        world.seqs.clear();
        world.index.clear_pins();
        world.index.evict_all();
        prop_assert_eq!(world.index.cached_blocks(), 0);
        prop_assert_eq!(world.pool.free(), TOTAL);
        prop_assert_eq!(world.pool.faults(), 0);
    }

    #[test]
    fn lookup_returns_only_blocks_of_matching_prefixes(
        prompts in prop::collection::vec(prop::collection::vec(0u32..3, 0..10), 1..8),
        query in prop::collection::vec(0u32..3, 0..10),
    ) {
        let pool = BlockAllocator::new(64);
        let mut index = PrefixIndex::new(BLOCK);
        let mut owner: HashMap<BlockId, Vec<u32>> = HashMap::new();
        for prompt in &prompts {
            let blocks = pool.allocate_many(prompt.len() / BLOCK).expect("pool is large enough");
            index.insert(prompt, &blocks);
            // Record which prefix each newly cached block stands for.
            for (i, b) in index.lookup(prompt).iter().enumerate() {
                owner.entry(b.id()).or_insert_with(|| prompt[..(i + 1) * BLOCK].to_vec());
            }
        }
        let hit = index.lookup(&query);
        for (i, b) in hit.iter().enumerate() {
            prop_assert_eq!(&owner[&b.id()][..], &query[..(i + 1) * BLOCK]);
        }
        // The hit is the longest: the next chunk, if any, is not cached after this prefix.
        let longest = prompts
            .iter()
            .map(|p| p.chunks_exact(BLOCK).zip(query.chunks_exact(BLOCK)).take_while(|(a, b)| a == b).count())
            .max()
            .unwrap_or(0);
        prop_assert_eq!(hit.len(), longest);
    }
}
