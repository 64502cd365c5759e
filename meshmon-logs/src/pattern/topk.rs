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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopK {
    slots: Vec<ValueCount>,
    /// Values that evicted another slot's value (so the counts became estimates).
    pub evictions: u64,
}

impl TopK {
    /// Records one occurrence of `value`, tracking at most `capacity` distinct values.
    /// Allocates only when a new value is inserted or replaces a shorter one.
    pub fn add(&mut self, value: &str, n: u64, capacity: usize) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.value == value) {
            s.count += n;
            return;
        }
        if self.slots.len() < capacity {
            self.slots.push(ValueCount {
                value: value.to_owned(),
                count: n,
            });
            return;
        }
        // Replace the minimum: the newcomer inherits its count (Space-Saving).
        if let Some(min) = self.slots.iter_mut().min_by_key(|s| s.count) {
            min.value.clear();
            min.value.push_str(value);
            min.count += n;
            self.evictions += 1;
        }
    }

    /// Merges another sketch into this one.
    pub fn merge(&mut self, other: &TopK, capacity: usize) {
        for s in &other.slots {
            self.add(&s.value, s.count, capacity);
        }
        self.evictions += other.evictions;
    }

    /// The tracked values, most frequent first (ties by value).
    pub fn top(&self, k: usize) -> Vec<ValueCount> {
        let mut v = self.slots.clone();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        v.truncate(k);
        v
    }
}
