//! Small string helpers every crate needs the same way.
//!
//! ```
//! use meshmon_core::text::truncate_utf8;
//! assert_eq!(truncate_utf8("héllo", 2), "h"); // never splits the two-byte 'é'
//! assert_eq!(truncate_utf8("abc", 10), "abc");
//! ```

/// Cuts `s` to at most `max` bytes on a character boundary (never splits a character).
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate_utf8;

    #[test]
    fn cuts_on_character_boundaries() {
        let s = "a€b"; // '€' is 3 bytes: 1..4
        assert_eq!(truncate_utf8(s, 0), "");
        assert_eq!(truncate_utf8(s, 1), "a");
        for max in 2..4 {
            assert_eq!(truncate_utf8(s, max), "a", "max {max}");
        }
        assert_eq!(truncate_utf8(s, 4), "a€");
        assert_eq!(truncate_utf8(s, 5), s);
        for max in 0..=s.len() + 1 {
            let t = truncate_utf8(s, max);
            assert!(t.len() <= max && s.starts_with(t));
        }
    }
}
