//! Datadog-style tags: `key:value` or a bare `value`.
//!
//! A [`Tag`] is one tag in Datadog's text form; [`Tags`] is a set of them, kept sorted
//! and de-duplicated so two sets that mean the same compare equal and hash the same.
//! Both are cheap to clone (reference-counted strings).
//!
//! The key is everything before the first `:`; the rest, colons included, is the value
//! (`url:http://a:1` has key `url`). See Datadog's
//! [tagging guide](https://docs.datadoghq.com/getting_started/tagging/).
//!
//! ```
//! use meshmon_core::{Tag, Tags, parse_tag_list};
//!
//! let t: Tag = "url:http://a:1".parse()?;
//! assert_eq!((t.key(), t.value()), (Some("url"), "http://a:1"));
//!
//! // DD_TAGS-style lists: space or comma separated.
//! let tags = Tags::from_iter(parse_tag_list("env:prod team:mesh,canary")?);
//! assert_eq!(tags.to_string(), "canary,env:prod,team:mesh");
//! # Ok::<(), meshmon_core::TagError>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Why a tag could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// The tag text is empty (or only whitespace).
    #[error("empty tag")]
    Empty,
    /// The tag starts with `:`, so its key would be empty.
    #[error("tag {tag:?} has an empty key (it starts with ':')")]
    EmptyKey {
        /// The offending tag text.
        tag: String,
    },
    /// The tag contains a character tags cannot hold (whitespace, a comma or a control
    /// character, which would split or corrupt the text form).
    #[error("tag {tag:?} contains the invalid character {ch:?} at byte {at}")]
    InvalidChar {
        /// The offending tag text.
        tag: String,
        /// The character.
        ch: char,
        /// Its byte offset in the tag.
        at: usize,
    },
}

/// One tag, `key:value` or a bare `value`, in Datadog's text form.
///
/// Cloning is a reference-count increment. Ordering, equality and hashing follow the
/// text form, so sorted tags sort as Datadog prints them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    text: Arc<str>,
}

impl Tag {
    /// Builds `key:value`. The value may contain anything but a control character (label
    /// values from Prometheus may hold spaces and commas); the key may not be empty and
    /// may hold neither `:` nor separators.
    pub fn new(key: &str, value: &str) -> Result<Self, TagError> {
        let mut text = String::with_capacity(key.len() + 1 + value.len());
        text.push_str(key);
        text.push(':');
        text.push_str(value);
        if key.is_empty() {
            return Err(TagError::EmptyKey { tag: text });
        }
        if let Some((at, ch)) = key
            .char_indices()
            .find(|&(_, c)| c == ':' || is_separator(c) || c.is_control())
        {
            return Err(TagError::InvalidChar { tag: text, ch, at });
        }
        if let Some((at, ch)) = value.char_indices().find(|&(_, c)| c.is_control()) {
            let at = at + key.len() + 1;
            return Err(TagError::InvalidChar { tag: text, ch, at });
        }
        Ok(Self { text: text.into() })
    }

    /// Builds a bare tag (no key), such as `canary`.
    pub fn bare(value: &str) -> Result<Self, TagError> {
        value.parse()
    }

    /// The whole tag text, `key:value` or `value`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The key, or `None` for a bare tag.
    pub fn key(&self) -> Option<&str> {
        self.text.split_once(':').map(|(k, _)| k)
    }

    /// The value: what follows the first `:`, or the whole text for a bare tag.
    pub fn value(&self) -> &str {
        self.text.split_once(':').map_or(&self.text, |(_, v)| v)
    }
}

fn is_separator(c: char) -> bool {
    c == ',' || c.is_whitespace()
}

impl FromStr for Tag {
    type Err = TagError;

    /// Parses one tag in text form; surrounding whitespace is trimmed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(TagError::Empty);
        }
        if s.starts_with(':') {
            return Err(TagError::EmptyKey { tag: s.to_owned() });
        }
        if let Some((at, ch)) = s
            .char_indices()
            .find(|&(_, c)| is_separator(c) || c.is_control())
        {
            return Err(TagError::InvalidChar {
                tag: s.to_owned(),
                ch,
                at,
            });
        }
        Ok(Self { text: s.into() })
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

/// Parses a `DD_TAGS`-style list: tags separated by spaces and/or commas, empty items
/// skipped. The first invalid tag is an error.
///
/// ```
/// let tags = meshmon_core::parse_tag_list(" a:1,b:2  c ")?;
/// assert_eq!(tags.len(), 3);
/// assert!(meshmon_core::parse_tag_list(":bad").is_err());
/// # Ok::<(), meshmon_core::TagError>(())
/// ```
pub fn parse_tag_list(s: &str) -> Result<Vec<Tag>, TagError> {
    s.split(is_separator)
        .filter(|item| !item.is_empty())
        .map(str::parse)
        .collect()
}

/// A sorted, de-duplicated set of tags. Cloning is a reference-count increment.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tags {
    inner: Arc<Vec<Tag>>,
}

impl Tags {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct tags.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The tags, sorted.
    pub fn iter(&self) -> std::slice::Iter<'_, Tag> {
        self.inner.iter()
    }

    /// The tags as a sorted slice.
    pub fn as_slice(&self) -> &[Tag] {
        &self.inner
    }

    /// Whether the exact tag is present.
    pub fn contains(&self, tag: &Tag) -> bool {
        self.inner.binary_search(tag).is_ok()
    }

    /// The value of the first tag with this key (in sorted order), if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.inner
            .iter()
            .find(|t| t.key() == Some(key))
            .map(Tag::value)
    }

    /// Every value carried under this key, in sorted order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.inner
            .iter()
            .filter(move |t| t.key() == Some(key))
            .map(Tag::value)
    }

    /// Adds a tag, keeping the set sorted; returns whether it was new.
    pub fn insert(&mut self, tag: Tag) -> bool {
        match self.inner.binary_search(&tag) {
            Ok(_) => false,
            Err(at) => {
                Arc::make_mut(&mut self.inner).insert(at, tag);
                true
            }
        }
    }

    /// Removes every tag with this key; returns how many were removed.
    pub fn remove_key(&mut self, key: &str) -> usize {
        let before = self.inner.len();
        if self.inner.iter().any(|t| t.key() == Some(key)) {
            Arc::make_mut(&mut self.inner).retain(|t| t.key() != Some(key));
        }
        before - self.inner.len()
    }

    /// The union of two sets.
    pub fn union(&self, other: &Tags) -> Tags {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        self.iter().chain(other.iter()).cloned().collect()
    }
}

impl FromIterator<Tag> for Tags {
    fn from_iter<I: IntoIterator<Item = Tag>>(iter: I) -> Self {
        let mut v: Vec<Tag> = iter.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        Self { inner: Arc::new(v) }
    }
}

impl Extend<Tag> for Tags {
    fn extend<I: IntoIterator<Item = Tag>>(&mut self, iter: I) {
        let v = Arc::make_mut(&mut self.inner);
        v.extend(iter);
        v.sort_unstable();
        v.dedup();
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = &'a Tag;
    type IntoIter = std::slice::Iter<'a, Tag>;
    fn into_iter(self) -> Self::IntoIter {
        self.inner.iter()
    }
}

impl FromStr for Tags {
    type Err = TagError;

    /// Parses a `DD_TAGS`-style list (see [`parse_tag_list`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(parse_tag_list(s)?.into_iter().collect())
    }
}

impl fmt::Display for Tags {
    /// Comma-separated, sorted: `env:prod,service:reviews`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.inner.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(t.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.inner.iter()).finish()
    }
}

#[cfg(feature = "serde")]
mod serde_impls {
    use super::{Tag, Tags};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    impl Serialize for Tag {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(self.as_str())
        }
    }

    impl<'de> Deserialize<'de> for Tag {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        }
    }

    impl Serialize for Tags {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.iter())
        }
    }

    impl<'de> Deserialize<'de> for Tags {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Vec::<Tag>::deserialize(d)?.into_iter().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_before_first_colon() {
        let t: Tag = "a:b:c".parse().unwrap();
        assert_eq!(t.key(), Some("a"));
        assert_eq!(t.value(), "b:c");
        let bare: Tag = "canary".parse().unwrap();
        assert_eq!(bare.key(), None);
        assert_eq!(bare.value(), "canary");
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert_eq!("  ".parse::<Tag>(), Err(TagError::Empty));
        assert!(matches!(
            ":v".parse::<Tag>(),
            Err(TagError::EmptyKey { .. })
        ));
        assert_eq!(
            Tag::new("k", "a\u{1}"),
            Err(TagError::InvalidChar {
                tag: "k:a\u{1}".into(),
                ch: '\u{1}',
                at: 3
            })
        );
        assert!(matches!(
            Tag::new("a b", "v"),
            Err(TagError::InvalidChar { at: 1, .. })
        ));
        assert!(matches!(Tag::new("", "v"), Err(TagError::EmptyKey { .. })));
        assert!(matches!(
            Tag::new("k:x", "v"),
            Err(TagError::InvalidChar { ch: ':', .. })
        ));
        // values from Prometheus labels may hold spaces and commas
        assert_eq!(Tag::new("path", "/a b,c").unwrap().value(), "/a b,c");
    }

    #[test]
    fn tags_sorted_and_deduplicated() {
        let tags: Tags = "b:2 a:1,b:2,,c  a:0".parse().unwrap();
        assert_eq!(tags.to_string(), "a:0,a:1,b:2,c");
        assert_eq!(tags.len(), 4);
        assert_eq!(tags.get("a"), Some("0"));
        assert_eq!(tags.get_all("a").collect::<Vec<_>>(), ["0", "1"]);
        assert_eq!(tags.get("zzz"), None);
    }

    #[test]
    fn insert_remove_union() {
        let mut tags = Tags::new();
        assert!(tags.insert("z:1".parse().unwrap()));
        assert!(tags.insert("a:1".parse().unwrap()));
        assert!(!tags.insert("a:1".parse().unwrap()));
        let shared = tags.clone();
        assert_eq!(tags.remove_key("a"), 1);
        assert_eq!(tags.to_string(), "z:1");
        // the clone is unaffected (copy on write)
        assert_eq!(shared.to_string(), "a:1,z:1");
        let u = tags.union(&"b c z:1".parse().unwrap());
        assert_eq!(u.to_string(), "b,c,z:1");
        assert!(u.contains(&"c".parse().unwrap()));
    }

    #[test]
    fn equal_sets_are_equal_whatever_the_order() {
        let a: Tags = "x y z".parse().unwrap();
        let b: Tags = "z,y,x,x".parse().unwrap();
        assert_eq!(a, b);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_as_strings() {
        let tags: Tags = "b a:1".parse().unwrap();
        let json = serde_json::to_string(&tags).unwrap();
        assert_eq!(json, r#"["a:1","b"]"#);
        let back: Tags = serde_json::from_str(r#"["b","a:1","b"]"#).unwrap();
        assert_eq!(back, tags);
        assert!(serde_json::from_str::<Tags>(r#"[":x"]"#).is_err());
    }
}
