//! Per-variable value distributions: the Space-Saving heavy-hitters sketch
//! (Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and Top-k Elements
//! in Data Streams", ICDT 2005) with a fixed number of slots.

use serde::{Deserialize, Serialize};

/// One tracked value and its (over-)estimated count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueCount {
    /// The value as seen in the message.
    pub value: String,
    /// Estimated occurrences (exact while fewer distinct values than slots were seen).
    pub count: u64,
}

/// A bounded sketch of the most frequent values of one variable position.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TopK {
    slots: Vec<ValueCount>,
    /// Hash of each slot's value (compared before the bytes); rebuilt after loading.
    #[serde(skip)]
    hashes: Vec<u64>,
    /// Values that evicted another slot's value (so the counts became estimates).
    pub evictions: u64,
}

impl TopK {
    /// Records one occurrence of `value`, tracking at most `capacity` distinct values.
    /// Allocates only when a new value is inserted or replaces a shorter one.
    pub fn add(&mut self, value: &str, n: u64, capacity: usize) {
        if self.hashes.len() != self.slots.len() {
            self.rehash();
        }
        let h = hash(value);
        if let Some(i) = self.hashes.iter().position(|&x| x == h)
            && self.slots[i].value == value
        {
            self.slots[i].count += n;
            return;
        }
        if self.slots.len() < capacity {
            self.slots.push(ValueCount {
                value: value.to_owned(),
                count: n,
            });
            self.hashes.push(h);
            return;
        }
        // Replace the minimum: the newcomer inherits its count (Space-Saving).
        let Some((i, _)) = self.slots.iter().enumerate().min_by_key(|(_, s)| s.count) else {
            return;
        };
        let slot = &mut self.slots[i];
        slot.value.clear();
        slot.value.push_str(value);
        slot.count += n;
        self.hashes[i] = h;
        self.evictions += 1;
    }

    fn rehash(&mut self) {
        self.hashes = self.slots.iter().map(|s| hash(&s.value)).collect();
    }

    /// Merges another sketch into this one.
    pub fn merge(&mut self, other: &TopK, capacity: usize) {
        for s in &other.slots {
            self.add(&s.value, s.count, capacity);
        }
        self.evictions += other.evictions;
    }

    /// The one value seen, when exactly one distinct value was ever recorded.
    pub fn single(&self) -> Option<&ValueCount> {
        match self.slots.as_slice() {
            [one] if self.evictions == 0 => Some(one),
            _ => None,
        }
    }

    /// The tracked values, most frequent first (ties by value).
    pub fn top(&self, k: usize) -> Vec<ValueCount> {
        let mut v = self.slots.clone();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        v.truncate(k);
        v
    }
}

fn hash(s: &str) -> u64 {
    let mut h = super::hash::Fx::default();
    h.bytes(s.as_bytes());
    h.finish()
}

impl PartialEq for TopK {
    fn eq(&self, other: &Self) -> bool {
        self.slots == other.slots && self.evictions == other.evictions
    }
}

impl Eq for TopK {}
