//! The agent's HTTP API (default `127.0.0.1:5002`): `/health`, `/metrics` and the JSON
//! API under `/api/v1/`. Every answer is JSON except `/metrics` (Prometheus text 0.0.4).
//! Only `GET` (and `HEAD`) are served; browser requests from another site or origin
//! (`Sec-Fetch-Site`, `Origin`) and a `Host` that is not an IP, `localhost` or one of
//! `api.allowed_hosts` (DNS rebinding) are refused 403. Connections are served under the
//! [`guard`]: connection limits (in all and per client), header read timeout, header size
//! limit, all counted.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

pub mod ui;

use crate::run::{Ctx, Tasks};
use crate::store::StoredTrace;

pub mod guard;

/// What the API handlers need.
#[derive(Clone)]
pub struct Api {
    pub(crate) ctx: Ctx,
    pub(crate) tasks: Tasks,
    pub(crate) started: meshmon_core::Timestamp,
    pub(crate) addrs: Arc<BTreeMap<&'static str, String>>,
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

fn json_reply(status: StatusCode, v: &Value) -> Resp {
    let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
    body.push(b'\n');
    reply(status, "application/json", body)
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json_reply(status, &json!({ "error": msg }))
}

/// Percent-decodes a query component (`+` is a space).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if c == b'+' { b' ' } else { c });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v&k=v` pairs, decoded.
pub fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn trace_summary(t: &StoredTrace) -> Value {
    json!({
        "trace_id": t.trace_id,
        "service": t.service,
        "resource": t.resource,
        "start": t.start,
        "duration_ms": t.duration as f64 / 1e6,
        "error": t.error,
        "spans": t.spans.len(),
        "services": t.spans.iter().map(|s| s.service.as_str()).collect::<std::collections::BTreeSet<_>>(),
    })
}

impl Api {
    /// Routes one request.
    pub fn route(&self, method: &str, path: &str, query: Option<&str>, cross_site: bool) -> Resp {
        if cross_site {
            return error(StatusCode::FORBIDDEN, "cross-site requests are refused");
        }
        if method != "GET" && method != "HEAD" {
            return error(StatusCode::METHOD_NOT_ALLOWED, "only GET is served");
        }
        let q = query_pairs(query);
        let param = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        // The store's sizes go into its telemetry under a short write lock; every answer
        // is then rendered under a read lock, so readers never block one another.
        if matches!(path, "/metrics" | "/api/v1/status")
            && let Ok(mut st) = self.ctx.store.write()
        {
            st.publish_stats();
        }
        let Ok(store) = self.ctx.store.read() else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "store poisoned");
        };
        match path {
            "/health" => {
                let dead = self.tasks.dead();
                let body = json!({
                    "status": if dead.is_empty() { "ok" } else { "failing" },
                    "tasks": self.tasks.names(),
                    "dead": dead,
                });
                let code = if dead.is_empty() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                json_reply(code, &body)
            }
            "/metrics" => {
                let mut text = store.telemetry.render();
                let up = self.ctx.clock.now().as_secs_f64() - self.started.as_secs_f64();
                text.push_str(&format!(
                    "# HELP meshmon_uptime_seconds Seconds since the agent started.\n# TYPE meshmon_uptime_seconds gauge\nmeshmon_uptime_seconds {up:.3}\n"
                ));
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text,
                )
            }
            "/api/v1/status" => {
                let checks = store.checks();
                let up = checks.iter().filter(|c| c.status == "up").count();
                let body = json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "hostname": self.ctx.hostname,
                    "started": self.started.as_secs_f64(),
                    "uptime_s": self.ctx.clock.now().as_secs_f64() - self.started.as_secs_f64(),
                    "listeners": *self.addrs,
                    "tasks": self.tasks.names(),
                    "dead_tasks": self.tasks.dead(),
                    "checks": { "total": checks.len(), "up": up, "down": checks.len() - up,
                                "items": checks },
                    "components": store.components,
                    "store": store.stats(),
                    "notices": self.ctx.cfg.notices,
                });
                json_reply(StatusCode::OK, &body)
            }
            "/api/v1/checks" => json_reply(StatusCode::OK, &json!({ "checks": store.checks() })),
            "/api/v1/series" => {
                let tags: Vec<String> = q
                    .iter()
                    .filter(|(k, _)| k == "tag")
                    .map(|(_, v)| v.clone())
                    .collect();
                let since = param("since")
                    .and_then(|s| s.parse::<f64>().ok())
                    .and_then(meshmon_core::Timestamp::from_secs_f64);
                match param("name") {
                    Some(name) => json_reply(
                        StatusCode::OK,
                        &json!({ "name": name, "series": store.query(name, &tags, since) }),
                    ),
                    None => {
                        let names: Vec<Value> = store
                            .names()
                            .into_iter()
                            .map(|(n, c)| json!({ "name": n, "series": c }))
                            .collect();
                        json_reply(StatusCode::OK, &json!({ "names": names }))
                    }
                }
            }
            "/api/v1/services" => {
                json_reply(StatusCode::OK, &json!({ "services": store.services() }))
            }
            "/api/v1/servicemap" => {
                let mut services: std::collections::BTreeSet<&str> = store
                    .services()
                    .iter()
                    .map(|s| s.service.as_str())
                    .collect();
                for e in store.edges() {
                    services.insert(&e.from);
                    services.insert(&e.to);
                }
                json_reply(
                    StatusCode::OK,
                    &json!({ "services": services, "edges": store.edges() }),
                )
            }
            "/api/v1/traces" => {
                let limit = param("limit")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(50usize)
                    .min(1000);
                let traces: Vec<Value> = store
                    .traces(param("service"), limit)
                    .iter()
                    .map(|t| trace_summary(t))
                    .collect();
                json_reply(StatusCode::OK, &json!({ "traces": traces }))
            }
            p if p.starts_with("/api/v1/traces/") => {
                let id = &p["/api/v1/traces/".len()..];
                match store.trace(id) {
                    Some(t) => json_reply(StatusCode::OK, &ui::trace_with_logs(&store, &t)),
                    None => error(
                        StatusCode::NOT_FOUND,
                        &format!("no trace {id:?} in the store"),
                    ),
                }
            }
            "/api/v1/patterns" => {
                let status = param("status");
                let pats: Vec<_> = store
                    .patterns(param("service"))
                    .into_iter()
                    .filter(|p| status.is_none_or(|s| p.statuses.contains_key(s)))
                    .collect();
                json_reply(StatusCode::OK, &json!({ "patterns": pats }))
            }
            p if ui::serves(p) => ui::route(
                &store,
                p,
                self.ctx.cfg.apm.stats_flush_interval.0.as_secs_f64(),
                param("since").and_then(|s| s.parse().ok()),
            ),
            "/api/v1/monitors" => json_reply(
                StatusCode::OK,
                &crate::monitor::api::monitors_json(&store.monitors),
            ),
            "/api/v1/watchdog" => json_reply(
                StatusCode::OK,
                &crate::monitor::api::watchdog_json(&store.monitors, self.ctx.clock.now()),
            ),
            _ => error(StatusCode::NOT_FOUND, &format!("no such path {path:?}")),
        }
    }

    async fn handle(self, req: Request<hyper::body::Incoming>) -> Result<Resp, Infallible> {
        let cross = req
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().map(str::to_owned);
        Ok(self.route(&method, &path, query.as_deref(), cross))
    }
}

/// Serves the API on `listener` until `shutdown` flips, under the connection guard of
/// `api.max_connections`, `api.header_read_timeout` and `api.max_header_bytes`
/// ([`guard`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let c = &api.ctx.cfg.api;
    let g = guard::Guard::new(
        "api",
        guard::Limits::new(
            c.max_connections,
            c.header_read_timeout.0,
            c.max_header_bytes,
        )
        .per_client(c.max_connections_per_client),
    )
    .with_browser_policy(guard::BrowserPolicy::with_hosts(&c.allowed_hosts));
    let ctx = api.ctx.clone();
    guard::serve(
        listener,
        g,
        ctx,
        move |req| api.clone().handle(req),
        shutdown,
    )
    .await;
}

/// The bound address, for logs.
pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(percent_decode("a%3Ab+c%zz%4"), "a:b c%zz%4");
        let q = query_pairs(Some("name=istio.mesh&tag=k%3Av&tag=x:y&flag"));
        assert_eq!(q[0], ("name".into(), "istio.mesh".into()));
        assert_eq!(q[1], ("tag".into(), "k:v".into()));
        assert_eq!(q[2], ("tag".into(), "x:y".into()));
        assert_eq!(q[3], ("flag".into(), String::new()));
    }
}
