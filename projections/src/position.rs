//! Where things are in the log: a partition of a topic ([`TopicPartition`]) and a place in one
//! ([`Position`]). The fold itself never looks at them; the state cache ([`crate::cache`]) and
//! the projection workers key what they know by them.

use std::fmt;

/// A partition of the log. Ordered by topic, then partition number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The place `offset` in this partition.
    pub fn at(self, offset: i64) -> Position {
        Position {
            topic: self.topic,
            partition: self.partition,
            offset,
        }
    }
}

/// `topic/partition`.
impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A place in a partition: a message's offset, or (for a checkpoint) the next offset to read.
/// Ordered by topic, partition, then offset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl Position {
    /// The partition this place is in.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

/// `topic/partition@offset`.
impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}
