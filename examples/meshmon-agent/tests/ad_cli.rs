//! End-to-end tests of `meshmon-agent ad …`, running the built binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_meshmon-agent");
const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/istio-seed000.yaml");

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("DD_CONTAINER_EXCLUDE")
        .env_remove("DD_CONTAINER_INCLUDE")
        .env_remove("DD_AC_EXCLUDE")
        .env_remove("DD_AC_INCLUDE")
        .env_remove("DD_AD_ALLOWED_ENV_VARS")
        .env_remove("DD_AD_DISABLE_ENV_VAR_RESOLUTION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut i = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            i.write_all(s.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn expand_bundled_manifest() {
    let o = run(&["ad", "expand", MANIFEST], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let configs = lines(&o);
    assert_eq!(configs.len(), 6);
    for c in &configs {
        let keys: Vec<_> = c.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            ["check", "id", "init_config", "instance", "node", "tags"]
        );
        assert_eq!(c["check"], "istio");
        let ip = c["id"].as_str().unwrap().rsplit('/').next().unwrap();
        let url = c["instance"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.ends_with("_endpoint"))
            .map(|(_, v)| v.as_str().unwrap().to_string())
            .unwrap();
        assert!(url.starts_with(&format!("http://{ip}:")), "{url}");
        assert!(
            c["tags"]
                .as_array()
                .unwrap()
                .contains(&json!(format!("kube_endpoint_ip:{ip}")))
        );
    }
    let pilot = configs
        .iter()
        .find(|c| c["id"] == "kube_endpoint_uid://istio-system/istio-pilot/10.8.1.32")
        .unwrap();
    assert_eq!(pilot["node"], "node-b");
    assert_eq!(
        pilot["instance"]["pilot_endpoint"],
        "http://10.8.1.32:15014/metrics"
    );
}

#[test]
fn expand_node_filter_and_stdin() {
    let manifest = std::fs::read_to_string(MANIFEST).unwrap();
    let o = run(&["ad", "expand", "--node", "node-b", "-"], Some(&manifest));
    assert_eq!(o.status.code(), Some(0));
    let configs = lines(&o);
    assert_eq!(configs.len(), 3);
    assert!(configs.iter().all(|c| c["node"] == "node-b"));
}

#[test]
fn expand_unreadable_input_exits_2_without_output() {
    let o = run(
        &["ad", "expand", MANIFEST, "/nonexistent/meshmon.yaml"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("/nonexistent/meshmon.yaml"));

    let o = run(&["ad", "expand", "-"], Some("kind: Service\nmetadata: [\n"));
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("YAML"), "{}", stderr(&o));

    let o = run(
        &["ad", "expand", "--container-exclude", "name:[", MANIFEST],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("name:["), "{}", stderr(&o));
}

const MIXED: &str = r#"
kind: Service
metadata:
  name: api
  namespace: shop
  annotations:
    ad.datadoghq.com/endpoints.checks: |
      {"http_check": {"instances": [{"url": "http://%%host%%:%%port_web%%", "env": "%%env_MESHMON_TEST_ENV%%"}]}}
---
kind: Endpoints
metadata: {name: api, namespace: shop}
subsets:
- addresses: [{ip: 10.0.0.1, nodeName: n1, targetRef: {kind: Pod, name: api-1}}]
  notReadyAddresses: [{ip: 10.0.0.2, nodeName: n1, targetRef: {kind: Pod, name: api-2}}]
  ports: [{name: web, port: 8080}]
---
kind: Service
metadata:
  name: orphan
  namespace: shop
  annotations:
    ad.datadoghq.com/endpoints.check_names: '["a"]'
    ad.datadoghq.com/endpoints.init_configs: '[{}]'
    ad.datadoghq.com/endpoints.instances: '[{"u": "%%host%%"}]'
---
kind: Service
metadata:
  name: broken
  namespace: shop
  annotations:
    ad.datadoghq.com/endpoints.check_names: '["a"]'
"#;

#[test]
fn expand_reports_skips_on_stderr() {
    let mut cmd_env = run(&["ad", "expand", "-"], Some(MIXED));
    // MESHMON_TEST_ENV is not set: the ready address is skipped with env_not_set
    assert_eq!(cmd_env.status.code(), Some(0));
    assert!(lines(&cmd_env).is_empty());
    let err = stderr(&cmd_env);
    assert!(
        err.contains("kube_endpoint_uid://shop/api/10.0.0.1: env_not_set"),
        "{err}"
    );
    assert!(
        err.contains("kube_endpoint_uid://shop/api/10.0.0.2: service_not_ready"),
        "{err}"
    );
    assert!(err.contains("Service shop/orphan: no_endpoints"), "{err}");
    assert!(
        err.contains("Service shop/broken: ad.datadoghq.com/endpoints.init_configs is missing"),
        "{err}"
    );

    // with the variable in the agent's environment and allowed
    let mut cmd = Command::new(BIN);
    cmd.args(["ad", "expand", "--allow-env", "MESHMON_TEST_ENV", "-"])
        .env("MESHMON_TEST_ENV", "staging")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(MIXED.as_bytes())
        .unwrap();
    cmd_env = child.wait_with_output().unwrap();
    let configs = lines(&cmd_env);
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0]["instance"]["url"], "http://10.0.0.1:8080");
    assert_eq!(configs[0]["instance"]["env"], "staging");

    // allowed list that does not name it
    let mut cmd = Command::new(BIN);
    cmd.args(["ad", "expand", "--allow-env", "OTHER", "-"])
        .env("MESHMON_TEST_ENV", "staging")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(MIXED.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(lines(&o).is_empty());
    assert!(stderr(&o).contains("env_not_allowed"), "{}", stderr(&o));
}

#[test]
fn expand_exclusion_rules() {
    let o = run(
        &[
            "ad",
            "expand",
            "--container-exclude",
            "kube_namespace:^istio",
            MANIFEST,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(lines(&o).is_empty());
    assert_eq!(
        stderr(&o)
            .matches("excluded: kube_namespace filter rule")
            .count(),
        4
    );
    // an include rule beats the exclude
    let o = run(
        &[
            "ad",
            "expand",
            "--container-exclude",
            "kube_namespace:.*",
            "--container-include",
            "kube_namespace:istio",
            MANIFEST,
        ],
        None,
    );
    assert_eq!(lines(&o).len(), 6);
    // legacy rules apply only when the new list is empty
    let o = run(
        &[
            "ad",
            "expand",
            "--ac-exclude",
            "kube_namespace:istio",
            MANIFEST,
        ],
        None,
    );
    assert!(lines(&o).is_empty());
    let o = run(
        &[
            "ad",
            "expand",
            "--ac-exclude",
            "kube_namespace:istio",
            "--container-exclude",
            "kube_namespace:^none$",
            MANIFEST,
        ],
        None,
    );
    assert_eq!(lines(&o).len(), 6);
}

#[test]
fn expand_reads_datadog_environment_settings() {
    let run_env = |vars: &[(&str, &str)], stdin: &str| {
        let mut cmd = Command::new(BIN);
        cmd.args(["ad", "expand", "-"])
            .env_remove("DD_CONTAINER_INCLUDE")
            .env_remove("DD_AC_INCLUDE")
            .env_remove("DD_AC_EXCLUDE")
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let manifest = std::fs::read_to_string(MANIFEST).unwrap();
    let o = run_env(
        &[("DD_CONTAINER_EXCLUDE", "kube_namespace:istio-system")],
        &manifest,
    );
    assert!(lines(&o).is_empty());
    assert_eq!(stderr(&o).matches("excluded").count(), 4);
    let o = run_env(
        &[
            ("DD_AD_ALLOWED_ENV_VARS", "SOMETHING_ELSE"),
            ("MESHMON_TEST_ENV", "x"),
            ("DD_CONTAINER_EXCLUDE", ""),
        ],
        MIXED,
    );
    assert!(stderr(&o).contains("env_not_allowed"), "{}", stderr(&o));
    let o = run_env(
        &[
            ("DD_AD_DISABLE_ENV_VAR_RESOLUTION", "true"),
            ("MESHMON_TEST_ENV", "x"),
            ("DD_CONTAINER_EXCLUDE", ""),
        ],
        MIXED,
    );
    assert!(stderr(&o).contains("disabled"), "{}", stderr(&o));
}

#[test]
fn templates_tool() {
    let ann = json!({
        "ad.datadoghq.com/web.check_names": "[\"nginx\", \"http_check\"]",
        "ad.datadoghq.com/web.init_configs": "[{}, {\"timeout\": 5}]",
        "ad.datadoghq.com/web.instances": "[{\"nginx_status_url\": \"http://%%host%%/status\"}, [{\"url\": \"a\"}, {\"url\": \"b\"}]]",
        "ad.datadoghq.com/web.logs": "[{\"source\": \"nginx\"}]",
        "ad.datadoghq.com/other.check_names": "[\"x\"]"
    });
    let o = run(
        &["ad", "templates", "--id", "web", "-"],
        Some(&ann.to_string()),
    );
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        json!({"templates": [
            {"name": "nginx", "init_config": {}, "instances": [{"nginx_status_url": "http://%%host%%/status"}]},
            {"name": "http_check", "init_config": {"timeout": 5}, "instances": [{"url": "a"}]},
            {"name": "http_check", "init_config": {"timeout": 5}, "instances": [{"url": "b"}]},
            {"name": "nginx", "init_config": null, "instances": [], "logs": [{"source": "nginx"}]}
        ], "errors": []})
    );
    let o = run(
        &["ad", "templates", "--id", "other", "-"],
        Some(&ann.to_string()),
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["templates"], json!([]));
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("init_configs is missing"),
        "{v}"
    );

    let o = run(&["ad", "templates", "--id", "x", "-"], Some("[1]"));
    assert_eq!(o.status.code(), Some(2));
}

fn resolve(req: Value) -> Value {
    let o = run(&["ad", "resolve", "-"], Some(&req.to_string()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn service() -> Value {
    json!({"id": "svc", "hosts": {"pod": "10.0.0.9"}, "ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}],
           "extra": {"namespace": "ns"}, "tags": ["z:1", "a:1"], "ready": true})
}

#[test]
fn resolve_ok_instance_and_logs() {
    let v = resolve(
        json!({"template": "url: http://%%host%%:%%port%%/metrics\nport: %%port_http%%\ntags: [a:1, b:2]\n", "service": service()}),
    );
    assert_eq!(
        v,
        json!({"ok": true, "instance": {"url": "http://10.0.0.9:9090/metrics", "port": 80, "tags": ["a:1", "b:2", "z:1"]}})
    );
    let v = resolve(
        json!({"template": "{\"u\": \"%%host%%\"}", "service": service(), "ignore_autodiscovery_tags": true}),
    );
    assert_eq!(v, json!({"ok": true, "instance": {"u": "10.0.0.9"}}));
    let mut unready = service();
    unready["ready"] = json!(false);
    let v = resolve(
        json!({"template": "[{\"service\": \"%%kube_namespace%%\"}]", "target": "logs", "service": unready}),
    );
    assert_eq!(v, json!({"ok": true, "logs": [{"service": "ns"}]}));
    let v =
        resolve(json!({"template": "x: %%env_A%%", "service": null, "agent_env": {"A": "007"}}));
    assert_eq!(v, json!({"ok": true, "instance": {"x": "007"}}));
}

#[test]
fn resolve_error_kinds() {
    let svc = service();
    let mut two_nets = service();
    two_nets["hosts"] = json!({"a": "1.1.1.1", "b": "2.2.2.2"});
    let mut bare = service();
    bare["hosts"] = json!({});
    bare["ports"] = json!([]);
    let mut unready = service();
    unready["ready"] = json!(false);
    let cases = [
        (
            json!({"template": "h: %%host%%", "service": bare}),
            "no_network",
        ),
        (
            json!({"template": "h: %%host_c%%", "service": two_nets}),
            "ambiguous_network",
        ),
        (
            json!({"template": "p: %%port%%", "service": bare}),
            "no_ports",
        ),
        (
            json!({"template": "p: %%port_5%%", "service": svc}),
            "port_index_out_of_range",
        ),
        (
            json!({"template": "p: %%port_grpc%%", "service": svc}),
            "port_not_found",
        ),
        (json!({"template": "p: %%pid%%", "service": svc}), "no_pid"),
        (
            json!({"template": "p: %%hostname%%", "service": svc}),
            "no_hostname",
        ),
        (
            json!({"template": "e: %%env%%", "service": svc}),
            "env_name_missing",
        ),
        (
            json!({"template": "e: %%env_NOPE%%", "service": svc}),
            "env_not_set",
        ),
        (
            json!({"template": "e: %%env_A%%", "service": svc, "agent_env": {"A": "1"}, "allowed_env_vars": ["B"]}),
            "env_not_allowed",
        ),
        (
            json!({"template": "k: %%kube_pod_uid%%", "service": svc}),
            "extra_not_found",
        ),
        (
            json!({"template": "k: %%nope%%", "service": svc}),
            "unknown_variable",
        ),
        (
            json!({"template": "h: %%host%%", "service": null}),
            "not_supported",
        ),
        (
            json!({"template": "h: %%host%%", "service": unready}),
            "service_not_ready",
        ),
        (
            json!({"template": "h: [1,\n", "service": svc}),
            "parse_error",
        ),
    ];
    let mut kinds = Vec::new();
    for (req, kind) in cases {
        let v = resolve(req.clone());
        assert_eq!(v["ok"], false, "{req}");
        assert_eq!(v["error_kind"], kind, "{req} -> {v}");
        assert!(!v["message"].as_str().unwrap().is_empty());
        kinds.push(kind);
    }
    kinds.sort_unstable();
    let mut all = meshmon_core::autodiscovery::ResolveError::KINDS.to_vec();
    all.sort_unstable();
    assert_eq!(
        kinds, all,
        "every documented kind is reachable from the CLI"
    );
}

#[test]
fn resolve_unreadable_request_exits_2() {
    let o = run(&["ad", "resolve", "-"], Some("{\"service\": {}}"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("template"), "{}", stderr(&o));
}
