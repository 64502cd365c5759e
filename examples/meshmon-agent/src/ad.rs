//! `meshmon-agent ad …`: autodiscovery tools over `meshmon_core::autodiscovery`.
//!
//! - `ad expand FILE...`: Kubernetes objects in, one JSON check config per line out.
//! - `ad templates --id ID FILE|-`: the templates a map of annotations holds.
//! - `ad resolve FILE|-`: one template resolved against one service.
//!
//! Exit codes: 0 when the input was read (even if some pairs were skipped), 2 when it
//! could not be read or an option is invalid.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use meshmon_core::autodiscovery::{
    AdService, ContainerFilter, EnvPolicy, ExpandOptions, ResolveError, Resolver, Template, expand,
    extract_templates, filter::parse_rule_list, parse_objects, parse_template_text,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest input file read (bytes).
const MAX_INPUT_BYTES: u64 = 256 << 20;

/// Autodiscovery subcommands.
#[derive(Subcommand, Debug)]
pub enum AdCommand {
    /// Expand annotated objects into check configs (one JSON object per line on stdout;
    /// skipped (template, service) pairs and annotation errors on stderr).
    Expand(ExpandArgs),
    /// List the templates a JSON map of annotations holds for one id (unresolved).
    Templates {
        /// The `<id>`: a container name, `service` or `endpoints`.
        #[arg(long)]
        id: String,
        /// A JSON object of annotations (`-` for stdin).
        file: PathBuf,
    },
    /// Resolve one template against one service, from a JSON request
    /// (`{"template", "target", "service", "agent_env", "allowed_env_vars",
    /// "disable_env_var_resolution", "ignore_autodiscovery_tags"}`; all but `template`
    /// optional). Prints `{"ok":true,"instance"|"logs":…}` or
    /// `{"ok":false,"error_kind","message"}`.
    Resolve {
        /// The request (`-` for stdin).
        file: PathBuf,
    },
}

/// Options of `ad expand`.
#[derive(Args, Debug)]
pub struct ExpandArgs {
    /// Kubernetes objects: JSON, a `List`, or multi-document YAML (`-` for stdin).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print only the configs for this node (what that node's agent runs).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Environment variables `%%env_<VAR>%%` may read (repeatable, or comma/space
    /// separated; default `DD_AD_ALLOWED_ENV_VARS`; empty allows all).
    #[arg(long = "allow-env", value_name = "VAR")]
    allow_env: Vec<String>,
    /// Disable `%%env_*%%` (default `DD_AD_DISABLE_ENV_VAR_RESOLUTION`).
    #[arg(long)]
    no_env: bool,
    /// Include rules, e.g. `"kube_namespace:^istio-system$"` (default `DD_CONTAINER_INCLUDE`).
    #[arg(long, value_name = "RULES")]
    container_include: Option<String>,
    /// Exclude rules, e.g. `"name:.* image:pause"` (default `DD_CONTAINER_EXCLUDE`).
    #[arg(long, value_name = "RULES")]
    container_exclude: Option<String>,
    /// Legacy include rules, used when the include list is empty (default `DD_AC_INCLUDE`).
    #[arg(long, value_name = "RULES")]
    ac_include: Option<String>,
    /// Legacy exclude rules, used when the exclude list is empty (default `DD_AC_EXCLUDE`).
    #[arg(long, value_name = "RULES")]
    ac_exclude: Option<String>,
    /// Produce at most this many configs.
    #[arg(long, default_value_t = 1_000_000)]
    max_configs: usize,
}

/// Runs an `ad` subcommand.
pub fn run(cmd: AdCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdCommand::Expand(args) => run_expand(args),
        AdCommand::Templates { id, file } => run_templates(&id, &file),
        AdCommand::Resolve { file } => run_resolve(&file),
    }
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut buf)
            .context("reading stdin")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_INPUT_BYTES + 1).read_to_end(&mut buf))
            .with_context(|| format!("reading {}", path.display()))?;
    }
    if buf.len() as u64 > MAX_INPUT_BYTES {
        bail!("{}: larger than {MAX_INPUT_BYTES} bytes", path.display());
    }
    Ok(buf)
}

fn setting(flag: Option<String>, env: &str) -> Vec<String> {
    parse_rule_list(&flag.unwrap_or_else(|| std::env::var(env).unwrap_or_default()))
}

fn run_expand(args: ExpandArgs) -> anyhow::Result<ExitCode> {
    // Read everything first: no output unless every input is readable.
    let mut objects = Vec::new();
    for f in &args.files {
        let bytes = read_input(f)?;
        let objs = parse_objects(&bytes).with_context(|| format!("{}", f.display()))?;
        objects.extend(objs);
    }
    let filter = ContainerFilter::from_settings(
        &setting(args.container_include, "DD_CONTAINER_INCLUDE"),
        &setting(args.container_exclude, "DD_CONTAINER_EXCLUDE"),
        &setting(args.ac_include, "DD_AC_INCLUDE"),
        &setting(args.ac_exclude, "DD_AC_EXCLUDE"),
    )?;
    let allowed: Vec<String> = if args.allow_env.is_empty() {
        split_list(&std::env::var("DD_AD_ALLOWED_ENV_VARS").unwrap_or_default())
    } else {
        args.allow_env.iter().flat_map(|s| split_list(s)).collect()
    };
    let disabled = args.no_env
        || std::env::var("DD_AD_DISABLE_ENV_VAR_RESOLUTION")
            .is_ok_and(|v| meshmon_core::go::parse_bool(&v) == Some(true));
    let env = EnvPolicy::new(
        // `vars()` panics on a non-UTF-8 variable; such variables cannot be used anyway.
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    )
    .with_allowed(allowed)
    .disabled(disabled);
    let mut opts = ExpandOptions::default()
        .with_env(env)
        .with_filter(filter)
        .with_max_configs(args.max_configs)?;
    if let Some(node) = args.node {
        opts = opts.with_node(node)?;
    }
    let mut err = std::io::stderr().lock();
    for w in opts.filter.warnings() {
        writeln!(err, "meshmon-agent: warning: {w}")?;
    }
    let out = expand(&objects, &opts);
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    for c in &out.configs {
        serde_json::to_writer(&mut stdout, c)?;
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    for e in &out.errors {
        writeln!(err, "meshmon-agent: annotation error: {e}")?;
    }
    for s in &out.skipped {
        writeln!(err, "meshmon-agent: {s}")?;
    }
    if out.stats.dropped_by_limit > 0 {
        writeln!(
            err,
            "meshmon-agent: --max-configs {} reached, {} config(s) not produced",
            opts.max_configs, out.stats.dropped_by_limit
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

fn template_json(t: &Template) -> Value {
    let mut o = json!({
        "name": t.name,
        "init_config": t.init_config,
        "instances": t.instance.iter().collect::<Vec<_>>(),
    });
    if let Some(logs) = &t.logs {
        o["logs"] = logs.clone();
    }
    o
}

fn run_templates(id: &str, file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = read_input(file)?;
    let map: serde_json::Map<String, Value> = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: expected a JSON object of annotations", file.display()))?;
    let mut annotations = BTreeMap::new();
    for (k, v) in map {
        match v {
            Value::String(s) => {
                annotations.insert(k, s);
            }
            other => bail!(
                "{}: annotation {k:?} is not a string: {other}",
                file.display()
            ),
        }
    }
    let t = extract_templates(&annotations, id);
    let out = json!({
        "templates": t.templates.iter().map(template_json).collect::<Vec<_>>(),
        "errors": t.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ResolveTarget {
    #[default]
    Instance,
    Logs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    template: String,
    #[serde(default)]
    target: ResolveTarget,
    #[serde(default)]
    service: Option<AdService>,
    #[serde(default)]
    agent_env: BTreeMap<String, String>,
    #[serde(default)]
    allowed_env_vars: Vec<String>,
    #[serde(default)]
    disable_env_var_resolution: bool,
    #[serde(default)]
    ignore_autodiscovery_tags: bool,
}

fn run_resolve(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = read_input(file)?;
    let req: ResolveRequest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: invalid resolve request", file.display()))?;
    let answer = match resolve(&req) {
        Ok(v) => {
            let key = match req.target {
                ResolveTarget::Instance => "instance",
                ResolveTarget::Logs => "logs",
            };
            json!({"ok": true, key: v})
        }
        Err(e) => json!({"ok": false, "error_kind": e.kind(), "message": e.to_string()}),
    };
    println!("{answer}");
    Ok(ExitCode::SUCCESS)
}

fn resolve(req: &ResolveRequest) -> Result<Value, ResolveError> {
    let parsed = parse_template_text(&req.template)?;
    let resolver = Resolver::new(
        EnvPolicy::new(req.agent_env.clone())
            .with_allowed(req.allowed_env_vars.clone())
            .disabled(req.disable_env_var_resolution),
    );
    let Some(svc) = &req.service else {
        // No service: only `%%env_*%%` can resolve; nothing to check readiness or tag with.
        return resolver.resolve_value(&parsed, None);
    };
    let (instance, logs) = match req.target {
        ResolveTarget::Instance => (Some(parsed), None),
        ResolveTarget::Logs => (None, Some(parsed)),
    };
    let tpl = Template {
        name: String::new(),
        init_config: Value::Null,
        instance,
        logs,
        ignore_autodiscovery_tags: req.ignore_autodiscovery_tags,
        format: meshmon_core::autodiscovery::AnnotationFormat::V2,
    };
    let r = resolver.resolve_template(&tpl, svc)?;
    Ok(r.instance.or(r.logs).unwrap_or(Value::Null))
}
