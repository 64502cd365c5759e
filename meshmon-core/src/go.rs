//! Go standard-library parsing rules, which the Datadog Agent (a Go program) applies to
//! its settings, annotations and environment variables. Reproducing them keeps a
//! configuration meaning the same thing under meshmon as under the Agent.

/// Go's [`strconv.ParseBool`](https://pkg.go.dev/strconv#ParseBool): `1`, `t`, `T`,
/// `TRUE`, `true`, `True` are true; `0`, `f`, `F`, `FALSE`, `false`, `False` are false;
/// anything else (including `yes`, `on` and surrounding spaces) is `None`.
///
/// ```
/// use meshmon_core::go::parse_bool;
/// assert_eq!(parse_bool("T"), Some(true));
/// assert_eq!(parse_bool("False"), Some(false));
/// assert_eq!(parse_bool("yes"), None);
/// assert_eq!(parse_bool(" true"), None);
/// ```
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bool;

    #[test]
    fn exactly_gos_spellings() {
        // The full list from Go's strconv/atob.go.
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for other in ["", "tRUE", "yes", "no", "on", "off", "2", "true ", "y"] {
            assert_eq!(parse_bool(other), None, "{other:?}");
        }
    }
}
