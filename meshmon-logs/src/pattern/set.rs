//! [`PatternSet`]: the line → pattern accounting an agent needs, on top of [`Miner`]:
//! one call per record, per-pattern counts by [`Status`] kept under the live id (summed
//! whenever patterns converge or pattern sets merge), structured access-log records
//! mined from their fields, and one serialisable state to persist and restore.
//!
//! # Envoy / Istio access logs
//!
//! An access-log record ([`crate::format::EnvoyLine::to_record`], `source: envoy`) is
//! mined from its fields rather than from its text, by the rule an operator applies to
//! a proxy's Log Patterns view: the method, the route shape, the protocol, the response
//! code, the response flags and the response code details define the event and stay
//! constants (pinned: [`Slot::Fixed`], never generalised); ids, sizes, durations,
//! addresses, user agents and the upstream cluster are not part of the event, so an
//! inbound and an outbound line of the same call (one with `-` where the other has a
//! value) share a pattern. The route shape keeps the path's words and turns the
//! segments holding a digit (except API versions such as `v1`, `v2beta1`), UUIDs and
//! hex ids into variables; the query string is one variable; word segments still become
//! variables by the miner's evidence rule ([`MinerConfig::distinct_values`]).
//!
//! ```
//! use meshmon_logs::format::parse_envoy;
//! use meshmon_logs::pattern::PatternSet;
//! use meshmon_logs::Status;
//! let mut set = PatternSet::default();
//! let a = parse_envoy(br#"[2024-05-01T12:00:00.000Z] "GET /api/v1/users/42 HTTP/1.1" 200 - via_upstream - "-" 0 512 3 2 "-" "curl/8.0" "6b1c" "users:8080" "10.0.0.7:8080" outbound|8080||users.default.svc.cluster.local 10.0.0.5:40000 10.96.0.10:8080 10.0.0.5:39999 - default"#).unwrap();
//! let b = parse_envoy(br#"[2024-05-01T12:00:01.000Z] "GET /api/v1/users/7 HTTP/1.1" 200 - via_upstream - "-" 0 87 1 1 "10.0.0.5" "Go-http-client/1.1" "9e0f" "users:8080" "127.0.0.1:8080" inbound|8080|| 127.0.0.6:41111 10.0.0.7:8080 10.0.0.5:0 outbound_.8080_._.users.default.svc.cluster.local default"#).unwrap();
//! let c = parse_envoy(br#"[2024-05-01T12:00:02.000Z] "GET /api/v1/users/9 HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure} - "-" 0 91 0 - "-" "curl/8.0" "77aa" "users:8080" "10.0.0.7:8080" outbound|8080||users.default.svc.cluster.local - 10.96.0.10:8080 10.0.0.5:39998 - default"#).unwrap();
//! let (ia, ib, ic) = (
//!     set.observe(&a.to_record()),
//!     set.observe(&b.to_record()),
//!     set.observe(&c.to_record()),
//! );
//! assert_eq!(ia, ib);
//! assert_ne!(ia, ic);
//! assert_eq!(set.pattern(ia).unwrap().template(), "GET /api/v1/users/<*> HTTP/1.1 200 - via_upstream");
//! assert_eq!(set.counts(ic).unwrap().get(Status::Error), 1);
//! assert_eq!(set.counts(ia).unwrap().total(), 2);
//! ```

use serde::{Deserialize, Serialize};

use super::token::{Token, TokenKind, VarKind, classify_word};
use super::{ConfigError, Miner, MinerConfig, Pattern, PatternId, Slot};
use crate::record::{LogRecord, Status};

/// Counts of the messages of one pattern by [`Status`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct StatusCounts {
    /// `emerg`.
    pub emergency: u64,
    /// `alert`.
    pub alert: u64,
    /// `critical`.
    pub critical: u64,
    /// `error`.
    pub error: u64,
    /// `warn`.
    pub warning: u64,
    /// `notice`.
    pub notice: u64,
    /// `info`.
    pub info: u64,
    /// `debug`.
    pub debug: u64,
    /// `ok`.
    pub ok: u64,
}

impl StatusCounts {
    fn slot(&mut self, s: Status) -> &mut u64 {
        match s {
            Status::Emergency => &mut self.emergency,
            Status::Alert => &mut self.alert,
            Status::Critical => &mut self.critical,
            Status::Error => &mut self.error,
            Status::Warning => &mut self.warning,
            Status::Notice => &mut self.notice,
            Status::Info => &mut self.info,
            Status::Debug => &mut self.debug,
            Status::Ok => &mut self.ok,
        }
    }

    /// The count for one status.
    pub fn get(&self, s: Status) -> u64 {
        let mut c = *self;
        *c.slot(s)
    }

    /// All statuses.
    pub fn total(&self) -> u64 {
        self.iter().map(|(_, n)| n).sum()
    }

    /// `(status, count)` for every status, most severe first.
    pub fn iter(&self) -> impl Iterator<Item = (Status, u64)> + '_ {
        [
            Status::Emergency,
            Status::Alert,
            Status::Critical,
            Status::Error,
            Status::Warning,
            Status::Notice,
            Status::Info,
            Status::Debug,
            Status::Ok,
        ]
        .into_iter()
        .map(|s| (s, self.get(s)))
    }

    fn add(&mut self, other: &StatusCounts) {
        for (s, n) in other.iter() {
            *self.slot(s) += n;
        }
    }
}

/// Counters of what [`PatternSet::observe`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PatternSetStats {
    /// Records observed.
    pub records: u64,
    /// Of which mined from structured access-log fields.
    pub access_logs: u64,
}

/// A pattern miner with per-pattern counts by status: what an agent calls once per
/// record. Bounded by [`MinerConfig::max_patterns`] (limit hits counted in
/// [`Miner::stats`]); serialisable with serde to persist and restore (ids stay valid).
///
/// ```
/// use meshmon_logs::pattern::PatternSet;
/// use meshmon_logs::{LogRecord, Status};
/// let mut set = PatternSet::default();
/// let mut r = LogRecord::new("connection to 10.0.0.1:5432 refused");
/// r.status = Status::Error;
/// let id = set.observe(&r);
/// assert_eq!(set.observe(&LogRecord::new("connection to 10.0.0.2:5432 refused")), id);
/// let json = serde_json::to_string(&set).unwrap();
/// let back: PatternSet = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.counts(id).unwrap().get(Status::Error), 1);
/// assert_eq!(back.counts(id).unwrap().total(), 2);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "SetState", into = "SetState")]
pub struct PatternSet {
    miner: Miner,
    /// Route shapes of access logs, learned across outcomes (see `route_shape`).
    routes: Miner,
    /// Counts by id (index = id; 0 is [`PatternId::OVERFLOW`]); merged ids hold zero.
    counts: Vec<StatusCounts>,
    stats: PatternSetStats,
    msg: String,
    toks: Vec<Token>,
    rtoks: Vec<Token>,
}

#[derive(Serialize, Deserialize)]
struct SetState {
    miner: Miner,
    #[serde(default)]
    routes: Miner,
    counts: Vec<(PatternId, StatusCounts)>,
    #[serde(default)]
    stats: PatternSetStats,
}

impl From<PatternSet> for SetState {
    fn from(s: PatternSet) -> Self {
        let counts = s
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.total() > 0)
            .map(|(i, c)| (PatternId(i as u64), *c))
            .collect();
        SetState {
            miner: s.miner,
            routes: s.routes,
            counts,
            stats: s.stats,
        }
    }
}

impl TryFrom<SetState> for PatternSet {
    type Error = ConfigError;

    fn try_from(s: SetState) -> Result<Self, ConfigError> {
        let mut set = PatternSet::from_miner(s.miner);
        set.routes = s.routes;
        set.stats = s.stats;
        for (id, c) in s.counts {
            let id = set.miner.resolve(id);
            set.slot(id).add(&c);
        }
        Ok(set)
    }
}

impl Default for PatternSet {
    fn default() -> Self {
        Self::from_miner(Miner::default())
    }
}

impl PatternSet {
    /// A pattern set with the given miner configuration (validated).
    pub fn new(config: MinerConfig) -> Result<Self, ConfigError> {
        Ok(Self::from_miner(Miner::new(config)?))
    }

    /// Wraps an existing miner (its patterns start with zero counts).
    pub fn from_miner(mut miner: Miner) -> Self {
        miner.set_merge_log(true);
        Self {
            routes: Miner::new(miner.config().clone()).unwrap_or_default(),
            miner,
            counts: Vec::new(),
            stats: PatternSetStats::default(),
            msg: String::new(),
            toks: Vec::new(),
            rtoks: Vec::new(),
        }
    }

    /// The miner (patterns, templates, regexes, limit counters).
    pub fn miner(&self) -> &Miner {
        &self.miner
    }

    /// What [`PatternSet::observe`] did.
    pub fn stats(&self) -> &PatternSetStats {
        &self.stats
    }

    /// Live patterns.
    pub fn len(&self) -> usize {
        self.miner.len()
    }

    /// Whether no pattern exists yet.
    pub fn is_empty(&self) -> bool {
        self.miner.is_empty()
    }

    /// The live id for an id handed out earlier (see [`Miner::resolve`]).
    pub fn resolve(&self, id: PatternId) -> PatternId {
        self.miner.resolve(id)
    }

    /// The live pattern for `id`.
    pub fn pattern(&self, id: PatternId) -> Option<&Pattern> {
        self.miner.pattern(id)
    }

    /// The counts by status of the live pattern for `id` (including
    /// [`PatternId::OVERFLOW`]); `None` for an id this set never handed out.
    pub fn counts(&self, id: PatternId) -> Option<&StatusCounts> {
        let id = self.miner.resolve(id);
        if id != PatternId::OVERFLOW && !self.miner.is_live(id) {
            return None;
        }
        static ZERO: StatusCounts = StatusCounts {
            emergency: 0,
            alert: 0,
            critical: 0,
            error: 0,
            warning: 0,
            notice: 0,
            info: 0,
            debug: 0,
            ok: 0,
        };
        Some(
            usize::try_from(id.0)
                .ok()
                .and_then(|i| self.counts.get(i))
                .unwrap_or(&ZERO),
        )
    }

    /// Live patterns with their counts, in id order.
    pub fn patterns(&self) -> impl Iterator<Item = (&Pattern, &StatusCounts)> {
        self.miner
            .patterns()
            .filter_map(|p| Some((p, self.counts(p.id())?)))
    }

    fn slot(&mut self, id: PatternId) -> &mut StatusCounts {
        let i = usize::try_from(id.0).unwrap_or(0);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, StatusCounts::default());
        }
        &mut self.counts[i]
    }

    fn apply_merges(&mut self) {
        let merges: Vec<(PatternId, PatternId)> = self.miner.drain_merges().collect();
        for (from, into) in merges {
            let moved = std::mem::take(self.slot(from));
            self.slot(into).add(&moved);
        }
    }

    /// Mines one record and counts it under its pattern's live id and status.
    /// Access-log records (`source: envoy` with `http.status_code`) are mined from their
    /// fields (see the module docs); every other record from its message.
    pub fn observe(&mut self, record: &LogRecord) -> PatternId {
        self.stats.records += 1;
        let id = if is_access_log(record) {
            self.stats.access_logs += 1;
            let mut msg = std::mem::take(&mut self.msg);
            let mut toks = std::mem::take(&mut self.toks);
            access_log_event(record, &mut msg, &mut toks);
            self.route_shape(&msg, &mut toks);
            let id = self.miner.add_prepared(&msg, &toks);
            self.msg = msg;
            self.toks = toks;
            id
        } else {
            self.miner.add(&record.message)
        };
        self.count(id, record.status)
    }

    /// Learns route shapes across all outcomes of a route (a separate miner over the
    /// path tokens, so a name segment seen with many response codes generalises even
    /// for a code seen once), then marks the event's route segments that the learned
    /// shape holds as variables.
    fn route_shape(&mut self, msg: &str, toks: &mut [Token]) {
        // Route tokens: between the method (first) and the protocol (next fixed token).
        let Some(end) = toks
            .iter()
            .skip(1)
            .position(|t| t.kind == TokenKind::Fixed)
            .map(|p| p + 1)
        else {
            return;
        };
        let route = &mut toks[1..end];
        let (Some(first), Some(last)) = (route.first(), route.last()) else {
            return;
        };
        if route.len() < 2 || first.kind == TokenKind::Fixed {
            return;
        }
        let (rs, re) = (first.start, last.end);
        let text = msg.get(rs as usize..re as usize).unwrap_or("");
        self.rtoks.clear();
        self.rtoks.extend(route.iter().map(|t| Token {
            start: t.start - rs,
            end: t.end - rs,
            ..*t
        }));
        let id = self.routes.add_prepared(text, &self.rtoks);
        if let Some(p) = self.routes.pattern(id) {
            for (t, pos) in route.iter_mut().zip(p.positions()) {
                if t.kind == TokenKind::Word && matches!(pos.slot, Slot::Var(_)) {
                    t.kind = TokenKind::Var(VarKind::Any);
                }
            }
        }
    }

    /// The text a record is mined as: its message, or for an access-log record the
    /// event text built from its fields (`GET /api/v1/users/42 HTTP/1.1 200 - via_upstream`);
    /// the pattern's [`Pattern::regex`] matches this text.
    pub fn mined_text(record: &LogRecord) -> String {
        if is_access_log(record) {
            let (mut msg, mut toks) = (String::new(), Vec::new());
            access_log_event(record, &mut msg, &mut toks);
            msg
        } else {
            record.message.clone()
        }
    }

    /// Mines one bare message with a status (records without structure).
    pub fn observe_message(&mut self, message: &str, status: Status) -> PatternId {
        self.stats.records += 1;
        let id = self.miner.add(message);
        self.count(id, status)
    }

    fn count(&mut self, id: PatternId, status: Status) -> PatternId {
        if self.miner.merges.is_empty() {
            *self.slot(id).slot(status) += 1;
            return id;
        }
        self.apply_merges();
        let live = self.miner.resolve(id);
        *self.slot(live).slot(status) += 1;
        id
    }

    /// Merges another pattern set (another miner's, or the state persisted before a
    /// restart): patterns join by template (see [`Miner::merge`]) and counts are summed
    /// under the live ids here. Returns the mapping from `other`'s ids to ids here.
    pub fn merge(&mut self, other: &PatternSet) -> std::collections::HashMap<PatternId, PatternId> {
        let map = self.miner.merge(&other.miner);
        self.apply_merges();
        for (i, c) in other.counts.iter().enumerate() {
            let from = PatternId(i as u64);
            let to = if from == PatternId::OVERFLOW {
                from
            } else {
                match map.get(&from) {
                    Some(t) => self.miner.resolve(*t),
                    None => continue,
                }
            };
            self.slot(to).add(c);
        }
        self.stats.records += other.stats.records;
        self.stats.access_logs += other.stats.access_logs;
        map
    }
}

fn is_access_log(r: &LogRecord) -> bool {
    r.source.as_deref() == Some("envoy") && r.attributes.contains_key("http.status_code")
}

/// Writes the event text of an access-log record into `msg` and its tokens into `toks`:
/// `METHOD ROUTE PROTOCOL CODE FLAGS DETAILS`, everything pinned but the route's
/// variable segments and the query.
fn access_log_event(r: &LogRecord, msg: &mut String, toks: &mut Vec<Token>) {
    msg.clear();
    toks.clear();
    let attr = |k: &str| -> Option<&str> { r.attributes.get(k).and_then(|v| v.as_str()) };
    let mut code_buf = String::new();
    let code = match r.attributes.get("http.status_code") {
        Some(serde_json::Value::Number(n)) => {
            use std::fmt::Write;
            let _ = write!(code_buf, "{n}");
            code_buf.as_str()
        }
        Some(serde_json::Value::String(s)) => s.as_str(),
        _ => "-",
    };
    let fixed = |msg: &mut String, toks: &mut Vec<Token>, text: &str| {
        if !msg.is_empty() {
            msg.push(' ');
        }
        let start = msg.len();
        msg.push_str(if text.is_empty() { "-" } else { text });
        toks.push(Token {
            start: start as u32,
            end: msg.len() as u32,
            kind: TokenKind::Fixed,
            space_before: start > 0,
            group_after: false,
        });
    };
    fixed(msg, toks, attr("http.method").unwrap_or("-"));
    match attr("http.url") {
        Some(url) if url.starts_with('/') => {
            msg.push(' ');
            route_tokens(msg, toks, url);
        }
        other => fixed(msg, toks, other.unwrap_or("-")),
    }
    fixed(msg, toks, attr("http.version").unwrap_or("-"));
    fixed(msg, toks, code);
    fixed(msg, toks, attr("envoy.response_flags").unwrap_or("-"));
    if let Some(d) = attr("envoy.response_code_details") {
        fixed(msg, toks, d);
    }
}

/// Appends a request path's route shape tokens (`msg` ends with the separating space).
fn route_tokens(msg: &mut String, toks: &mut Vec<Token>, url: &str) {
    let (path, query) = match url.find('?') {
        Some(q) => (&url[..q], Some(&url[q + 1..])),
        None => (url, None),
    };
    let mut first = true;
    let mut push = |msg: &mut String, toks: &mut Vec<Token>, text: &str, kind: TokenKind| {
        let start = msg.len();
        msg.push_str(text);
        toks.push(Token {
            start: start as u32,
            end: msg.len() as u32,
            kind,
            space_before: first,
            group_after: false,
        });
        first = false;
    };
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            push(msg, toks, "/", TokenKind::Punct);
        }
        if seg.is_empty() {
            continue;
        }
        push(msg, toks, seg, segment_kind(seg));
    }
    if let Some(q) = query {
        push(msg, toks, "?", TokenKind::Punct);
        if !q.is_empty() {
            push(msg, toks, q, TokenKind::Var(VarKind::KeyValue));
        }
    }
}

/// A path segment is a variable when it holds a digit (API versions `v1`, `v2beta1`
/// excepted) or is a typed value; a word otherwise.
fn segment_kind(seg: &str) -> TokenKind {
    let b = seg.as_bytes();
    if let Some(k) = classify_word(b) {
        return TokenKind::Var(k);
    }
    if !b.iter().any(u8::is_ascii_digit) || is_api_version(b) {
        return TokenKind::Word;
    }
    TokenKind::Var(VarKind::Alnum)
}

/// `v1`, `v2`, `v1beta1`, `v2alpha` (Kubernetes-style API versions).
fn is_api_version(b: &[u8]) -> bool {
    let Some(rest) = b.strip_prefix(b"v") else {
        return false;
    };
    let d = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if d == 0 || d > 2 {
        return false;
    }
    let rest = &rest[d..];
    let rest = rest
        .strip_prefix(b"alpha")
        .or_else(|| rest.strip_prefix(b"beta"))
        .unwrap_or(rest);
    rest.len() <= 2 && rest.iter().all(u8::is_ascii_digit)
}
