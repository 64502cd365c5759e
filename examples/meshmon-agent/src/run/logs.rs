//! The log tailer: files → `meshmon-logs` records → rules → one pattern miner per
//! service/source → the store.
//!
//! - Sources: every container's file under `logs.pod_logs_root` laid out as the kubelet
//!   writes them (`<namespace>_<pod>_<uid>/<container>/<n>.log`) when
//!   `logs.container_collect_all` is on, minus containers excluded by
//!   `autodiscovery.container_exclude` (the seed's `name:datadog-agent`); and explicit
//!   `logs.configs` entries (`type: file`, `path` glob).
//! - Files are known by (device, inode) and the checksum of their first line, as the
//!   Datadog logs agent and Vector's file source know them. Rotation by rename: the old
//!   file is read to its end, the new one from its start. Copy-truncate: a file shorter
//!   than the read offset is read again from 0. A partial last line is held until its
//!   newline; CRI partial lines (`P`) are joined.
//! - Positions are written atomically once per read cycle, and only up to the last line
//!   whose record is in the store: after a crash (even `kill -9`) the agent re-reads at
//!   most the last cycle and skips nothing.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshmon_core::autodiscovery::ContainerFilter;
use meshmon_core::{Metric, MetricValue, Tag, Tags, Timestamp};
use meshmon_logs::LogRecord;
use meshmon_logs::format::{Format, LineParser};
use meshmon_logs::multiline::{Continuation, MultiLine, MultiLineConfig};
use meshmon_logs::pattern::{MinerConfig, PatternId, PatternSet};
use meshmon_logs::rules::{Processor, Rule};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use super::Ctx;
use crate::store::PatternView;
use crate::store::state::{self, Fallback, Loaded};

/// Where a file's records go and how they are tagged.
#[derive(Clone, Debug)]
struct SourceSpec {
    service: String,
    source: String,
    tags: Tags,
    rules: Vec<Rule>,
    multi_line: Option<String>,
}

/// A position as persisted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SavedPosition {
    /// Path when last seen.
    pub path: PathBuf,
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Checksum of the first line (`None` while the file had no complete line).
    pub fingerprint: Option<u64>,
    /// Bytes whose records are in the store.
    pub offset: u64,
}

struct Tailed {
    path: PathBuf,
    dev: u64,
    ino: u64,
    fingerprint: Option<u64>,
    file: File,
    /// Next byte to read.
    read_offset: u64,
    /// Bytes whose records are all in the store (what is persisted).
    committed: u64,
    /// Start offset of the oldest line held (partial line, CRI partial, multi-line).
    pending_start: Option<u64>,
    partial: Vec<u8>,
    partial_start: u64,
    skipping_long_line: bool,
    parser: LineParser,
    multiline: Option<MultiLine>,
    rules: Processor,
    spec: Arc<SourceSpec>,
    /// The path now names another file (or none): read to the end, then close.
    draining: bool,
    lines: u64,
    bytes: u64,
}

#[derive(Default)]
struct MinerEntry {
    /// Patterns with their counts by status (`meshmon_logs::pattern::PatternSet`).
    set: PatternSet,
    service: String,
    source: String,
    /// Lines per (pattern, status) since the last flush into series.
    window: HashMap<(PatternId, &'static str), u64>,
    dirty: bool,
}

/// Persisted pattern sets: one miner per source key, with its counts.
#[derive(Serialize, Deserialize, Default)]
struct SavedMiners {
    miners: Vec<SavedMiner>,
}

#[derive(Serialize, Deserialize)]
struct SavedMiner {
    key: String,
    service: String,
    source: String,
    set: PatternSet,
}

#[derive(Default, Clone, Copy, Serialize)]
struct Counters {
    files_opened: u64,
    files_rotated: u64,
    files_truncated: u64,
    files_skipped_limit: u64,
    lines: u64,
    bytes: u64,
    records: u64,
    excluded_by_rules: u64,
    lines_cut: u64,
    /// Records a `mask_sequences` rule grew past `logs.max_line_bytes`, cut there.
    masked_cut: u64,
    read_errors: u64,
    /// Damaged state files replaced by their previous generation.
    state_files_recovered: u64,
    /// Damaged state files set aside with no usable previous generation.
    state_files_set_aside: u64,
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Checksum of the file's first line (at most 256 bytes); `None` while it has none.
fn fingerprint(path: &Path) -> Option<u64> {
    let mut f = File::open(path).ok()?;
    let mut buf = [0u8; 256];
    let n = f.read(&mut buf).ok()?;
    let end = buf[..n].iter().position(|&b| b == b'\n').map(|i| i + 1);
    match end {
        Some(e) => Some(fnv(&buf[..e])),
        None if n == buf.len() => Some(fnv(&buf)),
        None => None,
    }
}

/// Namespace, pod, uid and container of a kubelet pod log path.
pub fn kubelet_path_parts(root: &Path, file: &Path) -> Option<(String, String, String, String)> {
    let rel = file.strip_prefix(root).ok()?;
    let mut it = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let pod_dir = it.next()?;
    let container = it.next()?;
    let _file = it.next()?;
    let mut parts = pod_dir.splitn(3, '_');
    let ns = parts.next()?.to_owned();
    let pod = parts.next()?.to_owned();
    let uid = parts.next()?.to_owned();
    Some((ns, pod, uid, container))
}

/// The pod's workload name: a Deployment's pod name without its two hash suffixes.
fn app_of(pod: &str) -> &str {
    let mut parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    if parts.len() == 3 && parts[0].len() == 5 && parts[1].len() >= 5 {
        parts.pop().unwrap_or(pod)
    } else {
        pod
    }
}

fn container_spec(ctx: &Ctx, ns: &str, pod: &str, uid: &str, container: &str) -> SourceSpec {
    let mut source = match container {
        "istio-proxy" => "envoy".to_owned(),
        "discovery" | "istiod" => "istio".to_owned(),
        c => c.to_owned(),
    };
    let mut service = if container == "istio-proxy" {
        app_of(pod).to_owned()
    } else {
        container.to_owned()
    };
    let mut tags = ctx.global_tags.clone();
    for (k, v) in [
        ("kube_namespace", ns),
        ("pod_name", pod),
        ("kube_container_name", container),
        ("pod_uid", uid),
    ] {
        if let Ok(t) = Tag::new(k, v) {
            tags.insert(t);
        }
    }
    let mut rules = Vec::new();
    let mut multi_line = None;
    // The pod's `ad.datadoghq.com/<container>.logs` annotation wins, as in the Agent.
    let key = (ns.to_owned(), pod.to_owned(), container.to_owned());
    if let Some(o) = ctx
        .log_overrides
        .read()
        .ok()
        .and_then(|m| m.get(&key).cloned())
    {
        if let Some(s) = o.service {
            service = s;
        }
        if let Some(s) = o.source {
            source = s;
        }
        for t in o.tags {
            if let Ok(t) = t.parse::<Tag>() {
                tags.insert(t);
            }
        }
        (rules, multi_line) = split_rules(&o.rules);
    }
    SourceSpec {
        service,
        source,
        tags,
        rules,
        multi_line,
    }
}

/// Datadog's `log_processing_rules`: the `multi_line` rule's pattern apart, the rest as
/// `meshmon-logs` rules (rules that do not parse were refused by config validation).
fn split_rules(raw: &[serde_json::Value]) -> (Vec<Rule>, Option<String>) {
    let mut rules = Vec::new();
    let mut multi_line = None;
    for r in raw {
        if r.get("type").and_then(|t| t.as_str()) == Some("multi_line") {
            multi_line = r.get("pattern").and_then(|p| p.as_str()).map(str::to_owned);
            continue;
        }
        if let Ok(rule) = serde_json::from_value::<Rule>(r.clone()) {
            rules.push(rule);
        }
    }
    (rules, multi_line)
}

/// Matches one path segment against a glob (`*`, `?`, `[...]`).
fn glob_match(pat: &str, name: &str) -> bool {
    let re = meshmon_prom::mapping::glob_to_regex(pat);
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(name))
}

/// Files matching a path whose last component may be a glob.
fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    let p = Path::new(pattern);
    let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    if !name.contains(['*', '?', '[']) {
        return if p.is_file() {
            vec![p.to_owned()]
        } else {
            Vec::new()
        };
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_str().is_some_and(|n| glob_match(name, n)))
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn pod_log_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(pods) = std::fs::read_dir(root) else {
        return out;
    };
    for pod in pods.filter_map(|e| e.ok()) {
        let Ok(containers) = std::fs::read_dir(pod.path()) else {
            continue;
        };
        for c in containers.filter_map(|e| e.ok()) {
            let Ok(files) = std::fs::read_dir(c.path()) else {
                continue;
            };
            for f in files.filter_map(|e| e.ok()) {
                let p = f.path();
                if p.extension().is_some_and(|e| e == "log") && p.is_file() {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

struct Tailer {
    ctx: Ctx,
    filter: ContainerFilter,
    files: Vec<Tailed>,
    saved: Vec<SavedPosition>,
    miners: BTreeMap<String, MinerEntry>,
    counters: Counters,
    miner_cfg: MinerConfig,
    positions_path: PathBuf,
    patterns_path: PathBuf,
    positions_dirty: bool,
    /// Files found by the first scan start at their end (set when positions were lost).
    start_at_end: bool,
    /// The read buffer (`logs.max_read_bytes`), reused.
    buf: Vec<u8>,
    first_scan: bool,
}

impl Tailer {
    fn new(ctx: Ctx) -> Self {
        let ad = &ctx.cfg.autodiscovery;
        let filter =
            ContainerFilter::new(&ad.container_include, &ad.container_exclude).unwrap_or_default();
        let mut miner_cfg = MinerConfig::default();
        miner_cfg.max_patterns = ctx.cfg.logs.max_patterns;
        miner_cfg.max_samples = ctx.cfg.store.max_samples_per_pattern;
        let positions_path = ctx.state_path("log-positions.json");
        let patterns_path = ctx.state_path("log-patterns.json");
        let mut t = Tailer {
            filter,
            files: Vec::new(),
            saved: Vec::new(),
            miners: BTreeMap::new(),
            counters: Counters::default(),
            miner_cfg,
            positions_path,
            patterns_path,
            positions_dirty: false,
            start_at_end: false,
            buf: Vec::new(),
            first_scan: true,
            ctx,
        };
        t.restore();
        t
    }

    fn restore(&mut self) {
        let now = self.ctx.clock.now().as_secs();
        // A damaged file falls back to its previous generation (one read cycle older:
        // at most that cycle is read again); without either, files present now are read
        // from their end, never all again from their start.
        match state::load_or_previous::<Vec<SavedPosition>>(
            &self.positions_path,
            "log-positions",
            now,
        ) {
            Fallback::Primary(Loaded::Ok(v)) => self.saved = v,
            Fallback::Primary(Loaded::Absent) => {}
            Fallback::Previous {
                data,
                reason,
                moved_to,
            } => {
                self.saved = data;
                self.counters.state_files_recovered += 1;
                self.ctx.log(
                    "ERROR",
                    "logs",
                    &format!(
                        "log positions {reason}; moved to {}. Using the previous generation ({})",
                        moved_to.display(),
                        state::previous_path(&self.positions_path).display()
                    ),
                );
            }
            Fallback::Primary(Loaded::SetAside { reason, moved_to }) => {
                self.start_at_end = true;
                self.counters.state_files_set_aside += 1;
                self.ctx.log(
                    "ERROR",
                    "logs",
                    &format!(
                        "log positions {reason}; moved to {}. Files present now are read from their end",
                        moved_to.display()
                    ),
                );
            }
        }
        let miners = match state::load_or_previous::<SavedMiners>(
            &self.patterns_path,
            "log-patterns",
            now,
        ) {
            Fallback::Primary(Loaded::Ok(s)) => s.miners,
            Fallback::Primary(Loaded::Absent) => Vec::new(),
            Fallback::Previous {
                data,
                reason,
                moved_to,
            } => {
                self.counters.state_files_recovered += 1;
                self.ctx.log(
                    "ERROR",
                    "logs",
                    &format!(
                        "pattern set {reason}; moved to {}. Using the previous generation",
                        moved_to.display()
                    ),
                );
                data.miners
            }
            Fallback::Primary(Loaded::SetAside { reason, moved_to }) => {
                self.counters.state_files_set_aside += 1;
                self.ctx.log(
                    "ERROR",
                    "logs",
                    &format!("pattern set {reason}; moved to {}", moved_to.display()),
                );
                Vec::new()
            }
        };
        for m in miners {
            self.miners.insert(
                m.key,
                MinerEntry {
                    set: m.set,
                    service: m.service,
                    source: m.source,
                    window: HashMap::new(),
                    dirty: true,
                },
            );
        }
    }
}

impl Tailer {
    /// The desired files with their source spec.
    fn wanted(&self) -> Vec<(PathBuf, SourceSpec)> {
        let cfg = &self.ctx.cfg.logs;
        let mut out = Vec::new();
        if cfg.container_collect_all {
            let root = &cfg.pod_logs_root;
            for f in pod_log_files(root) {
                let Some((ns, pod, uid, container)) = kubelet_path_parts(root, &f) else {
                    continue;
                };
                if self.filter.is_excluded(&container, "", &ns) {
                    continue;
                }
                out.push((f, container_spec(&self.ctx, &ns, &pod, &uid, &container)));
            }
        }
        for src in &cfg.configs {
            let (rules, multi_line) = split_rules(&src.log_processing_rules);
            let mut tags = self.ctx.global_tags.clone();
            for t in &src.tags {
                if let Ok(t) = t.parse::<Tag>() {
                    tags.insert(t);
                }
            }
            let spec = SourceSpec {
                service: src.service.clone(),
                source: src.source.clone(),
                tags,
                rules,
                multi_line,
            };
            for f in expand_glob(&src.path) {
                out.push((f, spec.clone()));
            }
        }
        out
    }

    /// Finds new, rotated and removed files.
    fn scan(&mut self) {
        let wanted = self.wanted();
        let mut seen_paths = std::collections::HashSet::new();
        for (path, spec) in wanted {
            seen_paths.insert(path.clone());
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let (dev, ino) = (meta.dev(), meta.ino());
            if let Some(t) = self
                .files
                .iter_mut()
                .find(|t| t.path == path && !t.draining)
            {
                if t.dev == dev && t.ino == ino {
                    continue;
                }
                // Rotated by rename: finish the old file, start the new one.
                t.draining = true;
                self.counters.files_rotated += 1;
            }
            if self.files.iter().any(|t| t.dev == dev && t.ino == ino) {
                continue;
            }
            if self.files.len() >= self.ctx.cfg.logs.max_open_files {
                self.counters.files_skipped_limit += 1;
                continue;
            }
            let fp = fingerprint(&path);
            let saved = self.saved.iter().position(|s| {
                s.dev == dev && s.ino == ino && (s.fingerprint.is_none() || s.fingerprint == fp)
            });
            let mut offset = match saved {
                Some(i) => {
                    let s = self.saved.swap_remove(i);
                    if meta.len() < s.offset {
                        self.counters.files_truncated += 1;
                        0
                    } else {
                        s.offset
                    }
                }
                None if self.first_scan && self.start_at_end => meta.len(),
                None => 0,
            };
            // A file rotated away while the agent was down: finish it first.
            if let Some(i) = self.saved.iter().position(|s| s.path == path) {
                let s = self.saved.swap_remove(i);
                if let Some(old) = find_by_inode(&path, s.dev, s.ino)
                    && let Some(t) = self.open(old, Arc::new(spec.clone()), s.offset, s.fingerprint)
                {
                    let mut t = t;
                    t.draining = true;
                    self.counters.files_rotated += 1;
                    self.files.push(t);
                }
            }
            if offset > meta.len() {
                offset = 0;
            }
            if let Some(t) = self.open(path, Arc::new(spec), offset, fp) {
                self.files.push(t);
            }
        }
        for t in &mut self.files {
            if !seen_paths.contains(&t.path) {
                t.draining = true;
            }
        }
        self.first_scan = false;
    }

    fn open(
        &mut self,
        path: PathBuf,
        spec: Arc<SourceSpec>,
        offset: u64,
        fp: Option<u64>,
    ) -> Option<Tailed> {
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                self.counters.read_errors += 1;
                self.ctx
                    .log("WARN", "logs", &format!("{}: {e}", path.display()));
                return None;
            }
        };
        let meta = file.metadata().ok()?;
        if file.seek(SeekFrom::Start(offset)).is_err() {
            self.counters.read_errors += 1;
            return None;
        }
        let rules = Processor::new(&spec.rules)
            .unwrap_or_else(|_| Processor::new(&[]).unwrap_or_else(|_| unreachable_processor()))
            .with_max_message_bytes(self.ctx.cfg.logs.max_line_bytes);
        let multiline = spec.multi_line.as_ref().and_then(|p| {
            let re = regex::Regex::new(p).ok()?;
            MultiLine::new(Continuation::StartPattern(re), MultiLineConfig::default()).ok()
        });
        self.counters.files_opened += 1;
        self.positions_dirty = true;
        Some(Tailed {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
            fingerprint: fp,
            file,
            read_offset: offset,
            committed: offset,
            pending_start: None,
            partial: Vec::new(),
            partial_start: offset,
            skipping_long_line: false,
            parser: LineParser::new(Format::Auto),
            multiline,
            rules,
            spec,
            draining: false,
            lines: 0,
            bytes: 0,
        })
    }

    /// Reads every file once (at most `logs.max_read_bytes` each); returns whether
    /// anything was read.
    fn read_cycle(&mut self) -> bool {
        let max_read = self.ctx.cfg.logs.max_read_bytes;
        let max_line = self.ctx.cfg.logs.max_line_bytes;
        let now = self.ctx.clock.now();
        let mut records: Vec<(Arc<SourceSpec>, LogRecord)> = Vec::new();
        let mut any = false;
        // One read buffer for the life of the tailer.
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(max_read, 0);
        let mut done = Vec::new();
        for (idx, t) in self.files.iter_mut().enumerate() {
            // Copy-truncate: the file is now shorter than what was read.
            if let Ok(meta) = t.file.metadata()
                && meta.len() < t.read_offset
            {
                self.counters.files_truncated += 1;
                let _ = t.file.seek(SeekFrom::Start(0));
                t.read_offset = 0;
                t.committed = 0;
                t.partial.clear();
                t.partial_start = 0;
                t.pending_start = None;
            }
            let n = match t.file.read(&mut buf) {
                Ok(n) => n,
                Err(_) => {
                    self.counters.read_errors += 1;
                    0
                }
            };
            if n == 0 {
                if t.draining {
                    // End of a rotated or removed file: emit what it still holds.
                    if !t.partial.is_empty() {
                        let line = std::mem::take(&mut t.partial);
                        handle_line(t, &line, t.read_offset, &mut records, &mut self.counters);
                    }
                    flush_held(t, &mut records, now);
                    t.committed = t.read_offset;
                    done.push(idx);
                } else if let Some(ml) = t.multiline.as_mut() {
                    // A held multi-line record times out.
                    if let Some(r) = ml.poll(now) {
                        records.push((t.spec.clone(), r));
                        t.pending_start = None;
                        t.committed = t.partial_start;
                    }
                }
                continue;
            }
            any = true;
            if t.fingerprint.is_none() {
                t.fingerprint = fingerprint(&t.path);
            }
            let chunk = &buf[..n];
            let mut start = 0;
            while let Some(i) = memchr_nl(&chunk[start..]) {
                let end = start + i;
                let line_end_offset = t.read_offset + end as u64 + 1;
                if t.skipping_long_line {
                    t.skipping_long_line = false;
                    t.partial.clear();
                } else if t.partial.is_empty() {
                    let line_start = t.partial_start;
                    handle_line_at(
                        t,
                        &chunk[start..end],
                        line_start,
                        line_end_offset,
                        &mut records,
                        &mut self.counters,
                    );
                } else {
                    t.partial.extend_from_slice(&chunk[start..end]);
                    let line = std::mem::take(&mut t.partial);
                    let line_start = t.partial_start;
                    handle_line_at(
                        t,
                        &line,
                        line_start,
                        line_end_offset,
                        &mut records,
                        &mut self.counters,
                    );
                }
                t.partial_start = line_end_offset;
                start = end + 1;
            }
            if start < n && !t.skipping_long_line {
                t.partial.extend_from_slice(&chunk[start..]);
                if t.partial.len() > max_line {
                    // A line over the limit: emit its first max_line bytes, skip the rest.
                    self.counters.lines_cut += 1;
                    let mut line = std::mem::take(&mut t.partial);
                    line.truncate(max_line);
                    let ls = t.partial_start;
                    handle_line_at(t, &line, ls, ls, &mut records, &mut self.counters);
                    t.skipping_long_line = true;
                }
            }
            t.read_offset += n as u64;
            t.bytes += n as u64;
            self.counters.bytes += n as u64;
        }
        self.buf = buf;
        // Records → miners → store; then positions may advance.
        self.mine(records, now);
        for idx in done.into_iter().rev() {
            self.files.remove(idx);
        }
        if any {
            self.positions_dirty = true;
        }
        any
    }

    fn mine(&mut self, records: Vec<(Arc<SourceSpec>, LogRecord)>, now: Timestamp) {
        let mut logs_window: HashMap<(String, String, &'static str), u64> = HashMap::new();
        let mut correlated = Vec::new();
        for (spec, mut rec) in records {
            if rec.service.is_none() && !spec.service.is_empty() {
                rec.service = Some(spec.service.clone());
            }
            if !spec.source.is_empty() {
                rec.source = Some(spec.source.clone());
            }
            if !spec.tags.is_empty() {
                rec.tags = rec.tags.union(&spec.tags);
            }
            self.counters.records += 1;
            correlated.extend(crate::store::correlate::entry(&rec, now));
            let service = rec.service.clone().unwrap_or_default();
            let source = rec.source.clone().unwrap_or_default();
            let key = format!("{service}/{source}");
            let cfg = &self.miner_cfg;
            let entry = self.miners.entry(key).or_insert_with(|| MinerEntry {
                set: PatternSet::new(cfg.clone()).unwrap_or_default(),
                service: service.clone(),
                source: source.clone(),
                ..MinerEntry::default()
            });
            let id = entry.set.observe(&rec);
            let status = rec.status.as_str();
            *entry.window.entry((id, status)).or_default() += 1;
            entry.dirty = true;
            *logs_window.entry((service, source, status)).or_default() += 1;
        }
        let mut metrics = Vec::new();
        let base = |service: &str, source: &str| {
            let mut t = self.ctx.global_tags.clone();
            if let Ok(tag) = Tag::new("service", service) {
                t.insert(tag);
            }
            if let Ok(tag) = Tag::new("source", source) {
                t.insert(tag);
            }
            t
        };
        for ((service, source, status), n) in logs_window {
            let mut tags = base(&service, &source);
            if let Ok(tag) = Tag::new("status", status) {
                tags.insert(tag);
            }
            metrics.push(Metric::new(
                "logs.count",
                MetricValue::Count(n as f64),
                tags,
                now,
            ));
        }
        let mut views: Vec<(String, Vec<PatternView>)> = Vec::new();
        for (key, e) in self.miners.iter_mut() {
            if !e.dirty {
                continue;
            }
            // Ids merged by the miner resolve to their survivor.
            for ((id, status), n) in e.window.drain() {
                let id = e.set.resolve(id);
                let mut tags = base(&e.service, &e.source);
                for (k, v) in [
                    ("status", status.to_owned()),
                    ("pattern_id", id.to_string()),
                ] {
                    if let Ok(tag) = Tag::new(k, &v) {
                        tags.insert(tag);
                    }
                }
                metrics.push(Metric::new(
                    "logs.pattern.count",
                    MetricValue::Count(n as f64),
                    tags,
                    now,
                ));
            }
            let v: Vec<PatternView> = e
                .set
                .patterns()
                .map(|(p, counts)| PatternView {
                    id: p.id().get(),
                    service: e.service.clone(),
                    source: e.source.clone(),
                    template: p.template(),
                    regex: p.regex(),
                    count: counts.total(),
                    statuses: counts
                        .iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(s, n)| (s.as_str().to_owned(), n))
                        .collect(),
                    samples: p.samples().to_vec(),
                })
                .collect();
            views.push((key.clone(), v));
            e.dirty = false;
        }
        if let Ok(mut st) = self.ctx.store.write() {
            st.exports
                .offer(&metrics, self.ctx.cfg.logs.read_interval.0);
            st.insert_metrics(metrics);
            st.correlation.insert_all(correlated);
            for (k, v) in views {
                st.set_patterns(&k, v);
            }
        }
    }

    fn persist_positions(&mut self) {
        if !self.positions_dirty {
            return;
        }
        let mut v: Vec<SavedPosition> = self
            .files
            .iter()
            .map(|t| SavedPosition {
                path: t.path.clone(),
                dev: t.dev,
                ino: t.ino,
                fingerprint: t.fingerprint,
                offset: t.committed,
            })
            .collect();
        // Positions of files not seen this run stay (a file may come back).
        v.extend(self.saved.iter().cloned());
        match state::save_keeping_previous(&self.positions_path, "log-positions", &v) {
            Ok(()) => self.positions_dirty = false,
            Err(e) => self
                .ctx
                .log("ERROR", "logs", &format!("saving positions: {e}")),
        }
    }

    fn persist_patterns(&self) {
        let miners = self
            .miners
            .iter()
            .map(|(k, e)| SavedMiner {
                key: k.clone(),
                service: e.service.clone(),
                source: e.source.clone(),
                set: e.set.clone(),
            })
            .collect();
        if let Err(e) = state::save_keeping_previous(
            &self.patterns_path,
            "log-patterns",
            &SavedMiners { miners },
        ) {
            self.ctx
                .log("ERROR", "logs", &format!("saving patterns: {e}"));
        }
    }

    fn publish(&self) {
        let c = self.counters;
        let files: Vec<serde_json::Value> = self
            .files
            .iter()
            .map(|t| {
                json!({
                    "path": t.path, "service": t.spec.service, "source": t.spec.source,
                    "offset": t.read_offset, "committed": t.committed, "lines": t.lines,
                    "bytes": t.bytes, "draining": t.draining,
                })
            })
            .collect();
        self.ctx.set_component(
            "logs",
            json!({ "counters": c, "files": files, "miners": self.miners.len() }),
        );
        let Ok(mut st) = self.ctx.store.write() else {
            return;
        };
        let t = &mut st.telemetry;
        for (name, help, v) in [
            ("meshmon_logs_lines_total", "Log lines read.", c.lines),
            ("meshmon_logs_bytes_total", "Log bytes read.", c.bytes),
            (
                "meshmon_logs_records_total",
                "Log records mined.",
                c.records,
            ),
            (
                "meshmon_logs_excluded_total",
                "Log records excluded by processing rules.",
                c.excluded_by_rules,
            ),
            (
                "meshmon_logs_lines_cut_total",
                "Log lines cut at logs.max_line_bytes.",
                c.lines_cut,
            ),
            (
                "meshmon_logs_masked_cut_total",
                "Log records a mask_sequences rule grew past logs.max_line_bytes, cut there.",
                c.masked_cut,
            ),
            (
                "meshmon_logs_files_rotated_total",
                "Rotations seen.",
                c.files_rotated,
            ),
            (
                "meshmon_logs_files_truncated_total",
                "Copy-truncations seen.",
                c.files_truncated,
            ),
            (
                "meshmon_logs_files_skipped_total",
                "Files not tailed because of logs.max_open_files.",
                c.files_skipped_limit,
            ),
            (
                "meshmon_logs_read_errors_total",
                "File read errors.",
                c.read_errors,
            ),
            (
                "meshmon_logs_state_files_recovered_total",
                "Damaged log state files (positions, patterns) replaced by their previous generation.",
                c.state_files_recovered,
            ),
            (
                "meshmon_logs_state_files_set_aside_total",
                "Damaged log state files set aside with no usable previous generation.",
                c.state_files_set_aside,
            ),
        ] {
            t.set(name, "counter", help, &[], v as f64);
        }
        t.set(
            "meshmon_logs_files",
            "gauge",
            "Files tailed.",
            &[],
            self.files.len() as f64,
        );
        // The pattern bound (`logs.max_patterns` per miner), counted when hit.
        let (mut forced, mut overflowed, mut patterns) = (0u64, 0u64, 0usize);
        for e in self.miners.values() {
            let st = e.set.miner().stats();
            forced += st.forced;
            overflowed += st.overflowed;
            patterns += e.set.len();
        }
        t.set(
            "meshmon_logs_patterns",
            "gauge",
            "Log patterns across miners.",
            &[],
            patterns as f64,
        );
        let help = "Lines that met logs.max_patterns: joined the closest pattern (forced) or the overflow pattern.";
        t.set(
            "meshmon_logs_pattern_limit_hits_total",
            "counter",
            help,
            &[("outcome", "forced")],
            forced as f64,
        );
        t.set(
            "meshmon_logs_pattern_limit_hits_total",
            "counter",
            help,
            &[("outcome", "overflow")],
            overflowed as f64,
        );
        for f in &self.files {
            let p = f.path.to_string_lossy();
            let labels = [("path", p.as_ref()), ("service", f.spec.service.as_str())];
            t.set(
                "meshmon_logs_file_lines_total",
                "counter",
                "Log lines read per file.",
                &labels,
                f.lines as f64,
            );
            t.set(
                "meshmon_logs_file_bytes_total",
                "counter",
                "Log bytes read per file.",
                &labels,
                f.bytes as f64,
            );
        }
    }
}

fn unreachable_processor() -> Processor {
    // `Processor::new(&[])` cannot fail: no rule, no regex. Keep a total function anyway.
    match Processor::new(&[]) {
        Ok(p) => p,
        Err(_) => std::process::abort(),
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// A file in `path`'s folder with this inode (the rotated-away name).
fn find_by_inode(path: &Path, dev: u64, ino: u64) -> Option<PathBuf> {
    let dir = path.parent()?;
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let m = e.metadata().ok()?;
            (m.dev() == dev && m.ino() == ino && e.path() != path).then(|| e.path())
        })
}

fn handle_line(
    t: &mut Tailed,
    line: &[u8],
    end_offset: u64,
    out: &mut Vec<(Arc<SourceSpec>, LogRecord)>,
    c: &mut Counters,
) {
    let start = t.partial_start;
    handle_line_at(t, line, start, end_offset, out, c);
}

/// One complete line starting at `start`, ending before `end`.
fn handle_line_at(
    t: &mut Tailed,
    line: &[u8],
    start: u64,
    end: u64,
    out: &mut Vec<(Arc<SourceSpec>, LogRecord)>,
    c: &mut Counters,
) {
    t.lines += 1;
    c.lines += 1;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        if t.pending_start.is_none() {
            t.committed = end;
        }
        return;
    }
    let Some(mut rec) = t.parser.parse(line) else {
        // A CRI partial line: held by the joiner.
        t.pending_start.get_or_insert(start);
        return;
    };
    let first = t.pending_start.take().unwrap_or(start);
    let cut_before = t.rules.stats.mask_truncated;
    let kept = t.rules.process(&mut rec);
    c.masked_cut += t.rules.stats.mask_truncated - cut_before;
    if !kept {
        c.excluded_by_rules += 1;
        t.committed = if t.multiline.is_some() {
            t.committed
        } else {
            end
        };
        return;
    }
    match t.multiline.as_mut() {
        None => {
            out.push((t.spec.clone(), rec));
            t.committed = end;
        }
        Some(ml) => {
            let ts = rec.timestamp.unwrap_or_default();
            if let Some(done) = ml.push(rec, ts) {
                out.push((t.spec.clone(), done));
                // The record just pushed is held: it starts at `first`.
                t.committed = first;
            }
            t.pending_start = Some(first);
        }
    }
}

fn flush_held(t: &mut Tailed, out: &mut Vec<(Arc<SourceSpec>, LogRecord)>, _now: Timestamp) {
    for r in t.parser.flush() {
        out.push((t.spec.clone(), r));
    }
    if let Some(ml) = t.multiline.as_mut()
        && let Some(r) = ml.flush()
    {
        out.push((t.spec.clone(), r));
    }
    t.pending_start = None;
}

/// Runs the tailer until shutdown; then reads what is left, persists positions and
/// pattern sets.
pub async fn run(ctx: Ctx, mut shutdown: watch::Receiver<bool>) {
    let scan_every = ctx.cfg.logs.scan_interval.0;
    let read_every = ctx.cfg.logs.read_interval.0;
    let mut t = tokio::task::block_in_place(|| Tailer::new(ctx.clone()));
    let mut last_scan: Option<std::time::Instant> = None;
    loop {
        let stop = *shutdown.borrow();
        let scan_due = last_scan.is_none_or(|s| s.elapsed() >= scan_every);
        tokio::task::block_in_place(|| {
            if scan_due {
                t.scan();
            }
            // Read until caught up (each pass bounded per file), then persist.
            let mut passes = 0;
            while t.read_cycle() && passes < 64 {
                passes += 1;
            }
            // Counts first, then positions: a crash between the two re-reads one batch
            // (counted twice) but never skips a line's count.
            if t.positions_dirty || stop {
                t.persist_patterns();
            }
            t.persist_positions();
            t.publish();
        });
        if scan_due {
            last_scan = Some(std::time::Instant::now());
        }
        if stop {
            return;
        }
        tokio::select! {
            _ = super::stopped(&mut shutdown) => {}
            _ = tokio::time::sleep(read_every) => {}
        }
    }
}
