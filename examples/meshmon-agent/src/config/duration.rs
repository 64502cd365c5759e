//! [`Dur`]: a duration written as the Datadog Agent and Prometheus write them in YAML
//! (`15s`, `500ms`, `1m`, `2h`, `1m30s`) or as a number of seconds (`15`, `0.5`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configured duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// Whole seconds.
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }

    /// Parses `15s`, `500ms`, `1m30s`, `2h`, `1d` or a plain number of seconds.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty duration".into());
        }
        if let Ok(secs) = t.parse::<f64>() {
            return Duration::try_from_secs_f64(secs)
                .map(Dur)
                .map_err(|e| format!("{t:?}: {e}"));
        }
        let mut total = Duration::ZERO;
        let mut rest = t;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| format!("{t:?}: a number needs a unit (ms, s, m, h, d)"))?;
            if num_end == 0 {
                return Err(format!("{t:?}: expected a number at {rest:?}"));
            }
            let n: f64 = rest[..num_end]
                .parse()
                .map_err(|_| format!("{t:?}: bad number {:?}", &rest[..num_end]))?;
            rest = &rest[num_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_end] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86_400.0,
                u => return Err(format!("{t:?}: unknown unit {u:?} (ms, s, m, h, d)")),
            };
            rest = &rest[unit_end..];
            total += Duration::try_from_secs_f64(n * scale).map_err(|e| format!("{t:?}: {e}"))?;
        }
        Ok(Dur(total))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            let s = d.as_secs();
            if s != 0 && s.is_multiple_of(3600) {
                write!(f, "{}h", s / 3600)
            } else if s != 0 && s.is_multiple_of(60) {
                write!(f, "{}m", s / 60)
            } else {
                write!(f, "{s}s")
            }
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}ns", d.as_nanos())
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 15s, 500ms, 1m or a number of seconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur(Duration::from_secs(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(|v| Dur(Duration::from_secs(v)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                Duration::try_from_secs_f64(v).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_numbers() {
        assert_eq!(Dur::parse("15s"), Ok(Dur::secs(15)));
        assert_eq!(Dur::parse("1m30s"), Ok(Dur::secs(90)));
        assert_eq!(Dur::parse("500ms"), Ok(Dur(Duration::from_millis(500))));
        assert_eq!(Dur::parse("0.25"), Ok(Dur(Duration::from_millis(250))));
        assert_eq!(Dur::parse("2h"), Ok(Dur::secs(7200)));
        assert!(Dur::parse("10 parsecs").is_err());
        assert!(Dur::parse("-1s").is_err());
        assert!(Dur::parse("s").is_err());
        assert!(Dur::parse("").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["15s", "1m", "2h", "500ms", "90s", "0s"] {
            let d = Dur::parse(s).unwrap();
            assert_eq!(Dur::parse(&d.to_string()).unwrap(), d, "{s}");
        }
        assert_eq!(Dur::secs(90).to_string(), "90s");
        assert_eq!(Dur::secs(120).to_string(), "2m");
    }
}
