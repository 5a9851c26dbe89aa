//! Flow ids held compactly. A run remembers every flow id it has seen (to list each flow once, to
//! compare with divisionviews, to keep its rows): at 50,000 flows, ids as `String`s cost megabytes
//! each time. Genesys ids are UUIDs, so those are kept as 16 bytes; anything else as text.

use std::collections::HashSet;

/// A flow id: a canonical (lowercase) UUID as 16 bytes, anything else as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FlowId {
    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex, big-endian.
    Uuid([u8; 16]),
    /// Any other id, as given.
    Text(Box<str>),
}

impl FlowId {
    /// The id `id`, compact when it is a lowercase UUID.
    pub fn new(id: &str) -> FlowId {
        parse_uuid(id).map_or_else(|| FlowId::Text(id.into()), FlowId::Uuid)
    }
}

impl std::fmt::Display for FlowId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlowId::Text(t) => f.write_str(t),
            FlowId::Uuid(b) => {
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl Ord for FlowId {
    /// The order of the ids as text (big-endian lowercase hex sorts like its text).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (FlowId::Uuid(a), FlowId::Uuid(b)) => a.cmp(b),
            (FlowId::Text(a), FlowId::Text(b)) => a.cmp(b),
            _ => self.to_string().cmp(&other.to_string()),
        }
    }
}

impl PartialOrd for FlowId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

fn parse_uuid(id: &str) -> Option<[u8; 16]> {
    let b = id.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|i| b[*i] != b'-') {
        return None;
    }
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut digits = b.iter().filter(|c| **c != b'-');
    let mut out = [0u8; 16];
    for byte in &mut out {
        *byte = hex(*digits.next()?)? << 4 | hex(*digits.next()?)?;
    }
    Some(out)
}

/// A set of flow ids.
#[derive(Debug, Default)]
pub struct IdSet(HashSet<FlowId>);

impl IdSet {
    /// An empty set.
    pub fn new() -> IdSet {
        IdSet::default()
    }

    /// Adds `id`; false if it was there.
    pub fn insert(&mut self, id: &str) -> bool {
        self.0.insert(FlowId::new(id))
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(&FlowId::new(id))
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &FlowId> {
        self.0.iter()
    }
}

impl FromIterator<FlowId> for IdSet {
    fn from_iter<T: IntoIterator<Item = FlowId>>(iter: T) -> Self {
        IdSet(iter.into_iter().collect())
    }
}

impl<'a> FromIterator<&'a str> for IdSet {
    fn from_iter<T: IntoIterator<Item = &'a str>>(iter: T) -> Self {
        IdSet(iter.into_iter().map(FlowId::new).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_compact_and_read_back_as_given_other_ids_stay_text() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert!(matches!(FlowId::new(uuid), FlowId::Uuid(_)));
        assert_eq!(FlowId::new(uuid).to_string(), uuid);
        for other in [
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "flow-1",
            "",
            "0f8fad5b-d9cb-469f-a165-70867728950",
        ] {
            assert_eq!(FlowId::new(other), FlowId::Text(other.into()), "{other}");
        }
        let mut set = IdSet::new();
        assert!(set.insert(uuid) && set.insert("flow-1") && !set.insert(uuid));
        assert!(set.contains(uuid) && !set.contains("0F8FAD5B-D9CB-469F-A165-70867728950E"));
    }

    #[test]
    fn ids_sort_as_their_text() {
        let ids = [
            "ffffffff-0000-4000-8000-000000000000",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "a-text",
            "10000000-0000-4000-8000-000000000000",
        ];
        let mut compact: Vec<FlowId> = ids.iter().map(|i| FlowId::new(i)).collect();
        compact.sort();
        let mut text = ids.to_vec();
        text.sort();
        assert_eq!(compact.iter().map(|i| i.to_string()).collect::<Vec<_>>(), text);
    }
}
