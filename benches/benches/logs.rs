//! Benchmarks for meshmon-logs: online pattern mining throughput on a deterministic corpus
//! of 100k and 1M lines, with the `logdrain` and `drain3` crates measured in the same run.
//!
//! The corpus mixes the messages of every Loghub-2k dataset present under
//! `../shared/data/loghub-2k` (headers stripped with each dataset's `log_format`), drawn
//! uniformly with a fixed seed, with every digit re-drawn: variable values change while
//! the templates, and so the realistic pattern count, stay. A second corpus, `streams`
//! (CPU time only), keeps each dataset's lines in order, one dataset after the other,
//! digits re-drawn the same way: what one miner per source sees in the agent. Set
//! `MESHMON_LOGS_CORPUS_OUT=<path>` to also write the 1M-line corpus to a file (for the
//! Python Drain3 comparison in `scripts/logs-drain3/`).
//!
//! Under `cargo test --all-targets` (criterion's test mode) the corpora are 10k lines so
//! the run stays quick.

// Benchmark setup may unwrap: a failure there is a broken benchmark, which the panic reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::OnceLock;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// SplitMix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The message part of every line of every Loghub-2k dataset present.
fn pool() -> Vec<String> {
    let Some(formats) = meshmon_benches::read_corpus("loghub-2k/formats.json") else {
        return Vec::new();
    };
    let formats: serde_json::Value = match serde_json::from_slice(&formats) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("meshmon-benches: loghub-2k/formats.json: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let Some(sets) = formats["datasets"].as_object() else {
        return out;
    };
    let mut names: Vec<&String> = sets.keys().collect();
    names.sort();
    for name in names {
        let ds = &sets[name];
        let (Some(file), Some(fmt)) = (ds["log_file"].as_str(), ds["log_format"].as_str()) else {
            continue;
        };
        let Some(text) = meshmon_benches::read_corpus(&format!("loghub-2k/{file}")) else {
            continue;
        };
        let Ok(re) = regex::Regex::new(&meshmon_logs::eval::loghub_format_regex(fmt)) else {
            continue;
        };
        for line in String::from_utf8_lossy(&text).lines() {
            let line = line.trim();
            match re.captures(line).and_then(|c| c.name("Content")) {
                Some(m) => out.push(m.as_str().to_owned()),
                None => out.push(line.to_owned()),
            }
        }
    }
    out
}

/// `n` lines drawn from the pool with re-drawn digits, as one buffer plus line ends.
struct Corpus {
    text: String,
    ends: Vec<usize>,
}

impl Corpus {
    /// `n` lines drawn uniformly from the pool (`streams` false), or the pool's lines in
    /// order, one dataset after the other and round again (`streams` true: what one
    /// miner per source sees, the agent's case), every digit re-drawn.
    fn build(pool: &[String], n: usize, seed: u64, streams: bool) -> Self {
        let mut rng = Rng(seed);
        let mut text = String::with_capacity(n * 100);
        let mut ends = Vec::with_capacity(n);
        for i in 0..n {
            let at = if streams {
                i % pool.len()
            } else {
                (rng.next() % pool.len() as u64) as usize
            };
            let msg = &pool[at];
            let mut bits = rng.next();
            let mut left = 16;
            for c in msg.chars() {
                if c.is_ascii_digit() {
                    if left == 0 {
                        bits = rng.next();
                        left = 16;
                    }
                    text.push(char::from(b'0' + (bits & 0xf) as u8 % 10));
                    bits >>= 4;
                    left -= 1;
                } else {
                    text.push(c);
                }
            }
            ends.push(text.len());
        }
        Self { text, ends }
    }

    fn lines(&self) -> impl Iterator<Item = &str> {
        let mut start = 0;
        self.ends.iter().map(move |&e| {
            let s = &self.text[start..e];
            start = e;
            s
        })
    }
}

/// Criterion's test mode: `cargo test` runs the bench binary without `--bench`.
fn test_mode() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// The per-source corpora ([`Corpus::build`] with `streams`), measured once per miner
/// by CPU time only.
fn stream_corpora() -> &'static [(usize, Corpus)] {
    static C: OnceLock<Vec<(usize, Corpus)>> = OnceLock::new();
    C.get_or_init(|| {
        let pool = pool();
        if pool.is_empty() || test_mode() {
            return Vec::new();
        }
        [100_000, 1_000_000]
            .iter()
            .map(|&n| (n, Corpus::build(&pool, n, 0x5eed, true)))
            .collect()
    })
}

fn corpora() -> &'static [(usize, Corpus)] {
    static C: OnceLock<Vec<(usize, Corpus)>> = OnceLock::new();
    C.get_or_init(|| {
        let pool = pool();
        if pool.is_empty() {
            return Vec::new();
        }
        let sizes: &[usize] = if test_mode() {
            &[10_000]
        } else {
            &[100_000, 1_000_000]
        };
        let out: Vec<(usize, Corpus)> = sizes
            .iter()
            .map(|&n| (n, Corpus::build(&pool, n, 0x5eed, false)))
            .collect();
        if let (Some(path), Some((_, big))) =
            (std::env::var_os("MESHMON_LOGS_CORPUS_OUT"), out.last())
        {
            let mut s = String::with_capacity(big.text.len() + big.ends.len());
            for l in big.lines() {
                s.push_str(l);
                s.push('\n');
            }
            if let Err(e) = std::fs::write(&path, s) {
                eprintln!("meshmon-benches: writing {}: {e}", path.to_string_lossy());
            }
        }
        out
    })
}

fn run_ours(corpus: &Corpus) -> usize {
    let mut m = meshmon_logs::pattern::Miner::default();
    let mut acc = 0u64;
    for line in corpus.lines() {
        acc = acc.wrapping_add(m.add(line).get());
    }
    black_box(acc);
    m.len()
}

fn run_logdrain(corpus: &Corpus) -> usize {
    let m = logdrain::Miner::from_options(logdrain::Options::default());
    for line in corpus.lines() {
        black_box(m.add(line));
    }
    m.len()
}

fn run_drain3(corpus: &Corpus) -> usize {
    let mut m = drain3::Matcher::new(drain3::Config::default());
    // Cluster ids are sequential: the largest one seen counts the clusters.
    let mut clusters = 0;
    for line in corpus.lines() {
        if let Ok(t) = m.add_log_message(line) {
            clusters = clusters.max(t.id());
        }
    }
    clusters
}

fn mine(c: &mut Criterion) {
    let corpora = corpora();
    if corpora.is_empty() {
        return;
    }
    // Sources in turn (each dataset's lines in order): CPU time only.
    for (n, corpus) in stream_corpora() {
        let n = *n;
        cpu_once("streams", "meshmon-logs", n, || run_ours(corpus));
        cpu_once("streams", "logdrain", n, || run_logdrain(corpus));
        cpu_once("streams", "drain3", n, || run_drain3(corpus));
    }
    let mut g = c.benchmark_group("logs/mine");
    g.sample_size(10);
    for (n, corpus) in corpora {
        g.throughput(Throughput::Elements(*n as u64));
        cpu_once("uniform", "meshmon-logs", *n, || run_ours(corpus));
        cpu_once("uniform", "logdrain", *n, || run_logdrain(corpus));
        cpu_once("uniform", "drain3", *n, || run_drain3(corpus));
        g.bench_with_input(BenchmarkId::new("meshmon-logs", n), corpus, |b, corpus| {
            b.iter(|| black_box(run_ours(corpus)))
        });
        g.bench_with_input(BenchmarkId::new("logdrain", n), corpus, |b, corpus| {
            b.iter(|| black_box(run_logdrain(corpus)))
        });
        // The drain3 crate needs minutes per 1M-line iteration (its clusters grow without
        // bound on this corpus); at 1M it is measured once, by `cpu_once` above.
        if *n > 100_000 {
            continue;
        }
        g.bench_with_input(BenchmarkId::new("drain3", n), corpus, |b, corpus| {
            b.iter(|| black_box(run_drain3(corpus)))
        });
    }
    g.finish();
}

fn tokenize(c: &mut Criterion) {
    c.bench_function("logs/tokenize_line", |b| {
        let mut toks = Vec::new();
        let line = "081109 204005 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.251.73.220:50010 is added to blk_7128370237687728475 size 67108864";
        b.iter(|| {
            meshmon_logs::pattern::token::tokenize(black_box(line), &mut toks);
            black_box(toks.len())
        })
    });
}

use meshmon_benches::thread_cpu_ns;

/// Runs `f` once (outside criterion's timing) on the `corpus` (`uniform` or `streams`)
/// and prints lines per CPU-second and per wall-second and the pattern count `f` returns.
fn cpu_once(corpus: &str, name: &str, n: usize, f: impl FnOnce() -> usize) {
    if test_mode() || std::env::args().any(|a| a == "--profile-time") {
        return;
    }
    // `MESHMON_LOGS_CPU=<name>` measures only that miner.
    if std::env::var("MESHMON_LOGS_CPU").is_ok_and(|only| only != name) {
        return;
    }
    let (c0, w0) = (thread_cpu_ns(), std::time::Instant::now());
    let patterns = f();
    let (c1, wall) = (thread_cpu_ns(), w0.elapsed());
    let cpu = match (c0, c1) {
        (Some(a), Some(b)) if b > a => format!("{:.0}", n as f64 / ((b - a) as f64 / 1e9)),
        _ => "n/a".to_owned(),
    };
    eprintln!(
        "logs/cpu/{corpus}/{name}/{n}: {cpu} lines per CPU-second, {:.0} lines per wall-second, {patterns} patterns",
        n as f64 / wall.as_secs_f64()
    );
}

criterion_group!(benches, mine, tokenize);
criterion_main!(benches);
