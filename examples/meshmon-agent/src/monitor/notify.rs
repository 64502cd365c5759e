//! Notifiers: the agent's log, webhooks and Prometheus Alertmanager (API v2).
//!
//! The evaluation task hands each notification to every notifier with
//! [`Notifiers::dispatch`], which never waits: the log line is written at once, the HTTP
//! notifiers each have a bounded queue (`queue`), and a notification that finds its queue
//! full is dropped and counted (`meshmon_notifications_total{outcome="dropped"}`).
//!
//! **Webhook** (`notifiers.webhooks[]`): one `POST` per notification, `Content-Type:
//! application/json`, the body of [`webhook_body`]:
//!
//! ```json
//! {"version": 1, "title": "[ALERT] checkout errors", "id": "checkout-errors",
//!  "name": "checkout errors", "type": "metric", "query": "avg(last_5m):sum:…",
//!  "service": null, "signal": null, "state": "ALERT", "previous": "WARN",
//!  "at": "2026-12-01T22:00:00.000Z", "since": "2026-12-01T22:00:00.000Z",
//!  "value": 12.5, "band": null, "threshold": 10.0, "reason": "avg(last_5m) = 12.5 above critical 10",
//!  "renotification": false, "labels": {}, "host": "node-1",
//!  "url": "http://127.0.0.1:5002/api/v1/monitors"}
//! ```
//!
//! A 2xx answer is a success; a 5xx or 429 answer, a timeout (`timeout`) or a connection
//! error is retried up to `retries` times after `backoff`, doubled each time; another
//! answer (4xx) fails at once. Failures are counted (`outcome="failed"`), never retried
//! forever.
//!
//! **Alertmanager** (`notifiers.alertmanagers[]`): `POST <url>/api/v2/alerts` with a list
//! of alerts (`labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`, as
//! [Alertmanager's OpenAPI spec] defines them). A monitor entering WARN, ALERT or NO DATA
//! fires an alert labelled `alertname` (the monitor's name), `monitor_id`,
//! `monitor_type`, `severity` (`warning`, `critical`, `no_data`), `service` and `signal`
//! when it has them, `host`, plus the configured labels; as Prometheus does, every active
//! alert is sent again every `resend_interval` with `endsAt` four resend intervals ahead,
//! so Alertmanager keeps it while the agent lives and resolves it by itself if the agent
//! goes away. On recovery (or a change of severity, which is another label set) the alert
//! is sent once more with `endsAt` = now: resolved.
//!
//! [Alertmanager's OpenAPI spec]: https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use meshmon_alert::MonitorState;
use meshmon_core::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::{AlertmanagerConfig, WebhookConfig};
use super::eval::Event;
use crate::run::{Ctx, fmt_time};

/// Counters of one notifier.
#[derive(Debug, Default)]
pub struct Counters {
    /// Delivered.
    pub sent: AtomicU64,
    /// Given up on (after retries, or a 4xx answer).
    pub failed: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Retries.
    pub retries: AtomicU64,
}

/// The counters of one notifier, read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CounterView {
    /// `log`, `webhook[0]`, `alertmanager[0]`.
    pub name: String,
    /// Target URL (empty for the log).
    pub url: String,
    /// Delivered.
    pub sent: u64,
    /// Failed.
    pub failed: u64,
    /// Dropped (queue full).
    pub dropped: u64,
    /// Retries.
    pub retries: u64,
}

struct Sink {
    name: String,
    url: String,
    tx: Option<mpsc::Sender<Event>>,
    counters: Arc<Counters>,
}

/// Every configured notifier.
pub struct Notifiers {
    log: Option<Arc<Counters>>,
    sinks: Vec<Sink>,
    handles: Vec<JoinHandle<()>>,
}

fn title(e: &Event) -> String {
    let re = if e.renotification { "[Re-notify] " } else { "" };
    format!("{re}[{}] {}", e.state.as_str(), e.name)
}

fn api_url(ctx: &Ctx, e: &Event) -> String {
    let page = if e.kind == "watchdog" {
        "watchdog"
    } else {
        "monitors"
    };
    format!("http://{}/api/v1/{page}", ctx.cfg.api.listen)
}

/// The webhook's JSON body for `e` (module docs).
pub fn webhook_body(ctx: &Ctx, e: &Event) -> Value {
    json!({
        "version": 1,
        "title": title(e),
        "id": e.id,
        "name": e.name,
        "type": e.kind,
        "query": e.query,
        "service": e.service,
        "signal": e.signal,
        "state": e.state.as_str(),
        "previous": e.previous.as_str(),
        "at": fmt_time(e.at),
        "since": fmt_time(e.since),
        "value": e.value.filter(|v| v.is_finite()),
        "band": e.band.filter(|(l, u)| l.is_finite() && u.is_finite())
            .map(|(lower, upper)| json!({"lower": lower, "upper": upper})),
        "threshold": e.threshold.filter(|v| v.is_finite()),
        "reason": e.reason,
        "renotification": e.renotification,
        "labels": e.labels,
        "host": ctx.hostname,
        "url": api_url(ctx, e),
    })
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>()
}

/// One POST: the status, or why there was none.
async fn post(
    client: &Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Bytes,
    timeout: Duration,
) -> Result<u16, String> {
    let mut req = hyper::Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        // Read (and drop) the answer so the connection can be reused.
        let _ = resp.into_body().collect().await;
        Ok::<u16, String>(status)
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// POST with retries on 5xx / 429 / timeouts / connection errors; true when delivered.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    ctx: &Ctx,
    name: &str,
    client: &Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Bytes,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    c: &Counters,
) -> bool {
    let mut delay = backoff;
    for attempt in 0..=retries {
        let last = attempt == retries;
        match post(client, url, headers, body.clone(), timeout).await {
            Ok(s) if (200..300).contains(&s) => {
                c.sent.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Ok(s) if s >= 500 || s == 429 => {
                if last {
                    ctx.log(
                        "WARN",
                        "monitors",
                        &format!("{name}: POST {url}: HTTP {s}, giving up after {retries} retries"),
                    );
                }
            }
            Ok(s) => {
                ctx.log(
                    "WARN",
                    "monitors",
                    &format!("{name}: POST {url}: HTTP {s}, not retried"),
                );
                c.failed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Err(e) => {
                if last {
                    ctx.log(
                        "WARN",
                        "monitors",
                        &format!("{name}: POST {url}: {e}, giving up after {retries} retries"),
                    );
                }
            }
        }
        if !last {
            c.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }
    c.failed.fetch_add(1, Ordering::Relaxed);
    false
}

async fn webhook_task(
    ctx: Ctx,
    name: String,
    cfg: WebhookConfig,
    mut rx: mpsc::Receiver<Event>,
    c: Arc<Counters>,
) {
    let client = client();
    while let Some(e) = rx.recv().await {
        let body = Bytes::from(webhook_body(&ctx, &e).to_string());
        deliver(
            &ctx,
            &name,
            &client,
            &cfg.url,
            &cfg.headers,
            body,
            cfg.timeout.0,
            cfg.retries,
            cfg.backoff.0,
            &c,
        )
        .await;
    }
}

/// One alert as Alertmanager's API v2 takes it (`postableAlert`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PostableAlert {
    /// Identity of the alert.
    pub labels: BTreeMap<String, String>,
    /// Information.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// When it ends (ahead of now while firing; now when resolved).
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    /// Where it comes from.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

struct Active {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: Timestamp,
    generator_url: String,
}

impl Active {
    fn postable(&self, ends: Timestamp) -> PostableAlert {
        PostableAlert {
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            starts_at: fmt_time(self.starts_at),
            ends_at: fmt_time(ends),
            generator_url: self.generator_url.clone(),
        }
    }
}

/// The Alertmanager labels of a notification.
pub fn alert_labels(ctx: &Ctx, cfg: &AlertmanagerConfig, e: &Event) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("alertname".to_owned(), e.name.clone());
    l.insert("monitor_id".to_owned(), e.id.clone());
    l.insert("monitor_type".to_owned(), e.kind.to_owned());
    let severity = match e.state {
        MonitorState::Alert => "critical",
        MonitorState::Warn => "warning",
        _ => "no_data",
    };
    l.insert("severity".to_owned(), severity.to_owned());
    if let Some(s) = &e.service {
        l.insert("service".to_owned(), s.clone());
    }
    if let Some(s) = e.signal {
        l.insert("signal".to_owned(), s.to_owned());
    }
    l.insert("host".to_owned(), ctx.hostname.clone());
    for (k, v) in cfg.labels.iter().chain(e.labels.iter()) {
        l.insert(k.clone(), v.clone());
    }
    l
}

async fn alertmanager_task(
    ctx: Ctx,
    name: String,
    cfg: AlertmanagerConfig,
    mut rx: mpsc::Receiver<Event>,
    c: Arc<Counters>,
) {
    let client = client();
    let url = format!("{}/api/v2/alerts", cfg.url.trim_end_matches('/'));
    let no_headers = BTreeMap::new();
    let mut active: BTreeMap<String, Active> = BTreeMap::new();
    let resend = cfg.resend_interval.0;
    let mut tick = tokio::time::interval(resend);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let mut batch: Vec<PostableAlert> = Vec::new();
        let now;
        tokio::select! {
            e = rx.recv() => {
                let Some(e) = e else { break };
                now = ctx.clock.now();
                let firing = matches!(e.state, MonitorState::Alert | MonitorState::Warn | MonitorState::NoData);
                let labels = alert_labels(&ctx, &cfg, &e);
                // A recovery, or another label set (severity changed): resolve the old one.
                if let Some(old) = active.get(&e.id)
                    && (!firing || old.labels != labels)
                {
                    batch.push(old.postable(now));
                    active.remove(&e.id);
                }
                if firing {
                    let mut annotations = BTreeMap::new();
                    annotations.insert("summary".to_owned(), title(&e));
                    annotations.insert("description".to_owned(), e.reason.clone());
                    annotations.insert("query".to_owned(), e.query.clone());
                    if let Some(v) = e.value.filter(|v| v.is_finite()) {
                        annotations.insert("value".to_owned(), v.to_string());
                    }
                    if let Some((lo, hi)) = e.band {
                        annotations.insert("band".to_owned(), format!("{lo} .. {hi}"));
                    }
                    let a = active.entry(e.id.clone()).or_insert(Active {
                        labels,
                        annotations: BTreeMap::new(),
                        starts_at: e.since,
                        generator_url: api_url(&ctx, &e),
                    });
                    a.annotations = annotations;
                    batch.push(a.postable(now.saturating_add(resend.saturating_mul(4))));
                }
            }
            _ = tick.tick() => {
                now = ctx.clock.now();
                let ends = now.saturating_add(resend.saturating_mul(4));
                batch.extend(active.values().map(|a| a.postable(ends)));
            }
        }
        let _ = now;
        if batch.is_empty() {
            continue;
        }
        let body = match serde_json::to_vec(&batch) {
            Ok(b) => Bytes::from(b),
            Err(_) => continue,
        };
        deliver(
            &ctx,
            &name,
            &client,
            &url,
            &no_headers,
            body,
            cfg.timeout.0,
            cfg.retries,
            cfg.backoff.0,
            &c,
        )
        .await;
    }
}

impl Notifiers {
    /// Starts the configured notifiers (their tasks end when [`shutdown`](Self::shutdown)
    /// closes their queues).
    pub fn start(ctx: &Ctx) -> Self {
        let n = &ctx.cfg.notifiers;
        let mut sinks = Vec::new();
        let mut handles = Vec::new();
        for (i, w) in n.webhooks.iter().enumerate() {
            let (tx, rx) = mpsc::channel(w.queue);
            let counters = Arc::new(Counters::default());
            let name = format!("webhook[{i}]");
            handles.push(tokio::spawn(webhook_task(
                ctx.clone(),
                name.clone(),
                w.clone(),
                rx,
                counters.clone(),
            )));
            sinks.push(Sink {
                name,
                url: w.url.clone(),
                tx: Some(tx),
                counters,
            });
        }
        for (i, a) in n.alertmanagers.iter().enumerate() {
            let (tx, rx) = mpsc::channel(a.queue);
            let counters = Arc::new(Counters::default());
            let name = format!("alertmanager[{i}]");
            handles.push(tokio::spawn(alertmanager_task(
                ctx.clone(),
                name.clone(),
                a.clone(),
                rx,
                counters.clone(),
            )));
            sinks.push(Sink {
                name,
                url: a.url.clone(),
                tx: Some(tx),
                counters,
            });
        }
        Notifiers {
            log: n.log.then(|| Arc::new(Counters::default())),
            sinks,
            handles,
        }
    }

    /// No notifier at all (before the task starts them).
    pub fn none() -> Self {
        Notifiers {
            log: None,
            sinks: Vec::new(),
            handles: Vec::new(),
        }
    }

    /// Hands `events` to every notifier without waiting.
    pub fn dispatch(&self, ctx: &Ctx, events: &[Event]) {
        for e in events {
            if let Some(c) = &self.log {
                let level = if e.state == MonitorState::Ok {
                    "INFO"
                } else {
                    "WARN"
                };
                let mut line = format!(
                    "{} ({}): {} → {}: {}",
                    title(e),
                    e.id,
                    e.previous.as_str(),
                    e.state.as_str(),
                    e.reason
                );
                if e.renotification {
                    line = format!("{} ({}): {}", title(e), e.id, e.reason);
                }
                ctx.log(level, "monitors", &line);
                c.sent.fetch_add(1, Ordering::Relaxed);
            }
            for s in &self.sinks {
                let Some(tx) = &s.tx else { continue };
                if tx.try_send(e.clone()).is_err() {
                    s.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Every notifier's counters.
    pub fn counters(&self) -> Vec<CounterView> {
        let read = |name: &str, url: &str, c: &Counters| CounterView {
            name: name.to_owned(),
            url: url.to_owned(),
            sent: c.sent.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        };
        let mut v: Vec<CounterView> = self.log.iter().map(|c| read("log", "", c)).collect();
        v.extend(
            self.sinks
                .iter()
                .map(|s| read(&s.name, &s.url, &s.counters)),
        );
        v
    }

    /// Closes the queues and waits (at most 10 s) for what is queued to be delivered.
    pub async fn shutdown(&mut self) {
        for s in &mut self.sinks {
            s.tx = None;
        }
        let handles = std::mem::take(&mut self.handles);
        for h in handles {
            let abort = h.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
