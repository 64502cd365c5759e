//! Template variables (`%%host%%`, `%%port_<name>%%`, `%%env_<VAR>%%`, …) and their
//! resolution against one [`AdService`].
//!
//! Follows the Datadog Agent's config resolver (`pkg/autodiscovery/configresolver`,
//! `pkg/util/tmplvar`; user docs:
//! <https://docs.datadoghq.com/containers/guide/template_variables/>):
//!
//! - Variables are resolved **only inside string values of the parsed document**, never
//!   in its text, so a substituted value can never break the document and nothing needs
//!   escaping. Map keys are never resolved.
//! - A variable is `%%name%%` or `%%name_key%%`; the name ends at the first `_` that has
//!   something after it (`%%kube_pod_name%%` is `kube` with key `pod_name`). A `%%` with
//!   no closing `%%` is literal text.
//! - `%%host%%` / `%%host_<network>%%`: the address on the named network; when the
//!   template names no network or one the service does not have, the only network if
//!   there is one, else `bridge`, else [`ResolveError::AmbiguousNetwork`].
//! - `%%port%%`: the **last** port of the service's list; `%%port_<i>%%`: the port at
//!   index `i`; `%%port_<name>%%`: the port with that name.
//! - `%%pid%%`, `%%hostname%%`: from the service, when it has them.
//! - `%%env_<VAR>%%`: the agent's environment as given by [`EnvPolicy`] (allow-list,
//!   matched case-insensitively, empty list allows all, as `ad_allowed_env_vars`; a
//!   switch disables it, as `ad_disable_env_var_resolution`).
//! - `%%kube_<key>%%` / `%%extra_<key>%%`: the service's extra data (`namespace`,
//!   `pod_name`, `pod_uid`, …).
//! - A string that is **exactly one variable** becomes an integer (Go's
//!   `strconv.ParseInt(s, 0, 64)`: `0x1f`, `0o17`, `017` octal, `1_000`) or a boolean
//!   (Go's `strconv.ParseBool`: `1`/`t`/`true`/`TRUE`/…) when its value parses as one,
//!   except for `%%env_*%%`, which always stays a string (so `0123` is not read as octal).
//! - **IPv6 brackets.** An IPv6 `%%host%%` value is written `[addr]` when it sits in the
//!   authority of a URL (after `<scheme>://`, before any `/`, `?` or `#`), as the Agent
//!   does, and also when it is directly followed by `:` (the `host:port` form without a
//!   scheme, as Go's `net.JoinHostPort` writes it; the Agent leaves this form
//!   unbracketed, which no client can parse). Already bracketed (`[%%host%%]`) and
//!   standalone values are left bare.
//! - Errors: any variable that cannot be resolved (unknown, no such network / port / env
//!   var / extra key, index out of range, **empty value**) makes the whole
//!   (template, service) pair fail with a typed [`ResolveError`]; there is never partial
//!   output or an empty substitution.
//! - After resolution the service's tags are merged into the instance's `tags` list,
//!   de-duplicated and sorted, unless the template sets `ignore_autodiscovery_tags`.
//!
//! ```
//! use meshmon_core::autodiscovery::template::{AdService, Port, Resolver};
//! use serde_json::json;
//!
//! let svc = AdService {
//!     id: "kube_endpoint_uid://istio-system/istiod/fd00::5".into(),
//!     hosts: [("endpoint".to_string(), "fd00::5".to_string())].into(),
//!     ports: vec![Port { name: "http-monitoring".into(), port: 15014 }],
//!     tags: vec!["kube_service:istiod".into()],
//!     ..AdService::default()
//! };
//! let r = Resolver::default();
//! let v = r.resolve_value(&json!({"url": "http://%%host%%:%%port_http-monitoring%%/metrics",
//!                                 "port": "%%port%%"}), Some(&svc))?;
//! assert_eq!(v, json!({"url": "http://[fd00::5]:15014/metrics", "port": 15014}));
//! # Ok::<(), meshmon_core::autodiscovery::template::ResolveError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::annotations::Template;

/// One port of an [`AdService`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// Port name (may be empty).
    #[serde(default)]
    pub name: String,
    /// The port number.
    pub port: u16,
}

/// What a listener knows about one target (a pod's container, an endpoint address, a
/// service's cluster IP): the Datadog Agent's `listeners.Service`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdService {
    /// Service id, e.g. `kube_endpoint_uid://<ns>/<svc>/<ip>`.
    pub id: String,
    /// Network name → address (`endpoint`, `pod`, `cluster_ip`, `bridge`, …).
    pub hosts: BTreeMap<String, String>,
    /// Ports in the order `%%port_<i>%%` indexes them.
    pub ports: Vec<Port>,
    /// Process id, when known.
    pub pid: Option<i64>,
    /// Hostname, when known.
    pub hostname: Option<String>,
    /// Extra data for `%%kube_<key>%%` / `%%extra_<key>%%`.
    pub extra: BTreeMap<String, String>,
    /// Tags merged into each instance.
    pub tags: Vec<String>,
    /// Whether the target is ready; check templates are not resolved against an unready
    /// service.
    pub ready: bool,
}

impl Default for AdService {
    fn default() -> Self {
        AdService {
            id: String::new(),
            hosts: BTreeMap::new(),
            ports: Vec::new(),
            pid: None,
            hostname: None,
            extra: BTreeMap::new(),
            tags: Vec::new(),
            ready: true,
        }
    }
}

/// The agent environment `%%env_<VAR>%%` reads, with Datadog's `ad_allowed_env_vars`
/// allow-list and `ad_disable_env_var_resolution` switch.
///
/// The library never reads the process environment itself: the caller passes it in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvPolicy {
    vars: BTreeMap<String, String>,
    allowed: Vec<String>,
    disabled: bool,
}

impl EnvPolicy {
    /// A policy over these variables, all allowed.
    pub fn new<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        EnvPolicy {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            allowed: Vec::new(),
            disabled: false,
        }
    }

    /// Only these names may be read (compared case-insensitively); an empty list allows
    /// every variable, as the Agent does.
    #[must_use]
    pub fn with_allowed<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.allowed = names.into_iter().map(Into::into).collect();
        self
    }

    /// Disables `%%env_*%%` entirely (every use is [`ResolveError::EnvNotAllowed`]).
    #[must_use]
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// Whether `%%env_*%%` resolution is disabled.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// The allow-list (empty: all allowed).
    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }

    fn lookup(&self, name: &str, variable: &str) -> Result<&str, ResolveError> {
        if name.is_empty() {
            return Err(ResolveError::EnvNameMissing {
                variable: variable.to_owned(),
            });
        }
        let denied = |reason: &'static str| ResolveError::EnvNotAllowed {
            variable: variable.to_owned(),
            name: name.to_owned(),
            reason,
        };
        if self.disabled {
            return Err(denied("environment variable resolution is disabled"));
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            return Err(denied("it is not in the allow-list"));
        }
        match self.vars.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            Some(_) => Err(ResolveError::EnvNotSet {
                variable: variable.to_owned(),
                name: name.to_owned(),
                empty: true,
            }),
            None => Err(ResolveError::EnvNotSet {
                variable: variable.to_owned(),
                name: name.to_owned(),
                empty: false,
            }),
        }
    }
}

/// Why a (template, service) pair yields no configuration. The set of kinds is fixed:
/// see [`ResolveError::KINDS`] and [`ResolveError::kind`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// `no_network`: `%%host%%` but the service has no (non-empty) address.
    #[error("{variable}: service {service:?} has no network address")]
    NoNetwork {
        /// The variable as written, e.g. `%%host%%`.
        variable: String,
        /// Service id.
        service: String,
    },
    /// `ambiguous_network`: several networks, none named by the template nor `bridge`.
    #[error(
        "{variable}: service {service:?} has networks {networks:?} and neither the named one nor \"bridge\"; cannot pick one"
    )]
    AmbiguousNetwork {
        /// The variable as written.
        variable: String,
        /// Service id.
        service: String,
        /// The service's network names.
        networks: Vec<String>,
    },
    /// `no_ports`: `%%port…%%` but the service exposes no port.
    #[error("{variable}: service {service:?} exposes no port")]
    NoPorts {
        /// The variable as written.
        variable: String,
        /// Service id.
        service: String,
    },
    /// `port_index_out_of_range`: `%%port_<i>%%` with `i` ≥ the number of ports.
    #[error(
        "{variable}: port index {index} is out of range, service {service:?} has {len} port(s)"
    )]
    PortIndexOutOfRange {
        /// The variable as written.
        variable: String,
        /// Service id.
        service: String,
        /// The index asked for.
        index: i64,
        /// How many ports the service has.
        len: usize,
    },
    /// `port_not_found`: `%%port_<name>%%` with no port of that name.
    #[error("{variable}: service {service:?} has no port named {name:?} (ports: {available:?})")]
    PortNotFound {
        /// The variable as written.
        variable: String,
        /// Service id.
        service: String,
        /// The name asked for.
        name: String,
        /// The names the service has.
        available: Vec<String>,
    },
    /// `no_pid`: `%%pid%%` but the service has no process id.
    #[error("{variable}: service {service:?} has no pid")]
    NoPid {
        /// The variable as written.
        variable: String,
        /// Service id.
        service: String,
    },
    /// `no_hostname`: `%%hostname%%` but the service has no (non-empty) hostname.
    #[error("{variable}: service {service:?} has no hostname")]
    NoHostname {
        /// The variable as written.
        variable: String,
        /// Service id.
        service: String,
    },
    /// `env_name_missing`: `%%env%%` or `%%env_%%` names no variable.
    #[error("{variable}: environment variable name is missing (write %%env_<NAME>%%)")]
    EnvNameMissing {
        /// The variable as written.
        variable: String,
    },
    /// `env_not_set`: the environment variable is not set, or is empty.
    #[error("{variable}: environment variable {name} is {}", if *empty { "empty" } else { "not set" })]
    EnvNotSet {
        /// The variable as written.
        variable: String,
        /// The environment variable's name.
        name: String,
        /// Set but empty (an empty substitution is refused).
        empty: bool,
    },
    /// `env_not_allowed`: env resolution is disabled or the name is not allowed.
    #[error("{variable}: environment variable {name} may not be read: {reason}")]
    EnvNotAllowed {
        /// The variable as written.
        variable: String,
        /// The environment variable's name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// `extra_not_found`: `%%kube_<key>%%` / `%%extra_<key>%%` with no such (non-empty)
    /// extra data.
    #[error("{variable}: service {service:?} has no extra data {key:?} (has: {available:?})")]
    ExtraNotFound {
        /// The variable as written.
        variable: String,
        /// Service id.
        service: String,
        /// The key asked for.
        key: String,
        /// The keys the service has.
        available: Vec<String>,
    },
    /// `unknown_variable`: not a template variable the Agent knows.
    #[error("{variable}: unknown template variable")]
    UnknownVariable {
        /// The variable as written.
        variable: String,
    },
    /// `not_supported`: the variable needs a service and there is none.
    #[error("{variable}: {reason}")]
    NotSupported {
        /// The variable as written.
        variable: String,
        /// Why.
        reason: &'static str,
    },
    /// `service_not_ready`: check templates are not resolved against an unready service.
    #[error("service {service:?} is not ready")]
    ServiceNotReady {
        /// Service id.
        service: String,
    },
    /// `parse_error`: the template text is neither JSON nor YAML.
    #[error("template does not parse{}: {message}", match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        _ => String::new(),
    })]
    ParseError {
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
}

impl ResolveError {
    /// Every kind [`ResolveError::kind`] can return: a fixed, documented set.
    pub const KINDS: [&'static str; 15] = [
        "no_network",
        "ambiguous_network",
        "no_ports",
        "port_index_out_of_range",
        "port_not_found",
        "no_pid",
        "no_hostname",
        "env_name_missing",
        "env_not_set",
        "env_not_allowed",
        "extra_not_found",
        "unknown_variable",
        "not_supported",
        "service_not_ready",
        "parse_error",
    ];

    /// A stable snake_case name for the error's kind (one of [`ResolveError::KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            ResolveError::NoNetwork { .. } => "no_network",
            ResolveError::AmbiguousNetwork { .. } => "ambiguous_network",
            ResolveError::NoPorts { .. } => "no_ports",
            ResolveError::PortIndexOutOfRange { .. } => "port_index_out_of_range",
            ResolveError::PortNotFound { .. } => "port_not_found",
            ResolveError::NoPid { .. } => "no_pid",
            ResolveError::NoHostname { .. } => "no_hostname",
            ResolveError::EnvNameMissing { .. } => "env_name_missing",
            ResolveError::EnvNotSet { .. } => "env_not_set",
            ResolveError::EnvNotAllowed { .. } => "env_not_allowed",
            ResolveError::ExtraNotFound { .. } => "extra_not_found",
            ResolveError::UnknownVariable { .. } => "unknown_variable",
            ResolveError::NotSupported { .. } => "not_supported",
            ResolveError::ServiceNotReady { .. } => "service_not_ready",
            ResolveError::ParseError { .. } => "parse_error",
        }
    }
}

/// A template resolved against one service.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// `init_config`, resolved.
    pub init_config: Value,
    /// The instance, resolved and tagged; `None` for a logs-only template.
    pub instance: Option<Value>,
    /// The logs configuration, resolved (tags are not merged into logs).
    pub logs: Option<Value>,
}

/// Resolves template variables. Holds the [`EnvPolicy`]; everything else comes from the
/// [`AdService`] passed to each call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolver {
    env: EnvPolicy,
}

enum Val<'a> {
    Str(&'a str),
    Int(i64),
}

impl Resolver {
    /// A resolver reading `%%env_*%%` through `env`.
    pub fn new(env: EnvPolicy) -> Self {
        Resolver { env }
    }

    /// The environment policy.
    pub fn env(&self) -> &EnvPolicy {
        &self.env
    }

    /// Resolves a template against a service: readiness (for check templates), then
    /// `init_config`, the instance and the logs, then the tag merge.
    pub fn resolve_template(
        &self,
        tpl: &Template,
        svc: &AdService,
    ) -> Result<Resolved, ResolveError> {
        if tpl.instance.is_some() && !svc.ready {
            return Err(ResolveError::ServiceNotReady {
                service: svc.id.clone(),
            });
        }
        let init_config = self.resolve_value(&tpl.init_config, Some(svc))?;
        let instance = match &tpl.instance {
            Some(i) => {
                let mut v = self.resolve_value(i, Some(svc))?;
                if !tpl.ignore_autodiscovery_tags {
                    merge_tags(&mut v, &svc.tags);
                }
                Some(v)
            }
            None => None,
        };
        let logs = match &tpl.logs {
            Some(l) => Some(self.resolve_value(l, Some(svc))?),
            None => None,
        };
        Ok(Resolved {
            init_config,
            instance,
            logs,
        })
    }

    /// Returns `value` with every string's template variables resolved. `svc` is `None`
    /// when there is no service (only `%%env_*%%` can resolve then).
    pub fn resolve_value(
        &self,
        value: &Value,
        svc: Option<&AdService>,
    ) -> Result<Value, ResolveError> {
        Ok(match value {
            Value::String(s) => match self.resolve_str(s, svc)? {
                Some(v) => v,
                None => Value::String(s.clone()),
            },
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve_value(v, svc))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    out.insert(k.clone(), self.resolve_value(v, svc)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    /// Resolves the variables of one string. `Ok(None)` when it holds none (the string
    /// is unchanged).
    pub fn resolve_str(
        &self,
        s: &str,
        svc: Option<&AdService>,
    ) -> Result<Option<Value>, ResolveError> {
        let Some(first) = find_marker(s, 0) else {
            return Ok(None);
        };
        // `%%` markers are found left to right, non-overlapping (the Agent's `%%` → `‰`
        // pass); `at` is the candidate opening marker.
        let next = |from: usize| find_marker(s, from);
        let mut out = String::new();
        let mut copied = 0;
        let mut vars = 0;
        let mut whole: Option<&str> = None;
        let mut at = first;
        loop {
            let open = at;
            let Some(m1) = next(open + 2) else { break };
            // A variable needs at least one character between its `%%`s; an adjacent
            // marker is swallowed into the name (and makes it unknown), as the Agent's
            // lazy regex does. With nothing after it, the adjacent marker opens instead.
            let close = if m1 > open + 2 {
                m1
            } else if let Some(m2) = next(m1 + 2) {
                m2
            } else {
                at = m1;
                continue;
            };
            if out.capacity() == 0 {
                out.reserve(s.len() + 32);
            }
            let variable = &s[open..close + 2];
            let (name, key) = split_variable(&s[open + 2..close]);
            out.push_str(&s[copied..open]);
            match self.lookup(name, key, variable, svc)? {
                Val::Int(n) => {
                    let _ = write!(out, "{n}");
                }
                Val::Str(v) => {
                    if name == "host" && is_ipv6(v) && needs_brackets(&out, &s[close + 2..]) {
                        out.push('[');
                        out.push_str(v);
                        out.push(']');
                    } else {
                        out.push_str(v);
                    }
                }
            }
            copied = close + 2;
            vars += 1;
            if open == 0 && close + 2 == s.len() {
                whole = Some(name);
            }
            match next(close + 2) {
                Some(m) => at = m,
                None => break,
            }
        }
        if vars == 0 {
            return Ok(None);
        }
        out.push_str(&s[copied..]);
        if let Some(name) = whole
            && name != "env"
        {
            if let Some(n) = go_parse_int(&out) {
                return Ok(Some(Value::from(n)));
            }
            if let Some(b) = crate::go::parse_bool(&out) {
                return Ok(Some(Value::Bool(b)));
            }
        }
        Ok(Some(Value::String(out)))
    }

    fn lookup<'a>(
        &'a self,
        name: &str,
        key: &str,
        variable: &str,
        svc: Option<&'a AdService>,
    ) -> Result<Val<'a>, ResolveError> {
        let need = |reason: &'static str| ResolveError::NotSupported {
            variable: variable.to_owned(),
            reason,
        };
        match name {
            "env" => self.env.lookup(key, variable).map(Val::Str),
            "host" => {
                let svc = svc.ok_or_else(|| need("no service: %%host%% is not allowed"))?;
                host(svc, key, variable).map(Val::Str)
            }
            "port" => {
                let svc = svc.ok_or_else(|| need("no service: %%port%% is not allowed"))?;
                port(svc, key, variable).map(|p| Val::Int(i64::from(p)))
            }
            "pid" => {
                let svc = svc.ok_or_else(|| need("no service: %%pid%% is not allowed"))?;
                svc.pid.map(Val::Int).ok_or_else(|| ResolveError::NoPid {
                    variable: variable.to_owned(),
                    service: svc.id.clone(),
                })
            }
            "hostname" => {
                let svc = svc.ok_or_else(|| need("no service: %%hostname%% is not allowed"))?;
                match svc.hostname.as_deref() {
                    Some(h) if !h.is_empty() => Ok(Val::Str(h)),
                    _ => Err(ResolveError::NoHostname {
                        variable: variable.to_owned(),
                        service: svc.id.clone(),
                    }),
                }
            }
            "kube" | "extra" => {
                let svc = svc.ok_or_else(|| {
                    need("no service: %%kube_*%% and %%extra_*%% are not allowed")
                })?;
                match svc.extra.get(key) {
                    Some(v) if !v.is_empty() => Ok(Val::Str(v)),
                    _ => Err(ResolveError::ExtraNotFound {
                        variable: variable.to_owned(),
                        service: svc.id.clone(),
                        key: key.to_owned(),
                        available: svc.extra.keys().cloned().collect(),
                    }),
                }
            }
            _ => Err(ResolveError::UnknownVariable {
                variable: variable.to_owned(),
            }),
        }
    }
}

/// Byte offset of the first `%%` at or after `from`.
fn find_marker(s: &str, from: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = from;
    while i + 1 < b.len() {
        if b[i] == b'%' && b[i + 1] == b'%' {
            return Some(i);
        }
        i += 1 + b[i + 1..].iter().position(|&c| c == b'%')?;
    }
    None
}

/// Splits `kube_pod_name` into (`kube`, `pod_name`): the name ends at the first `_`
/// (after at least one character) that is followed by at least one character.
fn split_variable(inner: &str) -> (&str, &str) {
    let b = inner.as_bytes();
    for p in 1..b.len().saturating_sub(1) {
        if b[p] == b'_' {
            return (&inner[..p], &inner[p + 1..]);
        }
    }
    (inner, "")
}

fn host<'a>(svc: &'a AdService, network: &str, variable: &str) -> Result<&'a str, ResolveError> {
    let usable = |ip: &'a String| (!ip.is_empty()).then_some(ip.as_str());
    if svc.hosts.values().all(String::is_empty) {
        return Err(ResolveError::NoNetwork {
            variable: variable.to_owned(),
            service: svc.id.clone(),
        });
    }
    if let Some(ip) = svc.hosts.get(network).and_then(usable) {
        return Ok(ip);
    }
    // Fallback: the only network, else `bridge`, else give up rather than guess.
    if svc.hosts.len() == 1
        && let Some(ip) = svc.hosts.values().next().and_then(usable)
    {
        return Ok(ip);
    }
    if let Some(ip) = svc.hosts.get("bridge").and_then(usable) {
        return Ok(ip);
    }
    Err(ResolveError::AmbiguousNetwork {
        variable: variable.to_owned(),
        service: svc.id.clone(),
        networks: svc.hosts.keys().cloned().collect(),
    })
}

fn port(svc: &AdService, key: &str, variable: &str) -> Result<u16, ResolveError> {
    let Some(last) = svc.ports.last() else {
        return Err(ResolveError::NoPorts {
            variable: variable.to_owned(),
            service: svc.id.clone(),
        });
    };
    if key.is_empty() {
        return Ok(last.port);
    }
    if let Ok(index) = key.parse::<i64>() {
        return usize::try_from(index)
            .ok()
            .and_then(|i| svc.ports.get(i))
            .map(|p| p.port)
            .ok_or_else(|| ResolveError::PortIndexOutOfRange {
                variable: variable.to_owned(),
                service: svc.id.clone(),
                index,
                len: svc.ports.len(),
            });
    }
    svc.ports
        .iter()
        .find(|p| p.name == key)
        .map(|p| p.port)
        .ok_or_else(|| ResolveError::PortNotFound {
            variable: variable.to_owned(),
            service: svc.id.clone(),
            name: key.to_owned(),
            available: svc.ports.iter().map(|p| p.name.clone()).collect(),
        })
}

fn is_ipv6(v: &str) -> bool {
    v.contains(':') && v.parse::<Ipv6Addr>().is_ok()
}

/// Whether an IPv6 host written after `before` and followed by `after` needs brackets.
fn needs_brackets(before: &str, after: &str) -> bool {
    if before.ends_with('[') && after.starts_with(']') {
        return false;
    }
    if after.starts_with(':') {
        return true;
    }
    let Some(p) = before.rfind("://") else {
        return false;
    };
    let authority = &before[p + 3..];
    if authority.contains(['/', '?', '#']) || authority.contains(char::is_whitespace) {
        return false;
    }
    // A scheme: a letter then letters, digits, `+`, `-`, `.` (RFC 3986 §3.1).
    let scheme_start = before[..p]
        .char_indices()
        .rfind(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .map_or(0, |(i, c)| i + c.len_utf8());
    before[scheme_start..p]
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
}

/// Merges `tags` into `instance["tags"]`: existing entries kept (non-strings as their
/// JSON text), de-duplicated, sorted. Nothing happens when `tags` is empty or the
/// instance is not an object.
pub fn merge_tags(instance: &mut Value, tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    let Value::Object(map) = instance else {
        return;
    };
    let text = |v: Value| match v {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let mut all: Vec<String> = match map.remove("tags") {
        None | Some(Value::Null) => Vec::with_capacity(tags.len()),
        Some(Value::Array(items)) => items.into_iter().map(text).collect(),
        Some(other) => vec![text(other)],
    };
    all.extend(tags.iter().cloned());
    all.sort_unstable();
    all.dedup();
    map.insert(
        "tags".to_owned(),
        Value::Array(all.into_iter().map(Value::String).collect()),
    );
}

/// Parses template text, JSON or YAML. YAML cannot start a plain scalar with `%`, so
/// (like the Agent) `%%` is swapped for a placeholder character before parsing and
/// swapped back in every key and string after; the placeholder is a private-use
/// character absent from the input, so no input can be mangled.
///
/// ```
/// use meshmon_core::autodiscovery::template::parse_template_text;
///
/// let v = parse_template_text("url: http://%%host%%:80\nport: %%port%%\n")?;
/// assert_eq!(v["url"], "http://%%host%%:80");
/// assert_eq!(v["port"], "%%port%%");
/// # Ok::<(), meshmon_core::autodiscovery::template::ResolveError>(())
/// ```
pub fn parse_template_text(text: &str) -> Result<Value, ResolveError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ResolveError::ParseError {
            line: None,
            column: None,
            message: "template is empty".into(),
        });
    }
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(v) = serde_json::from_str::<Value>(t)
    {
        return Ok(v);
    }
    let placeholder = ('\u{F0000}'..='\u{FFFFD}')
        .find(|c| !text.contains(*c))
        .unwrap_or('\u{F0000}');
    let mut buf = [0u8; 4];
    let ph: &str = placeholder.encode_utf8(&mut buf);
    let swapped = text.replace("%%", ph);
    let mut v: Value = serde_norway::from_str(&swapped).map_err(|e| {
        let loc = e.location();
        ResolveError::ParseError {
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: e.to_string().replace(ph, "%%"),
        }
    })?;
    if swapped.len() != text.len() {
        restore(&mut v, ph);
    }
    Ok(v)
}

fn restore(v: &mut Value, ph: &str) {
    match v {
        Value::String(s) if s.contains(ph) => *s = s.replace(ph, "%%"),
        Value::Array(items) => items.iter_mut().for_each(|v| restore(v, ph)),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut v) in old {
                restore(&mut v, ph);
                let k = if k.contains(ph) {
                    k.replace(ph, "%%")
                } else {
                    k
                };
                map.insert(k, v);
            }
        }
        _ => {}
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, `0x`/`0o`/`0b` prefixes, a leading `0`
/// meaning octal, `_` between digits.
pub(crate) fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let b = body.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (base, digits): (u32, &[u8]) = if b[0] == b'0' {
        match b.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if b.len() >= 3 => (2, &b[2..]),
            Some(b'o') if b.len() >= 3 => (8, &b[2..]),
            Some(b'x') if b.len() >= 3 => (16, &b[2..]),
            _ => (8, &b[1..]),
        }
    } else {
        (10, b)
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        if c == b'_' {
            underscores = true;
            continue;
        }
        let d = (c as char).to_digit(36)?;
        if d >= base {
            return None;
        }
        n = n.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    if underscores && !underscore_ok(body) {
        return None;
    }
    if neg {
        if n > 1 << 63 {
            return None;
        }
        Some((n as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(n).ok()
    }
}

/// Go's `underscoreOK`: `_` only between digits or between a base prefix and a digit.
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        hex = b[1].eq_ignore_ascii_case(&b'x');
        i = 2;
        saw = b'0';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> AdService {
        AdService {
            id: "svc-1".into(),
            hosts: [("pod".to_string(), "10.0.0.7".to_string())].into(),
            ports: vec![
                Port {
                    name: "http".into(),
                    port: 8080,
                },
                Port {
                    name: "metrics".into(),
                    port: 15014,
                },
            ],
            pid: Some(4242),
            hostname: Some("web-0".into()),
            extra: [
                ("namespace".to_string(), "istio-system".to_string()),
                ("pod_name".to_string(), "web-0".to_string()),
            ]
            .into(),
            tags: vec!["kube_namespace:istio-system".into(), "a:b".into()],
            ready: true,
        }
    }

    fn r() -> Resolver {
        Resolver::new(EnvPolicy::new([
            ("DD_ENV", "prod"),
            ("NUM", "0123"),
            ("EMPTY", ""),
        ]))
    }

    fn s(text: &str, svc: Option<&AdService>) -> Result<Value, ResolveError> {
        r().resolve_value(&Value::String(text.into()), svc)
    }

    #[test]
    fn host_and_networks() {
        let sv = svc();
        assert_eq!(
            s("http://%%host%%:80", Some(&sv)).unwrap(),
            json!("http://10.0.0.7:80")
        );
        // named but unknown network falls back to the only one
        assert_eq!(s("%%host_eth9%%", Some(&sv)).unwrap(), json!("10.0.0.7"));
        let mut two = sv.clone();
        two.hosts = [
            ("a".to_string(), "1.1.1.1".to_string()),
            ("bridge".to_string(), "2.2.2.2".to_string()),
        ]
        .into();
        assert_eq!(s("%%host_a%%", Some(&two)).unwrap(), json!("1.1.1.1"));
        assert_eq!(s("%%host%%", Some(&two)).unwrap(), json!("2.2.2.2"));
        assert_eq!(s("%%host_nope%%", Some(&two)).unwrap(), json!("2.2.2.2"));
        two.hosts.remove("bridge");
        two.hosts.insert("b".into(), "3.3.3.3".into());
        let e = s("%%host%%", Some(&two)).unwrap_err();
        assert_eq!(e.kind(), "ambiguous_network");
        assert!(e.to_string().contains("[\"a\", \"b\"]"), "{e}");
        let mut none = sv.clone();
        none.hosts.clear();
        assert_eq!(s("%%host%%", Some(&none)).unwrap_err().kind(), "no_network");
        none.hosts.insert("pod".into(), String::new());
        assert_eq!(s("%%host%%", Some(&none)).unwrap_err().kind(), "no_network");
    }

    #[test]
    fn ports() {
        let sv = svc();
        assert_eq!(s("%%port%%", Some(&sv)).unwrap(), json!(15014));
        assert_eq!(s("%%port_0%%", Some(&sv)).unwrap(), json!(8080));
        assert_eq!(s("%%port_http%%", Some(&sv)).unwrap(), json!(8080));
        assert_eq!(s(":%%port%%", Some(&sv)).unwrap(), json!(":15014"));
        let e = s("%%port_2%%", Some(&sv)).unwrap_err();
        assert_eq!(
            e,
            ResolveError::PortIndexOutOfRange {
                variable: "%%port_2%%".into(),
                service: "svc-1".into(),
                index: 2,
                len: 2
            }
        );
        assert_eq!(
            s("%%port_-1%%", Some(&sv)).unwrap_err().kind(),
            "port_index_out_of_range"
        );
        assert_eq!(
            s("%%port_grpc%%", Some(&sv)).unwrap_err().kind(),
            "port_not_found"
        );
        let mut np = sv.clone();
        np.ports.clear();
        assert_eq!(s("%%port%%", Some(&np)).unwrap_err().kind(), "no_ports");
    }

    #[test]
    fn pid_hostname_extra() {
        let sv = svc();
        assert_eq!(s("%%pid%%", Some(&sv)).unwrap(), json!(4242));
        assert_eq!(s("%%hostname%%", Some(&sv)).unwrap(), json!("web-0"));
        assert_eq!(
            s("%%kube_namespace%%", Some(&sv)).unwrap(),
            json!("istio-system")
        );
        assert_eq!(s("%%extra_pod_name%%", Some(&sv)).unwrap(), json!("web-0"));
        let e = s("%%kube_pod_uid%%", Some(&sv)).unwrap_err();
        assert_eq!(e.kind(), "extra_not_found");
        assert!(e.to_string().contains("\"pod_uid\""));
        let mut empty = sv.clone();
        empty.extra.insert("pod_uid".into(), String::new());
        assert_eq!(
            s("uid=%%kube_pod_uid%%", Some(&empty)).unwrap_err().kind(),
            "extra_not_found"
        );
        let mut bare = sv.clone();
        bare.pid = None;
        bare.hostname = Some(String::new());
        assert_eq!(s("%%pid%%", Some(&bare)).unwrap_err().kind(), "no_pid");
        assert_eq!(
            s("%%hostname%%", Some(&bare)).unwrap_err().kind(),
            "no_hostname"
        );
    }

    #[test]
    fn env_policy() {
        let sv = svc();
        assert_eq!(s("%%env_DD_ENV%%", Some(&sv)).unwrap(), json!("prod"));
        // env values are never coerced
        assert_eq!(s("%%env_NUM%%", None).unwrap(), json!("0123"));
        assert_eq!(
            s("%%env_MISSING%%", None).unwrap_err().kind(),
            "env_not_set"
        );
        assert_eq!(s("%%env_EMPTY%%", None).unwrap_err().kind(), "env_not_set");
        assert_eq!(s("%%env%%", None).unwrap_err().kind(), "env_name_missing");
        assert_eq!(s("%%env_%%", None).unwrap_err().kind(), "unknown_variable");
        let allow = Resolver::new(EnvPolicy::new([("A", "1"), ("B", "2")]).with_allowed(["a"]));
        assert_eq!(
            allow.resolve_str("%%env_A%%", None).unwrap(),
            Some(json!("1"))
        );
        assert_eq!(
            allow.resolve_str("%%env_B%%", None).unwrap_err().kind(),
            "env_not_allowed"
        );
        let off = Resolver::new(EnvPolicy::new([("A", "1")]).disabled(true));
        let e = off.resolve_str("x%%env_A%%", None).unwrap_err();
        assert_eq!(e.kind(), "env_not_allowed");
        assert!(e.to_string().contains("disabled"));
    }

    #[test]
    fn unknown_and_unsupported() {
        assert_eq!(
            s("%%nope%%", Some(&svc())).unwrap_err(),
            ResolveError::UnknownVariable {
                variable: "%%nope%%".into()
            }
        );
        assert_eq!(
            s("%%HOST%%", Some(&svc())).unwrap_err().kind(),
            "unknown_variable"
        );
        for v in [
            "%%host%%",
            "%%port%%",
            "%%pid%%",
            "%%hostname%%",
            "%%kube_namespace%%",
        ] {
            assert_eq!(s(v, None).unwrap_err().kind(), "not_supported", "{v}");
        }
    }

    #[test]
    fn literal_percent_and_odd_markers() {
        let sv = svc();
        assert_eq!(r().resolve_str("100%%", Some(&sv)).unwrap(), None);
        assert_eq!(r().resolve_str("50% of %%", Some(&sv)).unwrap(), None);
        assert_eq!(r().resolve_str("%%%%", Some(&sv)).unwrap(), None);
        assert_eq!(
            s("%%%%host%%", Some(&sv)).unwrap_err().kind(),
            "unknown_variable"
        );
        assert_eq!(
            s("a %%host%% b %% c", Some(&sv)).unwrap(),
            json!("a 10.0.0.7 b %% c")
        );
    }

    #[test]
    fn coercion_only_for_a_whole_single_variable() {
        let mut sv = svc();
        sv.extra.insert("flag".into(), "true".into());
        sv.extra.insert("hex".into(), "0x1F".into());
        sv.extra.insert("oct".into(), "017".into());
        sv.extra.insert("bad".into(), "08".into());
        sv.extra.insert("t".into(), "t".into());
        assert_eq!(s("%%kube_flag%%", Some(&sv)).unwrap(), json!(true));
        assert_eq!(s("%%kube_t%%", Some(&sv)).unwrap(), json!(true));
        assert_eq!(s("%%kube_hex%%", Some(&sv)).unwrap(), json!(31));
        assert_eq!(s("%%kube_oct%%", Some(&sv)).unwrap(), json!(15));
        assert_eq!(s("%%kube_bad%%", Some(&sv)).unwrap(), json!("08"));
        assert_eq!(s("%%port%% ", Some(&sv)).unwrap(), json!("15014 "));
        assert_eq!(
            s("%%port_0%%%%port_1%%", Some(&sv)).unwrap(),
            json!("808015014")
        );
    }

    #[test]
    fn markers() {
        assert_eq!(find_marker("é%x%%y", 0), Some(4));
        assert_eq!(find_marker("%%", 0), Some(0));
        assert_eq!(find_marker("%%%", 1), Some(1));
        assert_eq!(find_marker("a%b%", 0), None);
        assert_eq!(find_marker("%%", 2), None);
    }

    #[test]
    fn go_numbers() {
        for (t, want) in [
            ("0", Some(0)),
            ("-12", Some(-12)),
            ("+7", Some(7)),
            ("1_000", Some(1000)),
            ("0x_1f", Some(31)),
            ("0b101", Some(5)),
            ("0o17", Some(15)),
            ("1__0", None),
            ("_1", None),
            ("1_", None),
            ("0x", None),
            ("", None),
            ("-", None),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("-9223372036854775808", Some(i64::MIN)),
            ("1.5", None),
        ] {
            assert_eq!(go_parse_int(t), want, "{t:?}");
        }
        assert_eq!(crate::go::parse_bool("False"), Some(false));
        assert_eq!(crate::go::parse_bool("yes"), None);
    }

    #[test]
    fn ipv6_brackets() {
        let mut sv = svc();
        sv.hosts = [("pod".to_string(), "fd00::1".to_string())].into();
        let cases = [
            (
                "http://%%host%%:15014/metrics",
                "http://[fd00::1]:15014/metrics",
            ),
            ("https://%%host%%/x", "https://[fd00::1]/x"),
            ("tcp://user@%%host%%", "tcp://user@[fd00::1]"),
            ("%%host%%:%%port%%", "[fd00::1]:15014"),
            ("%%host%%", "fd00::1"),
            ("[%%host%%]:80", "[fd00::1]:80"),
            ("http://x/?target=%%host%%", "http://x/?target=fd00::1"),
            ("hosts %%host%%, other", "hosts fd00::1, other"),
        ];
        for (t, want) in cases {
            assert_eq!(s(t, Some(&sv)).unwrap(), json!(want), "{t}");
        }
        sv.hosts = [("pod".to_string(), "10.1.2.3".to_string())].into();
        assert_eq!(s("%%host%%:80", Some(&sv)).unwrap(), json!("10.1.2.3:80"));
    }

    /// Found by the `ad_resolve` fuzz target: a multi-byte character right before a
    /// scheme's `://` made the scheme scan slice inside that character and panic.
    #[test]
    fn ipv6_brackets_after_a_multibyte_character() {
        let mut sv = svc();
        sv.hosts = [("pod".to_string(), "fd00::1".to_string())].into();
        // `Ɯ` (2 bytes) ends the text before `://`: not a scheme, no brackets.
        assert_eq!(
            s("endpoint\"s\"\u{19c}://%%host%%", Some(&sv)).unwrap(),
            json!("endpoint\"s\"\u{19c}://fd00::1")
        );
        // A scheme after a multi-byte character still gets them.
        assert_eq!(
            s("é http://%%host%%/m", Some(&sv)).unwrap(),
            json!("é http://[fd00::1]/m")
        );
        assert_eq!(
            s("éhttp://%%host%%/m", Some(&sv)).unwrap(),
            json!("éhttp://[fd00::1]/m")
        );
    }

    #[test]
    fn template_resolution_tags_and_readiness() {
        let sv = svc();
        let mut tpl = Template::check(
            "istio",
            json!({"ns": "%%kube_namespace%%"}),
            json!({"url": "http://%%host%%", "tags": ["z:1", "a:b"]}),
        );
        let out = r().resolve_template(&tpl, &sv).unwrap();
        assert_eq!(out.init_config, json!({"ns": "istio-system"}));
        assert_eq!(
            out.instance.unwrap(),
            json!({"url": "http://10.0.0.7", "tags": ["a:b", "kube_namespace:istio-system", "z:1"]})
        );
        tpl.ignore_autodiscovery_tags = true;
        assert_eq!(
            r().resolve_template(&tpl, &sv).unwrap().instance.unwrap()["tags"],
            json!(["z:1", "a:b"])
        );
        let mut unready = sv.clone();
        unready.ready = false;
        assert_eq!(
            r().resolve_template(&tpl, &unready).unwrap_err().kind(),
            "service_not_ready"
        );
        // logs-only templates resolve against unready services, without tag merge
        let logs = Template {
            instance: None,
            logs: Some(json!([{"service": "%%kube_pod_name%%"}])),
            init_config: Value::Null,
            ..tpl
        };
        assert_eq!(
            r().resolve_template(&logs, &unready).unwrap().logs,
            Some(json!([{"service": "web-0"}]))
        );
        // an error anywhere fails the pair
        let bad = Template::check(
            "x",
            json!({}),
            json!({"a": "%%host%%", "b": ["%%port_9%%"]}),
        );
        assert_eq!(
            r().resolve_template(&bad, &sv).unwrap_err().kind(),
            "port_index_out_of_range"
        );
    }

    #[test]
    fn merge_tags_shapes() {
        let mut v = json!({"tags": "x:1"});
        merge_tags(&mut v, &["a:1".into(), "x:1".into()]);
        assert_eq!(v, json!({"tags": ["a:1", "x:1"]}));
        let mut v = json!({"tags": [1, "b"]});
        merge_tags(&mut v, &["b".into()]);
        assert_eq!(v, json!({"tags": ["1", "b"]}));
        let mut v = json!({"k": 1});
        merge_tags(&mut v, &[]);
        assert_eq!(v, json!({"k": 1}));
    }

    #[test]
    fn template_text() {
        let v = parse_template_text("a: %%host%%\nb: [\"%%port%%\", 3]\n\"%%k%%\": 1\n").unwrap();
        assert_eq!(
            v,
            json!({"a": "%%host%%", "b": ["%%port%%", 3], "%%k%%": 1})
        );
        let v = parse_template_text("{\"a\": \"%%host%%\"}").unwrap();
        assert_eq!(v, json!({"a": "%%host%%"}));
        // a literal private-use char in the input is not mangled
        let v = parse_template_text("a: \"\u{F0000} %%x%%\"").unwrap();
        assert_eq!(v, json!({"a": "\u{F0000} %%x%%"}));
        let e = parse_template_text("a: [1,\n").unwrap_err();
        assert!(
            matches!(e, ResolveError::ParseError { line: Some(_), .. }),
            "{e:?}"
        );
        assert_eq!(parse_template_text("  ").unwrap_err().kind(), "parse_error");
    }

    #[test]
    fn kinds_are_the_fixed_set() {
        let mut k = ResolveError::KINDS.to_vec();
        k.sort_unstable();
        k.dedup();
        assert_eq!(k.len(), 15);
    }
}
