//! The event queue (a binary min-heap on time, ties broken by insertion order so runs are
//! deterministic) and the priority key devices order their ready work by.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What happens at an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventKind {
    /// Run `run` arrives.
    Arrival { run: usize },
    /// The inputs of op `op` of run `run` are on device `device`.
    Ready {
        run: usize,
        op: usize,
        device: usize,
    },
    /// Device `device` finished its current op or batch steps, unless it has since been given
    /// a newer `generation` (a run of fused steps cut short).
    DeviceDone { device: usize, generation: u64 },
    /// The external part (a tool's remote latency) of op `op` of run `run` ended.
    External { run: usize, op: usize },
}

#[derive(Debug, Clone, Copy)]
struct Event {
    time: f64,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .time
            .total_cmp(&self.time)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Pending events, earliest first.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    heap: BinaryHeap<Event>,
    next_seq: u64,
}

impl EventQueue {
    pub fn push(&mut self, time: f64, kind: EventKind) {
        self.heap.push(Event {
            time,
            seq: self.next_seq,
            kind,
        });
        self.next_seq += 1;
    }

    /// Time of the next event, if any.
    pub fn peek_time(&self) -> Option<f64> {
        self.heap.peek().map(|e| e.time)
    }

    pub fn pop(&mut self) -> Option<(f64, EventKind)> {
        self.heap.pop().map(|e| (e.time, e.kind))
    }
}

/// Priority of ready work: smaller first (deadline under EDF, run arrival under FIFO), ties by
/// the order the work became ready.
#[derive(Debug, Clone, Copy)]
pub(super) struct Key {
    pub primary: f64,
    pub seq: u64,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.primary
            .total_cmp(&other.primary)
            .then_with(|| self.seq.cmp(&other.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pop_by_time_then_insertion_order() {
        let mut q = EventQueue::default();
        q.push(
            2.0,
            EventKind::DeviceDone {
                device: 0,
                generation: 0,
            },
        );
        q.push(1.0, EventKind::Arrival { run: 1 });
        q.push(1.0, EventKind::Arrival { run: 2 });
        q.push(0.5, EventKind::External { run: 0, op: 3 });
        let order: Vec<(f64, EventKind)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![
                (0.5, EventKind::External { run: 0, op: 3 }),
                (1.0, EventKind::Arrival { run: 1 }),
                (1.0, EventKind::Arrival { run: 2 }),
                (
                    2.0,
                    EventKind::DeviceDone {
                        device: 0,
                        generation: 0
                    }
                ),
            ]
        );
    }

    #[test]
    fn keys_order_by_primary_then_seq() {
        let a = Key {
            primary: 1.0,
            seq: 5,
        };
        let b = Key {
            primary: 1.0,
            seq: 6,
        };
        let c = Key {
            primary: 0.5,
            seq: 9,
        };
        let mut keys = [b, a, c];
        keys.sort();
        assert_eq!(
            keys.iter().map(|k| k.seq).collect::<Vec<_>>(),
            vec![9, 5, 6]
        );
    }
}
