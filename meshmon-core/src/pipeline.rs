//! What flows between the agent's components, and (feature `pipeline`) the
//! object-safe async traits the agent plugs implementations into.
//!
//! Libraries produce values ([`Metric`]s, [`Notification`]s, check configurations);
//! the agent decides where they go by handing `Box<dyn Trait>`s around: the shape of
//! saluki's destinations (`MetricSink`, `Notifier`) and sources (`ConfigProvider`).
//! Tests plug in recorders. The traits use `async_trait` so they stay object safe
//! (`async fn` in a trait is not `dyn`-compatible); without the `pipeline` feature
//! only the plain data types below are compiled and `async-trait` is not a dependency.

use std::sync::Arc;

#[cfg(feature = "pipeline")]
use async_trait::async_trait;

#[cfg(feature = "pipeline")]
use crate::Metric;
use crate::{Tags, Timestamp};

/// Why a sink or notifier could not take what it was given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The destination is full or rate-limited; the caller may retry later.
    #[error("{sink}: backpressure, {dropped} item(s) not accepted")]
    Backpressure {
        /// Name of the sink.
        sink: String,
        /// How many items were refused.
        dropped: usize,
    },
    /// The destination is closed (shut down, disconnected).
    #[error("{sink}: closed")]
    Closed {
        /// Name of the sink.
        sink: String,
    },
    /// An I/O or transport failure.
    #[error("{sink}: {source}")]
    Io {
        /// Name of the sink.
        sink: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Where metrics go: a file, an HTTP endpoint, an in-memory store, a test recorder.
///
/// ```
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use meshmon_core::{Metric, MetricSink, MetricValue, SinkError, Tags, Timestamp};
///
/// #[derive(Default)]
/// struct Recorder(Mutex<Vec<Metric>>);
///
/// #[async_trait]
/// impl MetricSink for Recorder {
///     fn name(&self) -> &str { "recorder" }
///     async fn send(&self, batch: Vec<Metric>) -> Result<(), SinkError> {
///         self.0.lock().map_err(|_| SinkError::Closed { sink: "recorder".into() })?.extend(batch);
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sink: Box<dyn MetricSink> = Box::new(Recorder::default());
/// let m = Metric::new("up", MetricValue::Gauge(1.0), Tags::new(), Timestamp::EPOCH);
/// sink.send(vec![m.clone()]).await?;
/// sink.flush().await?;
/// # Ok::<(), SinkError>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "pipeline")]
#[async_trait]
pub trait MetricSink: Send + Sync {
    /// A short name for logs and errors.
    fn name(&self) -> &str;

    /// Accepts a batch. An error means none of the batch was taken unless the error says
    /// otherwise.
    async fn send(&self, batch: Vec<Metric>) -> Result<(), SinkError>;

    /// Pushes out anything buffered. The default does nothing.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Severity of a [`Notification`], as Datadog events name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum AlertType {
    /// Something is broken.
    Error,
    /// Something is about to break.
    Warning,
    /// Informational.
    Info,
    /// Something recovered.
    Success,
}

/// A message for people: an alert, a recovery, a Watchdog story. Shaped like a Datadog
/// [event](https://docs.datadoghq.com/api/latest/events/).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Notification {
    /// One-line summary.
    pub title: String,
    /// Details (Markdown allowed).
    pub text: String,
    /// Severity.
    pub alert_type: AlertType,
    /// Notifications with the same key describe the same episode (for grouping and
    /// de-duplication downstream).
    pub aggregation_key: Option<String>,
    /// What produced it, e.g. `meshmon-alert`.
    pub source: Arc<str>,
    /// Tags of the affected scope (`service:reviews`, …).
    pub tags: Tags,
    /// When the underlying condition was observed.
    pub timestamp: Timestamp,
}

/// Where notifications go: a log, a webhook, a pager, a test recorder.
///
/// ```
/// use std::sync::Mutex;
/// use async_trait::async_trait;
/// use meshmon_core::{AlertType, Notification, Notifier, SinkError, Tags, Timestamp};
///
/// #[derive(Default)]
/// struct Titles(Mutex<Vec<String>>);
///
/// #[async_trait]
/// impl Notifier for Titles {
///     fn name(&self) -> &str { "titles" }
///     async fn notify(&self, n: &Notification) -> Result<(), SinkError> {
///         self.0.lock().map_err(|_| SinkError::Closed { sink: "titles".into() })?.push(n.title.clone());
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let titles = Titles::default();
/// let n = Notification {
///     title: "[ALERT] reviews error rate".into(),
///     text: String::new(),
///     alert_type: AlertType::Error,
///     aggregation_key: Some("monitor:1".into()),
///     source: "meshmon-alert".into(),
///     tags: "service:reviews".parse().unwrap(),
///     timestamp: Timestamp::from_secs(60),
/// };
/// let notifier: &dyn Notifier = &titles;
/// notifier.notify(&n).await?;
/// assert_eq!(titles.0.lock().unwrap().as_slice(), ["[ALERT] reviews error rate"]);
/// # Ok::<(), SinkError>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "pipeline")]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// A short name for logs and errors.
    fn name(&self) -> &str;

    /// Delivers one notification.
    async fn notify(&self, notification: &Notification) -> Result<(), SinkError>;
}

#[cfg(all(feature = "pipeline", feature = "autodiscovery"))]
pub use provider::ConfigProvider;

#[cfg(all(feature = "pipeline", feature = "autodiscovery"))]
mod provider {
    use async_trait::async_trait;

    use crate::autodiscovery::{CheckConfig, ProviderError};

    /// Where check configurations come from: manifest files, the Kubernetes API, a
    /// static list.
    ///
    /// ```
    /// use async_trait::async_trait;
    /// use meshmon_core::ConfigProvider;
    /// use meshmon_core::autodiscovery::{CheckConfig, ProviderError};
    ///
    /// struct Static(Vec<CheckConfig>);
    ///
    /// #[async_trait]
    /// impl ConfigProvider for Static {
    ///     fn name(&self) -> &str { "static" }
    ///     async fn collect(&self) -> Result<Vec<CheckConfig>, ProviderError> {
    ///         Ok(self.0.clone())
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let p: Box<dyn ConfigProvider> = Box::new(Static(vec![]));
    /// assert!(p.collect().await?.is_empty());
    /// # Ok::<(), ProviderError>(())
    /// # }).unwrap();
    /// ```
    #[async_trait]
    pub trait ConfigProvider: Send + Sync {
        /// A short name for logs and errors.
        fn name(&self) -> &str;

        /// The full current set of configurations (the caller diffs successive sets).
        async fn collect(&self) -> Result<Vec<CheckConfig>, ProviderError>;
    }
}
