//! The shared vocabulary of the meshmon crates.
//!
//! ```
//! use meshmon_core::{Metric, MetricValue, Tags, Timestamp};
//!
//! // Datadog's tag text form, sorted and de-duplicated.
//! let tags: Tags = "service:reviews, env:prod env:prod".parse()?;
//! assert_eq!(tags.to_string(), "env:prod,service:reviews");
//!
//! let m = Metric::new(
//!     "istio.mesh.request.count",
//!     MetricValue::MonotonicCount(42.0),
//!     tags,
//!     Timestamp::from_secs(1_700_000_000),
//! );
//! assert_eq!(m.tags.get("service"), Some("reviews"));
//! assert_eq!(m.value.type_name(), "monotonic_count");
//! # Ok::<(), meshmon_core::TagError>(())
//! ```
//!
//! # Contents
//!
//! - [`tags`]: [`Tag`] and [`Tags`], Datadog's `key:value` tags.
//! - [`metric`]: [`Metric`] and [`MetricValue`], what every producer emits.
//! - [`text`]: [`text::truncate_utf8`], cutting strings on character boundaries.
//! - [`time`]: [`Timestamp`], nanoseconds since the Unix epoch, and the one calendar-checked
//!   RFC 3339 / ISO 8601 date-time parser ([`time::parse_rfc3339`],
//!   [`time::parse_datetime`]) every meshmon crate uses.
//! - [`go`]: Go's parsing rules the Datadog Agent applies to settings
//!   ([`go::parse_bool`]).
//! - [`pipeline`]: [`Notification`] and [`SinkError`]; with the `pipeline` feature, the
//!   object-safe async traits the agent plugs implementations into: `MetricSink`,
//!   `Notifier` and (with `autodiscovery`) `ConfigProvider`.
//! - `dogstatsd` (feature `dogstatsd`): the DogStatsD datagram codec (metrics, events,
//!   service checks, protocol v1.1–v1.3; borrowed views, no allocation per metric) and
//!   `dogstatsd::aggregate`, the Agent's DogStatsD aggregation (counts summed, gauges last,
//!   sets distinct, histograms to `max`/`median`/`avg`/`count`/`95percentile`).
//! - `autodiscovery` (feature `autodiscovery`, on by default): Datadog's Kubernetes
//!   annotation templates expanded into one check configuration per endpoint, as the
//!   Datadog Cluster Agent's endpoints checks do: `autodiscovery::kube` (Service,
//!   Endpoints, EndpointSlice, Pod, `List`; JSON and multi-document YAML),
//!   `autodiscovery::annotations` (v2 / v1 / legacy formats), `autodiscovery::template`
//!   (`%%host%%`, `%%port_<name>%%`, `%%env_<VAR>%%`, … and the fixed set of error
//!   kinds), `autodiscovery::filter` (`DD_CONTAINER_EXCLUDE` rules) and
//!   `autodiscovery::expand` (`expand()` → `CheckConfig`s).
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `autodiscovery` | yes | the `autodiscovery` module (serde, serde_json, YAML, regex) |
//! | `dogstatsd` | no | the `dogstatsd` module (no extra dependencies) |
//! | `pipeline` | yes | the `MetricSink`, `Notifier`, `ConfigProvider` traits (async-trait) |
//! | `serde` | with `autodiscovery` | `Serialize`/`Deserialize` for the vocabulary types |
//! | `test-util` | no | `test_util::CountingAllocator`, to prove hot paths do not allocate |

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod go;
pub mod metric;
pub mod pipeline;
pub mod tags;
pub mod text;
pub mod time;

#[cfg(feature = "autodiscovery")]
pub mod autodiscovery;

#[cfg(feature = "dogstatsd")]
pub mod dogstatsd;

#[cfg(feature = "test-util")]
pub mod test_util;

pub use metric::{Metric, MetricValue};
#[cfg(all(feature = "pipeline", feature = "autodiscovery"))]
pub use pipeline::ConfigProvider;
pub use pipeline::{AlertType, Notification, SinkError};
#[cfg(feature = "pipeline")]
pub use pipeline::{MetricSink, Notifier};
pub use tags::{Tag, TagError, Tags, parse_tag_list};
pub use time::Timestamp;
