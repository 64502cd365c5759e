//! meshmon-prom: a zero-copy Prometheus text / OpenMetrics parser and the Datadog
//! OpenMetrics check's mapping of what it parses into tagged metrics.
//!
//! ```
//! use meshmon_prom::{Format, Parser};
//!
//! let body = b"# TYPE istio_requests_total counter\n\
//! istio_requests_total{response_code=\"200\",destination_app=\"reviews\"} 42\n";
//! let mut parser = Parser::new(body, Format::PrometheusText);
//! let family = parser.next_family().unwrap()?;
//! assert_eq!(family.name, "istio_requests_total");
//! let sample = &family.samples[0];
//! assert_eq!(sample.value, 42.0);
//! assert_eq!(sample.labels.get("destination_app").unwrap().raw(), "reviews");
//! # Ok::<(), meshmon_prom::ParseError>(())
//! ```
//!
//! # Contents
//!
//! - [`Parser`]: streams [`Family`] views (name, type, help, unit, [`Sample`]s) over the
//!   input, one family at a time, allocating nothing per sample; [`count`] validates and
//!   counts; [`parse`] returns [`OwnedFamily`]s that outlive the buffer.
//! - [`Format`]: Prometheus text 0.0.4 or OpenMetrics 1.0, chosen explicitly, from a
//!   `Content-Type` ([`Format::from_content_type`]) or from the body
//!   ([`Format::sniff`]).
//! - [`ParseError`]: `line:column`, the offending text and what was expected.
//! - [`mapping`]: Datadog's OpenMetrics v2 check semantics: [`MappingConfig`] (with the
//!   v1 option names as aliases and the Istio presets), [`Mapper`] turning families
//!   into [`meshmon_core::Metric`]s, [`MonotonicDeltas`] turning monotonic counts into
//!   deltas across scrapes with bounded, expiring state.
//! - [`float`]: the fast exact number parser and Python's float formatting used for
//!   `upper_bound:`/`lower_bound:`/`quantile:` tags.
//! - `check` (feature `check`): Datadog `istio` / `openmetrics` / `prometheus` check
//!   instances turned into scrape jobs (`check::jobs_from_instance`).
//! - `scrape` (feature `scrape`): async HTTP GET with content negotiation, gzip,
//!   timeout, body limit and bearer token.
//!
//! # Specifications
//!
//! - Prometheus text format 0.0.4:
//!   <https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format>
//! - OpenMetrics 1.0:
//!   <https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md>
//! - Datadog OpenMetrics v2 check (`datadog_checks.base.checks.openmetrics.v2`):
//!   <https://docs.datadoghq.com/integrations/openmetrics/>

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "check")]
pub mod check;
mod error;
pub mod float;
mod grammar;
pub mod mapping;
mod owned;
mod parser;
mod sample;
#[cfg(feature = "scrape")]
pub mod scrape;

pub use error::{ErrorKind, ParseError};
pub use grammar::Line;
#[allow(deprecated)]
pub use mapping::ScraperConfig;
pub use mapping::{CacheStats, LimitsError, MapStats, Mapper, MappingConfig, MonotonicDeltas};
pub use owned::{OwnedExemplar, OwnedFamily, OwnedSample, parse};
pub use parser::{Family, ParseOptions, Parser, count, count_with};
pub use sample::{Exemplar, Format, Label, LabelIter, LabelValue, Labels, MetricType, Sample};
