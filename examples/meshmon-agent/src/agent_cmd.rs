//! `run`, `config show|check`, `status` and `check`: flags → the agent library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use meshmon_agent::config::{AgentConfig, DEFAULT_YAML, ProcessEnv};
use meshmon_agent::run::{self, SystemClock};

/// `meshmon-agent run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Configuration file (YAML); default: `MESHMON_CONFIG`, else the embedded default.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// This node's name: keep only its endpoints checks (`DD_KUBERNETES_NODE_NAME`).
    #[arg(long)]
    node: Option<String>,
}

/// `meshmon-agent config …`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the effective configuration (file, then environment), secrets redacted.
    Show {
        /// Configuration file; default: `MESHMON_CONFIG`, else the embedded default.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the embedded default as shipped, without the environment.
        #[arg(long)]
        default: bool,
    },
    /// Validate a configuration file (and the environment) without running.
    Check {
        /// The file.
        file: PathBuf,
    },
}

/// `meshmon-agent status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The agent's API address (default: `MESHMON_API_ADDR`, else 127.0.0.1:5002).
    #[arg(long)]
    addr: Option<String>,
    /// Print the status document as JSON.
    #[arg(long)]
    json: bool,
}

/// `meshmon-agent check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Check name: istio, openmetrics or prometheus.
    name: String,
    /// The instance, as JSON.
    #[arg(long)]
    instance: String,
    /// Print one JSON line per metric (`{"name","type","value","tags"}`).
    #[arg(long)]
    json: bool,
    /// Timeout per endpoint, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

fn config_path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        std::env::var_os("MESHMON_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Runs the agent until a signal.
pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = AgentConfig::load(config_path(a.config).as_deref(), &ProcessEnv)?;
    if let Some(n) = a.node {
        cfg.autodiscovery.node = n;
    }
    runtime()?.block_on(async move {
        // Signal handlers first: a SIGTERM right after start must flush, not kill.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let agent = run::start(cfg, Arc::new(SystemClock)).await?;
        eprintln!(
            "meshmon-agent: API http://{}{}{}",
            agent.api_addr,
            agent
                .trace_addr
                .map(|a| format!(", traces http://{a}"))
                .unwrap_or_default(),
            agent
                .zipkin_addr
                .map(|a| format!(", zipkin http://{a}"))
                .unwrap_or_default(),
        );
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let failed = agent.shutdown().await;
        if failed.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("meshmon-agent: tasks failed: {}", failed.join(", "));
            Ok(ExitCode::from(1))
        }
    })
}

/// `config show` / `config check`.
pub fn config(c: ConfigCommand) -> anyhow::Result<ExitCode> {
    match c {
        ConfigCommand::Show { default: true, .. } => {
            print!("{DEFAULT_YAML}");
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Show { config, .. } => {
            let cfg = AgentConfig::load(config_path(config).as_deref(), &ProcessEnv)?;
            print!("{}", cfg.to_yaml());
            for n in &cfg.notices {
                eprintln!("notice: {n}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check { file } => {
            let cfg = AgentConfig::load(Some(&file), &ProcessEnv)?;
            println!(
                "{}: OK ({} static check(s), {} log source(s), {} manifest path(s))",
                file.display(),
                cfg.checks.len(),
                cfg.logs.configs.len(),
                cfg.autodiscovery.manifests.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `status`.
pub fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let addr = a
        .addr
        .or_else(|| {
            std::env::var("MESHMON_API_ADDR")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| "127.0.0.1:5002".into());
    let url = format!("http://{addr}/api/v1/status");
    let (code, body) = runtime()?.block_on(meshmon_agent::status::http_get(
        &url,
        Duration::from_secs(5),
    ))?;
    if code != 200 {
        anyhow::bail!("GET {url}: HTTP {code}: {}", String::from_utf8_lossy(&body));
    }
    let doc: serde_json::Value = serde_json::from_slice(&body).context("status is not JSON")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", meshmon_agent::status::render(&doc));
    }
    Ok(ExitCode::SUCCESS)
}

/// `check NAME --instance JSON`.
pub fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let inst: serde_json::Value =
        serde_json::from_str(&a.instance).context("--instance is not valid JSON")?;
    let timeout = Duration::try_from_secs_f64(a.timeout).context("--timeout")?;
    let metrics = runtime()?.block_on(meshmon_agent::check::run_once(&a.name, &inst, timeout))?;
    for m in &metrics {
        let j = meshmon_agent::check::metric_json(m);
        if a.json {
            println!("{j}");
        } else {
            println!(
                "{} {} {} {}",
                j["name"].as_str().unwrap_or(""),
                j["type"].as_str().unwrap_or(""),
                j["value"],
                m.tags
            );
        }
    }
    eprintln!("{} metric(s) submitted", metrics.len());
    Ok(ExitCode::SUCCESS)
}
