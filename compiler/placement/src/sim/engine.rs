//! The event loop: arrivals instantiate the op graph, dispatch picks a device of each ready op's
//! pool, devices run single ops or continuous-batching steps, and finished ops release their
//! dependents.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::cluster::DeviceId;
use crate::error::{Error, Result};
use crate::graph::{Flops, OpId, OpKind};

use super::kv::KvMemory;
use super::queue::{EventKind, EventQueue, Key};
use super::stats::{Counters, report};
use super::{AFFINITY_SLACK_OPS, OpRecord, QueuePolicy, SimReport, Simulation, Start};
use crate::profile::StepTokens;

/// A prefill or decode in a device's batch.
#[derive(Debug, Clone)]
struct Seq {
    run: usize,
    op: usize,
    key: Key,
    model: usize,
    decode: bool,
    remaining: u64,
    /// Sequences it stands for: decode tokens per step, and its share of the batch size.
    width: u64,
    kv_held: f64,
    /// Prefix group pinned while the sequence runs.
    pinned: Option<usize>,
    /// Prefix to cache when the sequence finishes (a leader that missed).
    insert: Option<(usize, f64)>,
}

/// What a device is doing.
#[derive(Debug, Clone)]
enum Current {
    Idle,
    Single {
        run: usize,
        op: usize,
    },
    /// `steps` identical batch steps of `step_s` from `start`: the members and the tokens each
    /// processes per step, and the token budget the members leave unused.
    Step {
        members: Vec<(usize, u64)>,
        start: f64,
        step_s: f64,
        steps: u64,
        budget_left: u64,
    },
}

#[derive(Debug)]
struct DeviceState {
    single: BinaryHeap<Reverse<(Key, usize, usize)>>,
    waiting: BinaryHeap<Reverse<(Key, usize)>>,
    /// Admitted sequences, by key.
    running: Vec<usize>,
    /// Sequences they stand for (their widths summed), against the batch size.
    running_width: u64,
    current: Current,
    kv: KvMemory,
    /// Ops dispatched here and not finished (for join-the-shortest-queue).
    load: u32,
    /// Bumped when fused steps are cut short, so the superseded completion event is ignored.
    generation: u64,
    busy_s: f64,
    ops: u64,
    steps: u64,
}

struct Engine<'s, 'a> {
    sim: &'s Simulation<'a>,
    /// Start time of each run (NaN until a closed-loop run starts).
    arrivals: Vec<f64>,
    /// Class of each run (index into `Simulation::classes`).
    class: Vec<usize>,
    /// Closed loop: the next run to start when one finishes.
    next_closed: Option<usize>,
    n_ops: usize,
    events: EventQueue,
    devices: Vec<DeviceState>,
    seqs: Vec<Seq>,
    free_seqs: Vec<usize>,
    /// Per (run, op), row-major: unfinished dependencies, finish time, device.
    pending: Vec<u32>,
    finish: Vec<f64>,
    placed: Vec<u32>,
    /// Per (run, op) start times, only when recording.
    start: Vec<f64>,
    run_left: Vec<u32>,
    completion: Vec<f64>,
    cursor: Vec<usize>,
    next_key: u64,
    counters: Counters,
    op_log: Vec<OpRecord>,
    /// Runs finished past their SLA.
    misses: usize,
}

pub(super) fn run(sim: &Simulation<'_>, start: Start<'_>, class_of: &[usize]) -> Result<SimReport> {
    let (arrivals, next_closed) = match start {
        Start::Open(a) => (a.times().to_vec(), None),
        Start::Closed { concurrency, runs } => {
            if concurrency == 0 || runs == 0 {
                return Err(Error::Simulation(format!(
                    "a closed loop needs at least one run in flight and one run, got \
                     {concurrency} and {runs}"
                )));
            }
            let mut times = vec![f64::NAN; runs];
            let first = concurrency.min(runs);
            times[..first].fill(0.0);
            (times, Some(first))
        }
    };
    if arrivals.is_empty() {
        return Err(Error::Simulation(
            "there are no arrivals to simulate".into(),
        ));
    }
    let class: Vec<usize> = (0..arrivals.len())
        .map(|r| match class_of.len() {
            0 => 0,
            n => class_of[r % n],
        })
        .collect();
    let n_ops = sim.ops.len();
    let cells = arrivals.len().checked_mul(n_ops).ok_or_else(|| {
        Error::Simulation(format!(
            "{} runs of {n_ops} ops are too many to simulate",
            arrivals.len()
        ))
    })?;
    let record = sim.settings.record_ops;
    let run_left = class
        .iter()
        .map(|&c| sim.classes[c].ops.len() as u32)
        .collect();
    let mut engine = Engine {
        sim,
        arrivals,
        class,
        next_closed,
        n_ops,
        events: EventQueue::default(),
        devices: sim
            .kv_capacity
            .iter()
            .map(|&c| DeviceState {
                single: BinaryHeap::new(),
                waiting: BinaryHeap::new(),
                running: Vec::new(),
                running_width: 0,
                current: Current::Idle,
                kv: KvMemory::new(c.max(0.0)),
                load: 0,
                generation: 0,
                busy_s: 0.0,
                ops: 0,
                steps: 0,
            })
            .collect(),
        seqs: Vec::new(),
        free_seqs: Vec::new(),
        pending: vec![0; cells],
        finish: vec![0.0; cells],
        placed: vec![0; cells],
        start: if record { vec![0.0; cells] } else { Vec::new() },
        run_left,
        completion: vec![f64::NAN; cells / n_ops.max(1)],
        cursor: vec![0; sim.pools.len()],
        next_key: 0,
        counters: Counters::default(),
        op_log: Vec::new(),
        misses: 0,
    };
    for (r, &t) in engine.arrivals.iter().enumerate() {
        if t.is_finite() {
            engine.events.push(t, EventKind::Arrival { run: r });
        }
    }
    // Devices touched at the current instant choose their next work once every event of the
    // instant is in, so work that becomes ready together is batched together.
    let mut touched: Vec<usize> = Vec::new();
    let mut is_touched = vec![false; engine.devices.len()];
    while let Some((now, event)) = engine.events.pop() {
        let device = match event {
            EventKind::Arrival { run } => {
                engine.arrive(run, now);
                None
            }
            EventKind::Ready { run, op, device } => {
                engine.enqueue(run, op, device);
                Some(device)
            }
            EventKind::DeviceDone { device, generation } => {
                if engine.devices[device].generation == generation {
                    engine.device_done(device, now);
                }
                Some(device)
            }
            EventKind::External { run, op } => {
                engine.finish_op(run, op, now);
                None
            }
        };
        if let Some(d) = device
            && !is_touched[d]
        {
            is_touched[d] = true;
            touched.push(d);
        }
        if engine.events.peek_time() != Some(now) {
            for d in touched.drain(..) {
                is_touched[d] = false;
                engine.try_start(d, now);
            }
        }
        if sim
            .settings
            .stop_after_misses
            .is_some_and(|m| engine.misses > m)
        {
            break;
        }
    }
    engine.counters.kv_evictions = engine.devices.iter().map(|d| d.kv.evictions).sum();
    let busy: Vec<(f64, u64, u64)> = engine
        .devices
        .iter()
        .map(|d| (d.busy_s, d.ops, d.steps))
        .collect();
    let sla: Vec<f64> = engine.class.iter().map(|&c| sim.classes[c].sla_s).collect();
    Ok(report(
        sim,
        &engine.arrivals,
        &sla,
        &engine.completion,
        &busy,
        &engine.counters,
        engine.op_log,
    ))
}

impl Engine<'_, '_> {
    fn arrive(&mut self, run: usize, now: f64) {
        let graph = self.sim.priced.graph();
        let base = run * self.n_ops;
        let ops = self.sim.classes[self.class[run]].ops.clone();
        for i in ops.clone() {
            self.pending[base + i] = graph.ops()[i].deps.len() as u32;
        }
        for i in ops {
            if self.pending[base + i] == 0 {
                self.dispatch(run, i, now);
            }
        }
    }

    fn key(&mut self, run: usize, op: usize) -> Key {
        let arrival = self.arrivals[run];
        let primary = match self.sim.settings.policy {
            QueuePolicy::Edf => {
                arrival + self.sim.classes[self.class[run]].sla_s - self.sim.ops[op].tail_s
            }
            QueuePolicy::Fifo => arrival,
        };
        self.next_key += 1;
        Key {
            primary,
            seq: self.next_key,
        }
    }

    /// Picks the device of op `op` of run `run` (its dependencies done at `now`) and schedules
    /// its arrival there after the transfers.
    fn dispatch(&mut self, run: usize, op: usize, now: f64) {
        let sim = self.sim;
        let info = &sim.ops[op];
        let pool = &sim.pools[info.pool];
        let devices = sim.priced.devices();
        let base = run * self.n_ops;
        let start = self.cursor[info.pool] % pool.len();
        let mut best = pool[start];
        for k in 1..pool.len() {
            let d = pool[(start + k) % pool.len()];
            if self.devices[d].load < self.devices[best].load {
                best = d;
            }
        }
        self.cursor[info.pool] = start + 1;
        let in_pool = |d: usize| {
            pool.len() > 1 && devices[d].type_index == devices[pool[0]].type_index || pool[0] == d
        };
        // Affinity: where the prefix is cached (a leader), else where the largest input is.
        let graph = sim.priced.graph();
        let candidate = match info.batch.as_ref().and_then(|b| b.prefix) {
            Some(p) if p.leader => pool
                .iter()
                .copied()
                .filter(|&d| self.devices[d].kv.contains(p.group))
                .min_by_key(|&d| self.devices[d].load),
            _ => graph.ops()[op]
                .deps
                .iter()
                .filter(|dep| dep.bytes > 0.0)
                .max_by(|a, b| a.bytes.total_cmp(&b.bytes))
                .map(|dep| self.placed[base + dep.from.0] as usize)
                .filter(|&d| in_pool(d)),
        };
        let device = match candidate {
            Some(c) if self.devices[c].load <= self.devices[best].load + AFFINITY_SLACK_OPS => c,
            _ => best,
        };
        self.devices[device].load += 1;
        self.placed[base + op] = device as u32;
        let mut ready = now;
        for dep in &graph.ops()[op].deps {
            let from = self.placed[base + dep.from.0] as usize;
            let arrive =
                self.finish[base + dep.from.0] + sim.priced.transfer_s(from, device, dep.bytes);
            ready = ready.max(arrive);
            self.counters.link_usd += sim.priced.transfer_usd(from, device, dep.bytes);
        }
        self.events
            .push(ready, EventKind::Ready { run, op, device });
    }

    fn enqueue(&mut self, run: usize, op: usize, device: usize) {
        let key = self.key(run, op);
        match &self.sim.ops[op].batch {
            Some(b) => {
                let seq = Seq {
                    run,
                    op,
                    key,
                    model: b.model,
                    decode: self.sim.priced.graph().ops()[op].kind == OpKind::Decode,
                    remaining: b.tokens,
                    // Fewer sequences at once than the batch stands for: they take turns.
                    width: b.width.min(self.sim.settings.max_batch as u64).max(1),
                    kv_held: b.kv_held,
                    pinned: None,
                    insert: None,
                };
                let id = match self.free_seqs.pop() {
                    Some(id) => {
                        self.seqs[id] = seq;
                        id
                    }
                    None => {
                        self.seqs.push(seq);
                        self.seqs.len() - 1
                    }
                };
                self.devices[device].waiting.push(Reverse((key, id)));
            }
            None => self.devices[device].single.push(Reverse((key, run, op))),
        }
    }

    fn try_start(&mut self, d: usize, now: f64) {
        if !matches!(self.devices[d].current, Current::Idle) {
            self.cut_fused_steps(d, now);
            return;
        }
        let dev = &self.devices[d];
        let single = dev.single.peek().map(|Reverse((k, _, _))| *k);
        let running = dev.running.first().map(|&s| self.seqs[s].key);
        let waiting = dev.waiting.peek().map(|Reverse((k, _))| *k);
        let batch = match (running, waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let single_first = match (single, batch) {
            (Some(s), Some(b)) => s < b,
            (s, _) => s.is_some(),
        };
        if single_first || !self.start_step(d, now) {
            self.start_single(d, now);
        }
    }

    fn start_single(&mut self, d: usize, now: f64) {
        let Some(Reverse((_, run, op))) = self.devices[d].single.pop() else {
            return;
        };
        let busy = self.sim.priced.cost(OpId(op), d).map_or(0.0, |c| c.busy_s);
        if !self.start.is_empty() {
            self.start[run * self.n_ops + op] = now;
        }
        let dev = &mut self.devices[d];
        dev.current = Current::Single { run, op };
        dev.busy_s += busy;
        let generation = dev.generation;
        self.events.push(
            now + busy,
            EventKind::DeviceDone {
                device: d,
                generation,
            },
        );
    }

    /// Forms and starts one batch step; false if no sequence can run.
    fn start_step(&mut self, d: usize, now: f64) -> bool {
        let dev = &self.devices[d];
        let head = match (dev.running.first(), dev.waiting.peek()) {
            (Some(&r), Some(Reverse((k, w)))) => {
                if self.seqs[r].key <= *k {
                    r
                } else {
                    *w
                }
            }
            (Some(&r), None) => r,
            (None, Some(Reverse((_, w)))) => *w,
            (None, None) => return false,
        };
        let mut model = self.seqs[head].model;
        let mut members = self.form_step(d, model, now);
        if members.is_empty()
            && let Some(&r) = self.devices[d].running.first()
            && self.seqs[r].model != model
        {
            // The most urgent model cannot admit anything (KV is full): run another's sequences.
            model = self.seqs[r].model;
            members = self.form_step(d, model, now);
        }
        if members.is_empty() {
            return false;
        }
        let sim = self.sim;
        let mut flops = Flops::default();
        let mut bytes = sim.weights[model];
        let mut step_tokens = 0;
        let mut decode_tokens = 0;
        let mut sampled_tokens = 0;
        let mut pairs = 0.0;
        for &(s, tokens) in &members {
            let Some(b) = sim.ops[self.seqs[s].op].batch.as_ref() else {
                continue;
            };
            let t = tokens as f64;
            flops.fp32 += b.flops_per_token.fp32 * t;
            flops.fp16 += b.flops_per_token.fp16 * t;
            flops.int8 += b.flops_per_token.int8 * t;
            bytes += b.bytes_per_token * t;
            pairs += b.pairs_per_token * t;
            step_tokens += tokens;
            if self.seqs[s].decode {
                decode_tokens += tokens;
                if b.sampled {
                    sampled_tokens += tokens;
                }
            }
        }
        let model_name = sim.priced.graph().models()[model].name.as_str();
        let step_s = sim
            .cost
            .step_s(
                DeviceId(d),
                Some(model_name),
                StepTokens::new(step_tokens - decode_tokens, decode_tokens, sampled_tokens),
                pairs,
                &flops,
                bytes,
            )
            .unwrap_or(0.0);
        let budget_left = sim.settings.token_budget.saturating_sub(step_tokens);
        // Identical decode steps until the first member finishes, when nothing else could join.
        let steps = if self.fusable(d, &members, budget_left) {
            members
                .iter()
                .map(|&(s, tokens)| self.seqs[s].remaining / tokens.max(1))
                .min()
                .unwrap_or(1)
                .max(1)
        } else {
            1
        };
        self.counters.step_tokens += step_tokens * steps;
        let dev = &mut self.devices[d];
        dev.busy_s += step_s * steps as f64;
        dev.steps += steps;
        dev.current = Current::Step {
            members,
            start: now,
            step_s,
            steps,
            budget_left,
        };
        let generation = dev.generation;
        self.events.push(
            now + step_s * steps as f64,
            EventKind::DeviceDone {
                device: d,
                generation,
            },
        );
        true
    }

    /// Whether the next step on `d` would have the same members as this one: all are running
    /// decodes, every running sequence is a member, and no waiting sequence or single op could
    /// be taken instead or in addition.
    fn fusable(&self, d: usize, members: &[(usize, u64)], budget_left: u64) -> bool {
        let dev = &self.devices[d];
        self.sim.settings.fuse_steps
            && dev.single.is_empty()
            && (dev.waiting.is_empty()
                || budget_left == 0
                || dev.running_width >= self.sim.settings.max_batch as u64)
            && dev.running.len() == members.len()
            && members.iter().all(|&(s, _)| self.seqs[s].decode)
    }

    /// New work reached `d` during fused steps: end them at the next step boundary so the work
    /// is considered there, as it would be between two real steps.
    fn cut_fused_steps(&mut self, d: usize, now: f64) {
        let Current::Step {
            members,
            start,
            step_s,
            steps,
            budget_left,
        } = &self.devices[d].current
        else {
            return;
        };
        if *steps <= 1 || self.fusable(d, members, *budget_left) {
            return;
        }
        let (start, step_s, steps) = (*start, *step_s, *steps);
        let tokens: u64 = members.iter().map(|&(_, t)| t).sum();
        let done = if step_s > 0.0 {
            ((now - start) / step_s).floor() as u64
        } else {
            steps
        };
        let keep = (done + 1).min(steps);
        if keep >= steps {
            return;
        }
        let dropped = steps - keep;
        self.counters.step_tokens -= tokens * dropped;
        let dev = &mut self.devices[d];
        dev.busy_s -= step_s * dropped as f64;
        dev.steps -= dropped;
        dev.generation += 1;
        if let Current::Step { steps, .. } = &mut dev.current {
            *steps = keep;
        }
        let generation = dev.generation;
        self.events.push(
            start + step_s * keep as f64,
            EventKind::DeviceDone {
                device: d,
                generation,
            },
        );
    }

    /// The members of a step of `model` on device `d` and their tokens: running decodes (one
    /// token each), running prefills' chunks, then waiting sequences admitted in priority order
    /// while the token budget, the batch size and the KV memory allow.
    fn form_step(&mut self, d: usize, model: usize, now: f64) -> Vec<(usize, u64)> {
        let sim = self.sim;
        let dev = &mut self.devices[d];
        let mut budget = sim.settings.token_budget;
        let mut members: Vec<(usize, u64)> = Vec::new();
        for decode_pass in [true, false] {
            for &s in &dev.running {
                let seq = &self.seqs[s];
                if seq.model != model || seq.decode != decode_pass || budget == 0 {
                    continue;
                }
                let tokens = if seq.decode {
                    seq.width.min(seq.remaining).min(budget)
                } else {
                    seq.remaining.min(budget)
                };
                budget -= tokens;
                members.push((s, tokens));
            }
        }
        while budget > 0 {
            let Some(&Reverse((key, s))) = dev.waiting.peek() else {
                break;
            };
            let width = self.seqs[s].width;
            let full = !dev.running.is_empty()
                && dev.running_width + width > sim.settings.max_batch as u64;
            if self.seqs[s].model != model || full || !dev.kv.reserve(self.seqs[s].kv_held) {
                break;
            }
            dev.running_width += width;
            dev.waiting.pop();
            let seq = &mut self.seqs[s];
            if let Some(p) = sim.ops[seq.op].batch.as_ref().and_then(|b| b.prefix) {
                let hit = dev.kv.lookup_and_pin(p.group);
                if hit {
                    seq.pinned = Some(p.group);
                }
                if p.leader {
                    self.counters.cache_lookups += 1;
                    if hit {
                        self.counters.cache_hits += 1;
                        seq.remaining = seq.remaining.saturating_sub(p.tokens).max(1);
                    } else {
                        seq.insert = Some((p.group, p.bytes));
                    }
                }
            }
            if !self.start.is_empty() {
                self.start[seq.run * self.n_ops + seq.op] = now;
            }
            let tokens = if seq.decode {
                seq.width.min(seq.remaining).min(budget)
            } else {
                seq.remaining.min(budget)
            };
            budget -= tokens;
            members.push((s, tokens));
            let at = dev.running.partition_point(|&r| self.seqs[r].key < key);
            dev.running.insert(at, s);
        }
        members
    }

    fn device_done(&mut self, d: usize, now: f64) {
        match std::mem::replace(&mut self.devices[d].current, Current::Idle) {
            Current::Idle => {}
            Current::Single { run, op } => {
                self.devices[d].ops += 1;
                self.op_done(run, op, now);
            }
            Current::Step { members, steps, .. } => {
                for (s, tokens) in members {
                    let seq = &mut self.seqs[s];
                    seq.remaining = seq.remaining.saturating_sub(tokens * steps);
                    if seq.remaining > 0 {
                        continue;
                    }
                    let (run, op, held, pinned, insert) =
                        (seq.run, seq.op, seq.kv_held, seq.pinned, seq.insert);
                    let width = seq.width;
                    let dev = &mut self.devices[d];
                    dev.running.retain(|&r| r != s);
                    dev.running_width -= width;
                    dev.kv.release(held);
                    if let Some(g) = pinned {
                        dev.kv.unpin(g);
                    }
                    if let Some((g, bytes)) = insert {
                        dev.kv.insert(g, bytes);
                    }
                    dev.ops += 1;
                    self.free_seqs.push(s);
                    self.op_done(run, op, now);
                }
            }
        }
    }

    /// The op left its device; a tool still waits for its external answer.
    fn op_done(&mut self, run: usize, op: usize, now: f64) {
        let external = self.sim.ops[op].external_s;
        if external > 0.0 {
            self.events
                .push(now + external, EventKind::External { run, op });
        } else {
            self.finish_op(run, op, now);
        }
    }

    fn finish_op(&mut self, run: usize, op: usize, now: f64) {
        let base = run * self.n_ops;
        self.finish[base + op] = now;
        let device = self.placed[base + op] as usize;
        let dev = &mut self.devices[device];
        dev.load = dev.load.saturating_sub(1);
        if !self.start.is_empty() {
            self.op_log.push(OpRecord {
                run,
                op: OpId(op),
                device: DeviceId(device),
                start_s: self.start[base + op],
                finish_s: now,
            });
        }
        self.run_left[run] -= 1;
        if self.run_left[run] == 0 {
            self.completion[run] = now;
            let sla = self.sim.classes[self.class[run]].sla_s;
            if now - self.arrivals[run] > sla * (1.0 + 1e-9) {
                self.misses += 1;
            }
            if let Some(next) = self.next_closed
                && next < self.arrivals.len()
            {
                self.arrivals[next] = now;
                self.next_closed = Some(next + 1);
                self.events.push(now, EventKind::Arrival { run: next });
            }
        }
        let graph = self.sim.priced.graph();
        for &(s, _) in graph.successors(OpId(op)) {
            let cell = &mut self.pending[base + s.0];
            *cell -= 1;
            if *cell == 0 {
                self.dispatch(run, s.0, now);
            }
        }
    }
}
