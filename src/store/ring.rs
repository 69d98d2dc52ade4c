//! The segments of one shard, oldest first, and the bytes they occupy against the shard's budget.

use std::collections::VecDeque;
use std::sync::Arc;

use super::segment::Segment;

/// INVARIANT: `segments` is sorted by strictly increasing sequence number and `bytes_used` is the
/// sum of their capacities.
#[derive(Default)]
pub struct Ring {
    segments: VecDeque<Arc<Segment>>,
    bytes_used: u64,
}

impl Ring {
    pub fn push(&mut self, segment: Arc<Segment>) {
        if let Some(last) = self.segments.back() {
            assert!(
                segment.seq() > last.seq(),
                "ring order: {} after {}",
                segment.seq(),
                last.seq()
            );
        }
        self.bytes_used += segment.capacity();
        self.segments.push_back(segment);
    }

    pub fn pop_front(&mut self) -> Option<Arc<Segment>> {
        let segment = self.segments.pop_front()?;
        self.bytes_used -= segment.capacity();
        Some(segment)
    }

    pub fn front(&self) -> Option<&Arc<Segment>> {
        self.segments.front()
    }

    fn position(&self, seq: u64) -> Option<usize> {
        self.segments
            .binary_search_by_key(&seq, |segment| segment.seq())
            .ok()
    }

    pub fn get(&self, seq: u64) -> Option<&Arc<Segment>> {
        self.position(seq).map(|i| &self.segments[i])
    }

    /// Whether `seq` lies in the oldest quarter of the ring (at least the oldest segment once the
    /// ring has two or more): reads there are copied forward so that they survive eviction.
    pub fn in_oldest_quarter(&self, seq: u64) -> bool {
        let len = self.segments.len();
        len >= 2 && self.position(seq).is_some_and(|i| i < (len / 4).max(1))
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn bytes_used(&self) -> u64 {
        self.bytes_used
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Segment>> {
        self.segments.iter()
    }
}
