//! `meshmon-agent trace …`: trace intake and sampling tools (meshmon-trace).
//!
//! - `decode FILE`: summary JSON (or `--spans` JSON lines) of a payload file.
//! - `serve`: a Datadog (`:8126`) and Zipkin (`:9411`) intake server on tokio + hyper that
//!   writes kept spans as JSON lines and prints the service map and RED table on exit.
//! - `sample --rate R ID…`: Datadog's deterministic rate sampler.
//! - `bench FILE`: decoding throughput.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use clap::Subcommand;
use meshmon_core::Timestamp;
use meshmon_trace::assembly::{AssemblerConfig, TraceAssembler};
use meshmon_trace::decode::{self, Format, Limits};
use meshmon_trace::receiver::{Receiver, ReceiverConfig, Request};
use meshmon_trace::sampler::{SamplerConfig, TailConfig, TailSampler, sample_by_rate};
use meshmon_trace::servicemap::ServiceMap;
use meshmon_trace::stats::RedTable;
use meshmon_trace::stats::apm_metrics;

/// `trace` subcommands.
#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// Decodes a payload file and prints a JSON summary (or every span as JSON lines).
    Decode {
        /// The payload (msgpack or JSON body as sent to the intake).
        file: PathBuf,
        /// v04, v05, v07, json, zipkin or auto (sniffed from the bytes).
        #[arg(long, default_value = "auto")]
        format: String,
        /// Print every span as a JSON line instead of the summary.
        #[arg(long)]
        spans: bool,
    },
    /// Runs the intake server until SIGINT/SIGTERM.
    Serve {
        /// Datadog intake address.
        #[arg(long, default_value = "127.0.0.1:8126")]
        listen: SocketAddr,
        /// Zipkin intake address (`/api/v2/spans`); off when absent.
        #[arg(long)]
        zipkin: Option<SocketAddr>,
        /// Publish this rate to tracers in `rate_by_service` instead of computed rates.
        #[arg(long)]
        rate: Option<f64>,
        /// Write kept spans as JSON lines here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Write a JSON summary (services, service map, RED stats, counters) here on exit.
        #[arg(long)]
        summary: Option<PathBuf>,
        /// Seconds without new spans after which a trace is complete.
        #[arg(long, default_value_t = 10.0)]
        trace_timeout: f64,
        /// `env` for spans without one.
        #[arg(long, default_value = "")]
        env: String,
    },
    /// Prints `ID keep` or `ID drop` for each trace id at the given rate.
    Sample {
        /// Sampling rate between 0 and 1.
        #[arg(long)]
        rate: f64,
        /// Trace ids (decimal, or 0x-prefixed hex; the low 64 bits are used).
        #[arg(required = true)]
        trace_ids: Vec<String>,
    },
    /// Measures decoding throughput of a payload file.
    Bench {
        /// The payload file.
        file: PathBuf,
        /// How long to run.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Format, or auto.
        #[arg(long, default_value = "auto")]
        format: String,
    },
}

/// Runs a `trace` subcommand.
pub fn run(cmd: TraceCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TraceCommand::Decode {
            file,
            format,
            spans,
        } => decode_cmd(&file, &format, spans),
        TraceCommand::Sample { rate, trace_ids } => {
            let mut out = std::io::stdout().lock();
            for id in trace_ids {
                let v = parse_trace_id(&id)?;
                writeln!(
                    out,
                    "{id} {}",
                    if sample_by_rate(v, rate) {
                        "keep"
                    } else {
                        "drop"
                    }
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        TraceCommand::Bench {
            file,
            seconds,
            format,
        } => bench_cmd(&file, seconds, &format),
        TraceCommand::Serve {
            listen,
            zipkin,
            rate,
            output,
            summary,
            trace_timeout,
            env,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(serve(ServeOpts {
                listen,
                zipkin,
                rate,
                output,
                summary,
                trace_timeout,
                env,
            }))
        }
    }
}

fn parse_trace_id(s: &str) -> anyhow::Result<u64> {
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u128::from_str_radix(h, 16)
    } else {
        s.parse::<u128>()
    }
    .map_err(|e| anyhow!("invalid trace id {s:?}: {e}"))?;
    Ok(v as u64)
}

fn format_arg(s: &str, body: &[u8]) -> anyhow::Result<Format> {
    if s == "auto" {
        Ok(Format::sniff(body))
    } else {
        s.parse::<Format>().map_err(|e| anyhow!(e))
    }
}

fn decode_cmd(file: &PathBuf, format: &str, spans: bool) -> anyhow::Result<ExitCode> {
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let format = format_arg(format, &body)?;
    let p = decode::decode(format, &body, &Limits::default())
        .with_context(|| format!("decoding {} as {}", file.display(), format.as_str()))?;
    let mut out = std::io::stdout().lock();
    if spans {
        for s in p.spans() {
            serde_json::to_writer(&mut out, &s.to_json())?;
            out.write_all(b"\n")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let services: BTreeSet<&str> = p.spans().map(|s| s.service.as_ref()).collect();
    let traces: BTreeSet<u64> = p.spans().map(|s| s.trace_id).collect();
    let summary = serde_json::json!({
        "format": format.as_str(),
        "chunks": p.chunks.len(),
        "traces": traces.len(),
        "spans": p.span_count(),
        "services": services,
        "errors": p.spans().filter(|s| s.is_error()).count(),
    });
    serde_json::to_writer_pretty(&mut out, &summary)?;
    out.write_all(b"\n")?;
    Ok(ExitCode::SUCCESS)
}

fn bench_cmd(file: &PathBuf, seconds: f64, format: &str) -> anyhow::Result<ExitCode> {
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let format = format_arg(format, &body)?;
    let limits = Limits::default();
    let per = decode::decode(format, &body, &limits)?.span_count();
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    let mut spans = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        spans += std::hint::black_box(decode::decode(format, &body, &limits)?).span_count();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => Some((b - a) as f64 / 1e9),
        _ => None,
    };
    println!(
        "{}",
        serde_json::json!({
            "format": format.as_str(),
            "spans_per_payload": per,
            "spans": spans,
            "seconds": secs,
            "spans_per_s": spans as f64 / secs,
            "cpu_seconds": cpu,
            "spans_per_cpu_s": cpu.map(|c| spans as f64 / c),
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// CPU time of this thread (Linux `/proc/thread-self/schedstat`), so throughput per core
/// can be reported on a busy machine.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

struct ServeOpts {
    listen: SocketAddr,
    zipkin: Option<SocketAddr>,
    rate: Option<f64>,
    output: Option<PathBuf>,
    summary: Option<PathBuf>,
    trace_timeout: f64,
    env: String,
}

/// Everything behind the server's lock.
struct State {
    receiver: Receiver,
    assembler: TraceAssembler,
    tail: TailSampler,
    map: ServiceMap,
    red: RedTable,
    services: BTreeSet<String>,
    out: Box<dyn Write + Send>,
    traces_written: u64,
    spans_written: u64,
    series: u64,
    endpoints: std::collections::BTreeMap<&'static str, u64>,
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_nanos(d.as_nanos() as i64)
}

impl State {
    /// Moves kept chunks into the assembler, completes idle traces, writes them.
    fn pump(&mut self, now: Timestamp, all: bool) -> anyhow::Result<()> {
        let mut done = Vec::new();
        for q in self.receiver.drain_kept() {
            let endpoint = q.info().endpoint.map_or("", |e| e.path());
            *self.endpoints.entry(endpoint).or_default() += q.chunks().len() as u64;
            for k in q.into_owned_chunks() {
                done.extend(self.assembler.add_kept(k, now));
            }
        }
        done.extend(if all {
            self.assembler.flush_all()
        } else {
            self.assembler.flush(now)
        });
        for t in done {
            self.map.add_trace(&t.spans);
            if !self.tail.decide(now, &t.spans).keep() {
                continue;
            }
            self.traces_written += 1;
            for s in &t.spans {
                self.services.insert(s.service.to_string());
                serde_json::to_writer(&mut self.out, &s.to_json())?;
                self.out.write_all(b"\n")?;
                self.spans_written += 1;
            }
        }
        self.out.flush()?;
        for b in self.receiver.flush_stats(now, all) {
            self.series += apm_metrics(&b).len() as u64;
            self.red.merge(&b);
        }
        Ok(())
    }

    fn summary_json(&self) -> serde_json::Value {
        let c = self.receiver.counters();
        let ns = |d: Duration| d.as_nanos() as u64;
        serde_json::json!({
            "services": self.services,
            "service_map": self.map.edges().iter().map(|e| serde_json::json!({
                "caller": e.caller, "callee": e.callee, "calls": e.stats.calls, "errors": e.stats.errors,
                "p50_ns": ns(e.stats.latency.quantile(0.5)), "p99_ns": ns(e.stats.latency.quantile(0.99)),
            })).collect::<Vec<_>>(),
            "red": self.red.groups.iter().map(|(k, g)| serde_json::json!({
                "env": k.env, "service": k.service, "resource": k.resource, "name": k.name, "span_kind": k.span_kind,
                "top_level": k.top_level, "status_class": k.status_class, "hits": g.hits, "errors": g.errors,
                "p50_ns": ns(g.quantile(0.5)), "p95_ns": ns(g.quantile(0.95)), "p99_ns": ns(g.quantile(0.99)), "max_ns": ns(g.latency.max()),
            })).collect::<Vec<_>>(),
            "apm_series": self.series,
            "counters": {
                "payloads": c.payloads, "payloads_invalid": c.payloads_invalid, "payloads_too_large": c.payloads_too_large,
                "payloads_queue_full": c.payloads_queue_full, "traces_received": c.traces_received,
                "spans_received": c.spans_received, "spans_kept": c.spans_kept, "spans_sampled_out": c.spans_sampled_out,
                "spans_dropped_normalize": c.spans_dropped_normalize, "spans_dropped_queue_full": c.spans_dropped_queue_full,
                "balanced": c.balanced(),
            },
            "chunks_by_endpoint": self.endpoints,
            "traces_written": self.traces_written,
            "spans_written": self.spans_written,
        })
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: hyper::Request<hyper::body::Incoming>,
    zipkin_only: bool,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let limit = state
        .lock()
        .map(|s| s.receiver.config().limits.max_body_bytes)
        .unwrap_or(25 << 20);
    let reply = |status: u16, msg: &str| {
        let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
            msg.to_string(),
        )));
        *r.status_mut() =
            hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        r
    };
    let path = parts.uri.path().to_string();
    if zipkin_only && path != "/api/v2/spans" {
        return Ok(reply(404, "404 page not found\n"));
    }
    let body = match http_body_util::Limited::new(body, limit + 1)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(413, "payload too large\n")),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let hdrs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = match state.lock() {
        Ok(mut st) => st.receiver.handle(
            &Request {
                method: parts.method.as_str(),
                path: &path,
                headers: &hdrs,
                body,
            },
            now(),
        ),
        Err(_) => return Ok(reply(500, "internal error\n")),
    };
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(resp.body)));
    *r.status_mut() = hyper::StatusCode::from_u16(resp.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in resp.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::try_from(k),
            hyper::header::HeaderValue::try_from(v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    Ok(r)
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    state: Arc<Mutex<State>>,
    zipkin_only: bool,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req| handle(state.clone(), req, zipkin_only));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn serve(o: ServeOpts) -> anyhow::Result<ExitCode> {
    let out: Box<dyn Write + Send> = match &o.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout()),
    };
    let config = ReceiverConfig::default()
        .with_sampler(SamplerConfig::default().with_fixed_rate(o.rate)?)
        .with_default_env(o.env.clone());
    let timeout = Duration::try_from_secs_f64(o.trace_timeout)
        .map_err(|e| anyhow!("--trace-timeout {}: {e}", o.trace_timeout))?;
    let state = Arc::new(Mutex::new(State {
        receiver: Receiver::new(config)?,
        assembler: TraceAssembler::new(
            AssemblerConfig::default().with_inactivity_timeout(timeout)?,
        ),
        tail: TailSampler::new(TailConfig::default()),
        map: ServiceMap::new(),
        red: RedTable::default(),
        services: BTreeSet::new(),
        out,
        traces_written: 0,
        spans_written: 0,
        series: 0,
        endpoints: std::collections::BTreeMap::new(),
    }));
    let dd = tokio::net::TcpListener::bind(o.listen)
        .await
        .with_context(|| format!("binding {}", o.listen))?;
    eprintln!(
        "meshmon-agent trace serve: Datadog intake on http://{}",
        dd.local_addr()?
    );
    tokio::spawn(accept_loop(dd, state.clone(), false));
    if let Some(z) = o.zipkin {
        let zl = tokio::net::TcpListener::bind(z)
            .await
            .with_context(|| format!("binding {z}"))?;
        eprintln!(
            "meshmon-agent trace serve: Zipkin intake on http://{}/api/v2/spans",
            zl.local_addr()?
        );
        tokio::spawn(accept_loop(zl, state.clone(), true));
    }
    let pump_state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if let Ok(mut st) = pump_state.lock()
                && let Err(e) = st.pump(now(), false)
            {
                eprintln!("meshmon-agent trace serve: writing spans: {e:#}");
            }
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    let mut st = state.lock().map_err(|_| anyhow!("state lock poisoned"))?;
    st.pump(now(), true)?;
    eprintln!("\nservice map:\n{}", st.map.render());
    eprintln!(
        "RED (per service, resource, kind, status class):\n{}",
        st.red.render()
    );
    let c = st.receiver.counters();
    eprintln!(
        "spans: received {} = kept {} + sampled out {} + dropped {} (normalize) + {} (queue full); balanced: {}",
        c.spans_received,
        c.spans_kept,
        c.spans_sampled_out,
        c.spans_dropped_normalize,
        c.spans_dropped_queue_full,
        c.balanced()
    );
    if let Some(p) = &o.summary {
        std::fs::write(p, serde_json::to_vec_pretty(&st.summary_json())?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
