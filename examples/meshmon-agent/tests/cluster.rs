//! Several hosts on one machine: `meshmon-agent cluster-agent` and three `meshmon-agent
//! run` node agents, each in its own network namespace with its own addresses (made here
//! with `ip netns` and veth pairs, removed at the end, also when the test fails), "pods"
//! serving the real Istio fixture on addresses of a pod network, and manifests placing the
//! pods on the three nodes.
//!
//! ```text
//!   root ns: test, pods 10.215.0.x + services 10.215.1.x (on the root end of r0)
//!     │ veth 10.213.N.1 ↔ 10.213.N.2 (node N's eth0, default route)
//!   node ns N: `meshmon-agent run`, API 10.213.N.2:5002
//!     │ veth 10.214.N.2 ↔ 10.214.N.1
//!   cluster-agent ns: `meshmon-agent cluster-agent` on 0.0.0.0:5005 (10.213.0.2 from root)
//! ```
//!
//! A pod's server records the source address of every scrape, so "which node scraped
//! which pod" is measured on the wire, not read back from the agents.
//!
//! Needs root (CAP_NET_ADMIN) and `ip`; without them the test prints why and returns,
//! unless `MESHMON_REQUIRE_NETNS=1` (then it fails).
#![cfg(feature = "agent")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshmon-agent");
const TOKEN: &str = "meshmon-test-token-0123456789abcdef";
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];
const POD_PORT: u16 = 15090;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    ip(args).unwrap_or_else(|e| panic!("{e}"));
}

/// The namespaces and links of one test; removed on drop.
struct Net {
    tag: String,
    namespaces: Vec<String>,
    links: Vec<String>,
}

impl Net {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    /// Runs `ip` inside namespace `ns`.
    fn exec(&self, ns: &str, args: &[&str]) {
        let ns = self.ns(ns);
        let mut all = vec!["netns", "exec", ns.as_str(), "ip"];
        all.extend_from_slice(args);
        must(&all);
    }

    fn add_ns(&mut self, name: &str) -> Result<(), String> {
        let ns = self.ns(name);
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns);
        self.exec(name, &["link", "set", "lo", "up"]);
        Ok(())
    }

    /// A veth pair from `a` (None: the root namespace) to `b`, with addresses.
    fn veth(
        &mut self,
        a: Option<&str>,
        a_if: &str,
        a_addr: &str,
        b: &str,
        b_if: &str,
        b_addr: &str,
    ) {
        let tmp_a = format!("{}{a_if}", self.tag);
        let tmp_b = format!("{}{b_if}x", self.tag);
        must(&[
            "link", "add", &tmp_a, "type", "veth", "peer", "name", &tmp_b,
        ]);
        if a.is_none() {
            self.links.push(tmp_a.clone());
        }
        must(&["link", "set", &tmp_b, "netns", &self.ns(b)]);
        self.exec(b, &["link", "set", &tmp_b, "name", b_if]);
        self.exec(b, &["addr", "add", b_addr, "dev", b_if]);
        self.exec(b, &["link", "set", b_if, "up"]);
        match a {
            None => {
                must(&["addr", "add", a_addr, "dev", &tmp_a]);
                must(&["link", "set", &tmp_a, "up"]);
            }
            Some(a) => {
                must(&["link", "set", &tmp_a, "netns", &self.ns(a)]);
                self.exec(a, &["link", "set", &tmp_a, "name", a_if]);
                self.exec(a, &["addr", "add", a_addr, "dev", a_if]);
                self.exec(a, &["link", "set", a_if, "up"]);
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        for l in &self.links {
            let _ = ip(&["link", "del", l]);
        }
    }
}

/// Builds the topology, or says why it cannot.
fn build_net() -> Result<Net, String> {
    let tag = format!("mmc{}", std::process::id() % 100_000);
    let mut net = Net {
        tag: tag.clone(),
        namespaces: Vec::new(),
        links: Vec::new(),
    };
    net.add_ns("ca")?;
    // Root ↔ cluster agent (the test reads the cluster agent's API through it).
    net.veth(None, "r0", "10.213.0.1/24", "ca", "eth0", "10.213.0.2/24");
    for (i, _) in NODES.iter().enumerate() {
        let n = i + 1;
        let name = format!("n{n}");
        net.add_ns(&name)?;
        net.veth(
            None,
            &format!("r{n}"),
            &format!("10.213.{n}.1/24"),
            &name,
            "eth0",
            &format!("10.213.{n}.2/24"),
        );
        net.exec(
            &name,
            &["route", "add", "default", "via", &format!("10.213.{n}.1")],
        );
        // Node ↔ cluster agent, a link of its own.
        net.veth(
            Some("ca"),
            &format!("c{n}"),
            &format!("10.214.{n}.1/24"),
            &name,
            "ca",
            &format!("10.214.{n}.2/24"),
        );
    }
    // The pod network lives in the root namespace, as extra addresses on the root end of
    // the cluster agent's link (so it goes away with the namespace).
    let pods_if = format!("{tag}r0");
    for p in 1..=8 {
        must(&["addr", "add", &format!("10.215.0.{p}/32"), "dev", &pods_if]);
    }
    for s in 1..=6 {
        must(&["addr", "add", &format!("10.215.1.{s}/32"), "dev", &pods_if]);
    }
    Ok(net)
}

/// A corpus file, or `None` with a message (a failure under `MESHMON_REQUIRE_CORPUS=1`).
fn corpus(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("MESHMON_REQUIRE_CORPUS").as_deref() != Ok("1"),
        "corpus {} is missing and MESHMON_REQUIRE_CORPUS=1",
        p.display()
    );
    eprintln!("SKIPPED: corpus {} not found", p.display());
    None
}

/// A "pod": the fixture on `addr`, recording the source address of each scrape.
struct Pod {
    peers: Arc<Mutex<BTreeMap<String, u64>>>,
    stop: Arc<AtomicBool>,
}

impl Pod {
    fn serve(addr: &str, body: Arc<String>) -> Pod {
        let l = TcpListener::bind((addr, POD_PORT)).unwrap();
        l.set_nonblocking(true).unwrap();
        let peers = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peers.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((mut c, peer)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                *p.lock().unwrap().entry(peer.ip().to_string()).or_default() += 1;
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Pod { peers, stop }
    }

    fn peers(&self) -> BTreeSet<String> {
        self.peers.lock().unwrap().keys().cloned().collect()
    }

    fn reset(&self) {
        self.peers.lock().unwrap().clear();
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One `meshmon-agent` process inside a namespace; killed on drop.
struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Proc {
    fn start(ns: &str, args: &[&str], env: &[(&str, String)], ready: &str) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, BIN]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = log.clone();
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains(&ready)
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(());
                }
                let mut g = l2.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!("{ns}: did not start: {}", log.lock().unwrap());
        }
        Proc { child, log }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- process log ---\n{}", self.log.lock().unwrap());
        }
    }
}

fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

fn get_json(addr: &str, path: &str, token: Option<&str>) -> Value {
    let (code, body) = http(addr, "GET", path, token, "");
    assert_eq!(code, 200, "GET {addr}{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out ({secs} s) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Manifests: Service `reviews` (an endpoints check per pod) with its Endpoints placing
/// `pods` (ip, node), and six Services with a cluster check each.
fn manifests(pods: &[(&str, &str)]) -> String {
    let addrs: String = pods
        .iter()
        .map(|(ip, node)| {
            let pod = format!("reviews-{}", ip.replace('.', "-"));
            format!(
                "  - ip: {ip}\n    nodeName: {node}\n    targetRef: {{kind: Pod, name: {pod}, namespace: bookinfo, uid: uid-{pod}}}\n"
            )
        })
        .collect();
    let mut out = format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: bookinfo
  annotations:
    ad.datadoghq.com/endpoints.check_names: '["istio"]'
    ad.datadoghq.com/endpoints.init_configs: '[{{}}]'
    ad.datadoghq.com/endpoints.instances: '[{{"istio_mesh_endpoint": "http://%%host%%:{POD_PORT}/metrics", "min_collection_interval": 1}}]'
spec:
  ports: [{{name: http-monitoring, port: {POD_PORT}}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: reviews, namespace: bookinfo}}
subsets:
- addresses:
{addrs}  ports: [{{name: http-monitoring, port: {POD_PORT}}}]
"#
    );
    for s in 1..=6 {
        out.push_str(&format!(
            r#"---
apiVersion: v1
kind: Service
metadata:
  name: mesh-{s}
  namespace: istio-system
  annotations:
    ad.datadoghq.com/service.check_names: '["istio"]'
    ad.datadoghq.com/service.init_configs: '[{{}}]'
    ad.datadoghq.com/service.instances: '[{{"istio_mesh_endpoint": "http://%%host%%:{POD_PORT}/metrics", "min_collection_interval": 1}}]'
spec:
  clusterIP: 10.215.1.{s}
  ports: [{{name: http-monitoring, port: {POD_PORT}}}]
"#
        ));
    }
    out
}

/// The check URLs a node agent runs, by provider.
fn node_checks(api: &str) -> BTreeMap<String, BTreeSet<String>> {
    let v = get_json(api, "/api/v1/checks", None);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in v["checks"].as_array().unwrap() {
        out.entry(c["provider"].as_str().unwrap().to_owned())
            .or_default()
            .insert(c["url"].as_str().unwrap().to_owned());
    }
    out
}

fn url(ip: &str) -> String {
    format!("http://{ip}:{POD_PORT}/metrics")
}

#[test]
fn cluster_agent_dispatches_across_network_namespaces() {
    let Some(fixture) = corpus("istio-fixtures/1.5/istio-proxy.txt") else {
        return;
    };
    let required = std::env::var("MESHMON_REQUIRE_NETNS").as_deref() == Ok("1");
    let net = match build_net() {
        Ok(n) => n,
        Err(e) => {
            assert!(
                !required,
                "network namespaces unavailable and MESHMON_REQUIRE_NETNS=1: {e}"
            );
            eprintln!(
                "SKIPPED: cluster multi-host test needs root (CAP_NET_ADMIN) and `ip netns`: {e}"
            );
            return;
        }
    };
    let body = Arc::new(std::fs::read_to_string(fixture).unwrap());
    // Pods 10.215.0.1-6: two per node; 10.215.0.7 is where a pod moves later.
    let pod_ips: Vec<String> = (1..=7).map(|p| format!("10.215.0.{p}")).collect();
    let pods: BTreeMap<String, Pod> = pod_ips
        .iter()
        .map(|ip| (ip.clone(), Pod::serve(ip, body.clone())))
        .collect();
    let svcs: BTreeMap<String, Pod> = (1..=6)
        .map(|s| {
            let ip = format!("10.215.1.{s}");
            (ip.clone(), Pod::serve(&ip, body.clone()))
        })
        .collect();
    let placement = |moved: bool| -> Vec<(&str, &str)> {
        let mut v = vec![
            ("10.215.0.1", "node-1"),
            ("10.215.0.2", "node-1"),
            ("10.215.0.3", "node-2"),
            ("10.215.0.4", "node-2"),
            ("10.215.0.5", "node-3"),
            ("10.215.0.6", "node-3"),
        ];
        if moved {
            // The pod at .1 is rescheduled onto node-3 with a new address.
            v[0] = ("10.215.0.7", "node-3");
        }
        v
    };
    let dir = std::env::temp_dir().join(format!("meshmon-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    let mf = dir.join("manifests/mesh.yaml");
    std::fs::write(&mf, manifests(&placement(false))).unwrap();
    let cfg = |name: &str, extra: &str| {
        let p = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &p,
            format!(
                "data_dir: {}\napi:\n  listen: 0.0.0.0:5002\napm:\n  enabled: false\ndogstatsd:\n  enabled: false\nautodiscovery:\n  poll_interval: 1s\n{extra}",
                dir.join(format!("data-{name}")).display()
            ),
        )
        .unwrap();
        p.display().to_string()
    };

    let ca_cfg = cfg("ca", "cluster_agent:\n  listen_host: 0.0.0.0\n");
    let ca_ns = net.ns("ca");
    let _ca = Proc::start(
        &ca_ns,
        &["cluster-agent", "--config", &ca_cfg],
        &[
            ("DD_CLUSTER_AGENT_AUTH_TOKEN", TOKEN.into()),
            ("DD_CLUSTER_CHECKS_ENABLED", "true".into()),
            (
                "DD_EXTRA_CONFIG_PROVIDERS",
                "kube_endpoints kube_services".into(),
            ),
            ("DD_EXTRA_LISTENERS", "kube_endpoints kube_services".into()),
            ("DD_CLUSTER_AGENT_CMD_PORT", "5005".into()),
            ("DD_CLUSTER_CHECKS_NODE_EXPIRATION_TIMEOUT", "4s".into()),
            ("DD_CLUSTER_CHECKS_WARMUP_DURATION", "5s".into()),
            ("MESHMON_MANIFESTS", mf.display().to_string()),
        ],
        "cluster-agent: API http://",
    );
    let ca = "10.213.0.2:5005";

    let node_cfg = cfg(
        "node",
        "cluster_agent:\n  grace_period: 3s\n  request_timeout: 2s\n",
    );
    let start_node = |n: usize, token: &str, api_port: u16| {
        let node = NODES[n - 1];
        Proc::start(
            &net.ns(&format!("n{n}")),
            &["run", "--config", &node_cfg],
            &[
                ("MESHMON_API_ADDR", format!("0.0.0.0:{api_port}")),
                (
                    "MESHMON_DATA_DIR",
                    dir.join(format!("data-{node}-{api_port}"))
                        .display()
                        .to_string(),
                ),
                ("DD_CLUSTER_AGENT_ENABLED", "true".into()),
                ("DD_CLUSTER_AGENT_URL", format!("http://10.214.{n}.1:5005")),
                ("DD_CLUSTER_AGENT_AUTH_TOKEN", token.into()),
                (
                    "DD_EXTRA_CONFIG_PROVIDERS",
                    "endpointschecks clusterchecks".into(),
                ),
                ("DD_KUBERNETES_NODE_NAME", node.into()),
            ],
            "meshmon-agent: API http://",
        )
    };
    let mut agents: Vec<Proc> = (1..=3).map(|n| start_node(n, TOKEN, 5002)).collect();
    let api = |n: usize| format!("10.213.{n}.2:5002");

    // 1. Each node agent runs exactly its own pods' endpoints checks, and the six cluster
    //    checks are spread two per node.
    let own = |n: usize, moved: bool| -> BTreeSet<String> {
        placement(moved)
            .iter()
            .filter(|(_, node)| *node == NODES[n - 1])
            .map(|(ip, _)| url(ip))
            .collect()
    };
    let state = wait_for(40, "endpoints and cluster checks on every node", || {
        let st = get_json(ca, "/api/v1/clusterchecks", Some(TOKEN));
        let all = (1..=3).all(|n| {
            let c = node_checks(&api(n));
            c.get("endpointschecks") == Some(&own(n, false))
                && c.get("clusterchecks").map_or(0, BTreeSet::len) == 2
        });
        (all && st["dangling"].as_array()?.is_empty()).then_some(st)
    });
    assert_eq!(state["nodes"].as_array().unwrap().len(), 3, "{state}");
    let mut cluster_urls = BTreeSet::new();
    for n in 1..=3 {
        cluster_urls.extend(node_checks(&api(n))["clusterchecks"].iter().cloned());
    }
    assert_eq!(
        cluster_urls.len(),
        6,
        "every cluster check runs exactly once"
    );
    // On the wire: each pod is scraped by its own node only.
    std::thread::sleep(Duration::from_secs(3));
    for (ip, node) in placement(false) {
        let n = NODES.iter().position(|x| *x == node).unwrap() + 1;
        let peers = pods[ip].peers();
        assert_eq!(
            peers,
            BTreeSet::from([format!("10.213.{n}.2")]),
            "pod {ip} (on {node}) scraped by {peers:?}"
        );
    }
    for (ip, svc) in &svcs {
        assert_eq!(
            svc.peers().len(),
            1,
            "service {ip} scraped by {:?}",
            svc.peers()
        );
    }

    // 2. A node agent with a wrong token gets nothing, and is counted; no token is a 401.
    let rogue = start_node(1, "not-the-token-not-the-token-0000000", 5003);
    wait_for(20, "the rogue agent's refusal", || {
        let st = get_json("10.213.1.2:5003", "/api/v1/status", None);
        let c = &st["components"]["cluster_agent.clusterchecks"];
        (c["state"] == "grace" || c["state"] == "unscheduled").then_some(())
    });
    assert!(
        node_checks("10.213.1.2:5003").is_empty(),
        "the rogue agent runs checks"
    );
    let (code, _) = http(
        ca,
        "GET",
        "/api/v1/endpointschecks/configs/node-1",
        None,
        "",
    );
    assert_eq!(code, 401);
    let (code, _) = http(ca, "GET", "/metrics", Some("wrong"), "");
    assert_eq!(code, 403);
    let (_, metrics) = http(ca, "GET", "/metrics", Some(TOKEN), "");
    let count = |code: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "meshmon_cluster_agent_auth_failures_total{{code=\"{code}\"}} "
                ))
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(count("403") >= 2.0 && count("401") >= 1.0, "{metrics}");
    drop(rogue);

    // 3. node-2's agent stops: within the (shortened, 4 s) expiry its cluster checks move
    //    to node-1 and node-3; its endpoints checks stay unassigned.
    let node2_cluster = node_checks(&api(2))["clusterchecks"].clone();
    agents[1].kill();
    let t0 = Instant::now();
    wait_for(15, "node-2's cluster checks on the other nodes", || {
        let mut urls = BTreeSet::new();
        for n in [1, 3] {
            urls.extend(
                node_checks(&api(n))
                    .get("clusterchecks")
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        (urls == cluster_urls).then_some(())
    });
    let moved_after = t0.elapsed();
    let st = get_json(ca, "/api/v1/clusterchecks", Some(TOKEN));
    assert_eq!(st["nodes"].as_array().unwrap().len(), 2, "{st}");
    assert_eq!(st["stats"]["endpoints_unassigned"], 2, "{st}");
    assert_eq!(st["stats"]["expired_nodes_total"], 1, "{st}");
    for n in [1, 3] {
        let c = node_checks(&api(n));
        assert_eq!(
            c["endpointschecks"],
            own(n, false),
            "node-{n} took node-2's pods"
        );
    }
    for u in &node2_cluster {
        assert!(cluster_urls.contains(u));
    }
    eprintln!("node-2's cluster checks moved {moved_after:?} after it stopped");

    // 4. A pod moves from node-1 to node-3 (new address): its check follows on the next poll.
    std::fs::write(&mf, manifests(&placement(true))).unwrap();
    wait_for(20, "the moved pod's check on node-3", || {
        let c1 = node_checks(&api(1));
        let c3 = node_checks(&api(3));
        (c1.get("endpointschecks") == Some(&own(1, true))
            && c3.get("endpointschecks") == Some(&own(3, true)))
        .then_some(())
    });
    pods["10.215.0.7"].reset();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        pods["10.215.0.7"].peers(),
        BTreeSet::from(["10.213.3.2".to_owned()]),
        "the moved pod is scraped by node-3 only"
    );
    let status = get_json(&api(1), "/api/v1/status", None);
    assert_eq!(
        status["components"]["cluster_agent.endpointschecks"]["state"],
        "connected"
    );

    for a in &mut agents {
        a.kill();
    }
    let _ = std::fs::remove_dir_all(&dir);
    drop(net);
}

/// `meshmon-agent cluster-agent` on loopback (no namespaces needed): its address.
fn start_loopback(dir: &Path, env: &[(&str, &str)]) -> (Child, String, Arc<Mutex<String>>) {
    start_loopback_cfg(
        dir,
        "cluster_agent:\n  cmd_port: 0\n  max_body_bytes: 1024\n  read_timeout: 1s\n  warmup_duration: 0s\nautodiscovery:\n  poll_interval: 1s\n",
        env,
    )
}

/// [`start_loopback`] with this config file.
fn start_loopback_cfg(
    dir: &Path,
    yaml: &str,
    env: &[(&str, &str)],
) -> (Child, String, Arc<Mutex<String>>) {
    let cfg = dir.join("ca.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let mut child = Command::new(BIN)
        .args(["cluster-agent", "--config"])
        .arg(&cfg)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let l2 = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("meshmon-agent cluster-agent: API http://")
                && let Some(t) = tx.take()
            {
                let _ = t.send(a.trim().to_owned());
            }
            let mut g = l2.lock().unwrap();
            g.push_str(&line);
            g.push('\n');
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => (child, addr, log),
        Err(_) => {
            let _ = child.kill();
            panic!("cluster agent did not start: {}", log.lock().unwrap());
        }
    }
}

#[test]
fn cluster_agent_api_auth_limits_and_protocol() {
    let dir = std::env::temp_dir().join(format!("meshmon-ca-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mf = dir.join("svc.yaml");
    std::fs::write(&mf, manifests(&[("10.0.0.5", "node-a")])).unwrap();
    let mf_s = mf.display().to_string();

    // A short token is refused before anything listens.
    let out = Command::new(BIN)
        .arg("cluster-agent")
        .env("DD_CLUSTER_AGENT_AUTH_TOKEN", "too-short")
        .env("DD_CLUSTER_AGENT_CMD_PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 32 characters"), "{err}");
    assert!(!err.contains("too-short"), "token printed: {err}");

    let (mut child, ca, log) = start_loopback(
        &dir,
        &[
            ("DD_CLUSTER_AGENT_AUTH_TOKEN", TOKEN),
            ("DD_CLUSTER_CHECKS_ENABLED", "true"),
            ("MESHMON_MANIFESTS", &mf_s),
            // With the file provider there is no Lease: asking for election changes
            // nothing, this single replica leads (checked in /metrics below).
            ("DD_LEADER_ELECTION", "true"),
        ],
    );
    assert!(
        ca.starts_with("127.0.0.1:"),
        "binds loopback by default: {ca}"
    );
    let ca = ca.as_str();
    let t = Some(TOKEN);
    assert_eq!(http(ca, "GET", "/health", None, "").0, 200);
    assert_eq!(http(ca, "GET", "/api/v1/clusterchecks", None, "").0, 401);
    assert_eq!(
        http(ca, "GET", "/api/v1/clusterchecks", Some(&TOKEN[1..]), "").0,
        403
    );
    // Datadog's heartbeat protocol.
    let (code, body) = http(
        ca,
        "POST",
        "/api/v1/clusterchecks/status/node-b",
        t,
        r#"{"last_change":0}"#,
    );
    assert_eq!((code, body.trim()), (200, r#"{"isuptodate":false}"#));
    let cfgs = wait_for(10, "the cluster checks on node-b", || {
        let v = get_json(ca, "/api/v1/clusterchecks/configs/node-b", t);
        (v["configs"].as_array()?.len() == 6).then_some(v)
    });
    let c = &cfgs["configs"][0];
    assert_eq!(c["check_name"], "istio");
    assert_eq!(c["cluster_check"], true);
    assert!(
        c["instances"][0].is_string(),
        "instances are Go []byte (base64): {c}"
    );
    let lc = cfgs["last_change"].as_i64().unwrap();
    let (_, body) = http(
        ca,
        "POST",
        "/api/v1/clusterchecks/status/node-b",
        t,
        &format!(r#"{{"last_change":{lc}}}"#),
    );
    assert_eq!(body.trim(), r#"{"isuptodate":true}"#);
    // The endpoints check belongs to node-a only.
    let ep = get_json(ca, "/api/v1/endpointschecks/configs/node-a", t);
    assert_eq!(ep["configs"].as_array().unwrap().len(), 1);
    assert_eq!(ep["configs"][0]["node_name"], "node-a");
    let ep = get_json(ca, "/api/v1/endpointschecks/configs/node-b", t);
    assert!(ep["configs"].as_array().unwrap().is_empty());
    // Errors are explicit.
    assert_eq!(
        http(ca, "GET", "/api/v1/clusterchecks/configs/node-z", t, "").0,
        404
    );
    assert_eq!(
        http(ca, "GET", "/api/v1/clusterchecks/status/node-b", t, "").0,
        405
    );
    assert_eq!(
        http(ca, "GET", "/api/v1/endpointschecks/configs/a/b", t, "").0,
        400
    );
    assert_eq!(
        http(
            ca,
            "POST",
            "/api/v1/clusterchecks/status/node-b",
            t,
            "not json"
        )
        .0,
        400
    );
    // Limits: a body over max_body_bytes is 413; headers that never end are cut off.
    let big = format!(r#"{{"last_change":0,"pad":"{}"}}"#, "x".repeat(4096));
    assert_eq!(
        http(ca, "POST", "/api/v1/clusterchecks/status/node-b", t, &big).0,
        413
    );
    let mut slow = TcpStream::connect(ca).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(4) && !String::from_utf8_lossy(&buf[..n]).contains("200 OK"),
        "slow headers not cut off: {waited:?}"
    );
    let (_, metrics) = http(ca, "GET", "/metrics", t, "");
    for want in [
        "meshmon_cluster_agent_auth_failures_total{code=\"401\"} 1",
        "meshmon_cluster_agent_auth_failures_total{code=\"403\"} 1",
        "meshmon_cluster_agent_body_too_large_total 1",
        "meshmon_cluster_agent_nodes 1",
        "meshmon_cluster_agent_cluster_checks 6",
        "meshmon_cluster_agent_endpoints_unassigned 1",
        "meshmon_cluster_agent_leader 1",
        "meshmon_http_header_read_timeouts_total{listener=\"cluster_agent\"} 1",
        "meshmon_cluster_agent_became_leader_total 0",
        "meshmon_cluster_agent_lease_errors_total 0",
    ] {
        assert!(
            metrics.contains(want),
            "{want} not in\n{metrics}\n{}",
            log.lock().unwrap()
        );
    }
    assert!(
        log.lock()
            .unwrap()
            .contains("leader election (DD_LEADER_ELECTION) needs the Kubernetes API provider"),
        "{}",
        log.lock().unwrap()
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cluster agent's listener runs under the agent's connection guard: one connection
/// over `cluster_agent.max_connections` is answered 503 and closed, slowloris clients are
/// cut after `cluster_agent.read_timeout` (and free their places), headers over
/// `cluster_agent.max_header_bytes` get 431, browser requests from elsewhere 403, all
/// counted in `/metrics` with `listener="cluster_agent"`.
#[test]
fn cluster_agent_listener_is_guarded() {
    let dir = std::env::temp_dir().join(format!("meshmon-ca-guard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut child, ca, log) = start_loopback_cfg(
        &dir,
        "cluster_agent:\n  cmd_port: 0\n  read_timeout: 1s\n  max_connections: 3\n  max_connections_per_client: 3\n  max_header_bytes: 2048\n",
        &[
            ("DD_CLUSTER_AGENT_AUTH_TOKEN", TOKEN),
            ("DD_CLUSTER_CHECKS_ENABLED", "true"),
        ],
    );
    let ca = ca.as_str();
    // Three slowloris clients take every place: headers started, never finished.
    let opened = Instant::now();
    let mut slow: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(ca).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // The fourth connection is refused at once.
    let (code, body) = http(ca, "GET", "/health", None, "");
    assert_eq!((code, body.trim()), (503, "too many connections"));
    // The slow ones are cut after the header timeout (1 s), not served.
    for s in &mut slow {
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(
            !String::from_utf8_lossy(&buf[..n]).contains("200 OK"),
            "a slowloris client was served"
        );
    }
    let cut = opened.elapsed();
    assert!(
        cut >= Duration::from_millis(800) && cut < Duration::from_secs(5),
        "slow headers cut after {cut:?}"
    );
    // Their places are free again (a poll racing the slots' release is refused too).
    let mut refused = 1;
    wait_for(
        5,
        "served again once the slow clients are cut",
        || match http(ca, "GET", "/health", None, "").0 {
            200 => Some(()),
            code => {
                refused += usize::from(code == 503);
                None
            }
        },
    );
    // Headers over max_header_bytes: 431.
    let mut s = TcpStream::connect(ca).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "p".repeat(4096)
    )
    .unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    // A browser page of another site is refused before the token is even looked at.
    for header in ["Origin: http://evil.example", "Sec-Fetch-Site: cross-site"] {
        let mut s = TcpStream::connect(ca).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET /api/v1/clusterchecks HTTP/1.1\r\nHost: {ca}\r\n{header}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let resp = String::from_utf8_lossy(&resp);
        assert!(resp.starts_with("HTTP/1.1 403"), "{header}: {resp}");
    }
    // Its own origin is served.
    let mut s = TcpStream::connect(ca).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: {ca}\r\nOrigin: http://{ca}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    assert!(String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 200"));
    let (_, metrics) = http(ca, "GET", "/metrics", Some(TOKEN), "");
    let rejected =
        format!("meshmon_http_connections_rejected_total{{listener=\"cluster_agent\"}} {refused}");
    for want in [
        "meshmon_http_header_read_timeouts_total{listener=\"cluster_agent\"} 3",
        "meshmon_http_requests_header_too_large_total{listener=\"cluster_agent\"} 1",
        "meshmon_http_requests_cross_origin_total{listener=\"cluster_agent\"} 2",
        rejected.as_str(),
    ] {
        assert!(
            metrics.contains(want),
            "{want} not in\n{metrics}\n{}",
            log.lock().unwrap()
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Kubernetes API provider (feature `kube`) against a loopback API stand-in: list,
/// chunked watch from the list's `resourceVersion`, `410 Gone` on the watch (the watcher
/// must relist), churn. No real kube-apiserver could be run here.
#[cfg(feature = "kube")]
mod kube_api {
    use super::*;
    use serde_json::json;
    use std::sync::mpsc;

    struct Resource {
        list_kind: &'static str,
        api_version: &'static str,
        objects: BTreeMap<String, Value>,
        watchers: Vec<mpsc::Sender<Option<String>>>,
        lists: u64,
    }

    #[derive(Clone)]
    struct ApiServer {
        addr: String,
        world: Arc<Mutex<(u64, BTreeMap<&'static str, Resource>)>>,
        leases: Arc<Mutex<Leases>>,
        /// Signalled when a Lease GET waits at the start barrier.
        barrier: Arc<std::sync::Condvar>,
    }

    /// The coordination.k8s.io/v1 Leases, and what was asked of them.
    #[derive(Default)]
    struct Leases {
        objects: BTreeMap<String, Value>,
        /// (method, answer code) of every Lease request.
        log: Vec<(String, u16)>,
        /// GETs of a missing Lease held until this many replicas (told apart by their
        /// `User-Agent`) are waiting: the 409 race.
        hold_first_gets: usize,
        waiting: BTreeSet<String>,
    }

    const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/";

    const SERVICES: &str = "/api/v1/services";
    const ENDPOINTS: &str = "/api/v1/endpoints";
    const SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";

    fn key(o: &Value) -> String {
        format!(
            "{}/{}",
            o["metadata"]["namespace"].as_str().unwrap_or(""),
            o["metadata"]["name"].as_str().unwrap_or("")
        )
    }

    impl ApiServer {
        fn start() -> ApiServer {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap().to_string();
            let mut m = BTreeMap::new();
            for (p, k, v) in [
                (SERVICES, "ServiceList", "v1"),
                (ENDPOINTS, "EndpointsList", "v1"),
                (SLICES, "EndpointSliceList", "discovery.k8s.io/v1"),
            ] {
                m.insert(
                    p,
                    Resource {
                        list_kind: k,
                        api_version: v,
                        objects: BTreeMap::new(),
                        watchers: Vec::new(),
                        lists: 0,
                    },
                );
            }
            let srv = ApiServer {
                addr,
                world: Arc::new(Mutex::new((1000, m))),
                leases: Arc::default(),
                barrier: Arc::default(),
            };
            let s2 = srv.clone();
            std::thread::spawn(move || {
                for c in l.incoming() {
                    let Ok(c) = c else { continue };
                    let s = s2.clone();
                    std::thread::spawn(move || s.serve(c));
                }
            });
            srv
        }

        fn serve(&self, mut c: TcpStream) {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if c.read(&mut b).unwrap_or(0) == 0 {
                    return;
                }
                head.push(b[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let target = head.split(' ').nth(1).unwrap_or("/").to_owned();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            if path.starts_with(LEASES) && path.contains("/leases") {
                let method = head.split(' ').next().unwrap_or("GET").to_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                if c.read_exact(&mut body).is_err() {
                    return;
                }
                let agent = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("user-agent")
                            .then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default();
                let (code, answer) = self.lease(&method, path, &body, &agent);
                let reason = match code {
                    200 => "OK",
                    201 => "Created",
                    404 => "Not Found",
                    409 => "Conflict",
                    _ => "Bad Request",
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                return;
            }
            let watch = query
                .split('&')
                .any(|kv| kv == "watch=true" || kv == "watch=1");
            let mut w = self.world.lock().unwrap();
            let rv = w.0;
            let Some(r) = w.1.get_mut(path) else {
                let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#;
                let _ = write!(
                    c,
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                return;
            };
            if !watch {
                r.lists += 1;
                let body = json!({
                    "kind": r.list_kind, "apiVersion": r.api_version,
                    "metadata": {"resourceVersion": rv.to_string()},
                    "items": r.objects.values().collect::<Vec<_>>(),
                })
                .to_string();
                drop(w);
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                return;
            }
            let (tx, rx) = mpsc::channel();
            r.watchers.push(tx);
            drop(w);
            if c
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .is_err()
            {
                return;
            }
            loop {
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(Some(line)) => {
                        let chunk = format!("{:x}\r\n{line}\n\r\n", line.len() + 1);
                        if c.write_all(chunk.as_bytes()).is_err() {
                            return;
                        }
                    }
                    Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                        let _ = c.write_all(b"0\r\n\r\n");
                        return;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
            }
        }

        /// One Lease request: `GET`/`PUT` on `.../leases/{name}`, `POST` on `.../leases`.
        /// A `PUT` whose `metadata.resourceVersion` is not the stored one is `409
        /// Conflict`, as is a `POST` of an existing name.
        fn lease(&self, method: &str, path: &str, body: &[u8], agent: &str) -> (u16, String) {
            let status = |code: u16, reason: &str, msg: &str| {
                (
                    code,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": msg, "reason": reason, "code": code})
                    .to_string(),
                )
            };
            let mut l = self.leases.lock().unwrap();
            let sent: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let (code, answer) = match method {
                "GET" => {
                    if !l.objects.contains_key(path) && l.hold_first_gets > 0 {
                        // Hold both replicas' first reads so both see no Lease and race
                        // to create it.
                        l.waiting.insert(agent.to_owned());
                        self.barrier.notify_all();
                        let deadline = Instant::now() + Duration::from_secs(10);
                        while l.waiting.len() < l.hold_first_gets && Instant::now() < deadline {
                            l = self
                                .barrier
                                .wait_timeout(l, Duration::from_millis(50))
                                .unwrap()
                                .0;
                        }
                        l.hold_first_gets = 0;
                        self.barrier.notify_all();
                    }
                    match l.objects.get(path) {
                        Some(o) => (200, o.to_string()),
                        None => status(404, "NotFound", "leases.coordination.k8s.io not found"),
                    }
                }
                "POST" => {
                    let name = sent["metadata"]["name"].as_str().unwrap_or("").to_owned();
                    let key = format!("{}/{name}", path.trim_end_matches('/'));
                    match l.objects.entry(key) {
                        std::collections::btree_map::Entry::Occupied(_) => status(
                            409,
                            "AlreadyExists",
                            "leases.coordination.k8s.io already exists",
                        ),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            let o = self.stamp(sent, path);
                            v.insert(o.clone());
                            (201, o.to_string())
                        }
                    }
                }
                "PUT" => {
                    let stored_rv = l
                        .objects
                        .get(path)
                        .map(|o| o["metadata"]["resourceVersion"].clone());
                    match stored_rv {
                        None => status(404, "NotFound", "leases.coordination.k8s.io not found"),
                        Some(rv) if rv != sent["metadata"]["resourceVersion"] => status(
                            409,
                            "Conflict",
                            "Operation cannot be fulfilled on leases.coordination.k8s.io: the object has been modified; please apply your changes to the latest version and try again",
                        ),
                        Some(_) => {
                            let o = self.stamp(sent, path);
                            l.objects.insert(path.to_owned(), o.clone());
                            (200, o.to_string())
                        }
                    }
                }
                _ => status(405, "MethodNotAllowed", "method not allowed"),
            };
            l.log.push((method.to_owned(), code));
            (code, answer)
        }

        /// A new resourceVersion (from the same counter as every other object).
        fn stamp(&self, mut o: Value, path: &str) -> Value {
            let mut w = self.world.lock().unwrap();
            w.0 += 1;
            o["metadata"]["resourceVersion"] = json!(w.0.to_string());
            o["metadata"]["namespace"] = json!(
                path.strip_prefix(LEASES)
                    .and_then(|p| p.split('/').next())
                    .unwrap_or("")
            );
            o["kind"] = json!("Lease");
            o["apiVersion"] = json!("coordination.k8s.io/v1");
            o
        }

        fn lease_object(&self, ns: &str, name: &str) -> Option<Value> {
            let key = format!("{LEASES}{ns}/leases/{name}");
            self.leases.lock().unwrap().objects.get(&key).cloned()
        }

        /// Applies one change and sends it to the open watches.
        fn apply(&self, path: &'static str, kind: &str, mut obj: Value) {
            let mut w = self.world.lock().unwrap();
            w.0 += 1;
            let rv = w.0;
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let r = w.1.get_mut(path).unwrap();
            if kind == "DELETED" {
                r.objects.remove(&key(&obj));
            } else {
                r.objects.insert(key(&obj), obj.clone());
            }
            let line = json!({"type": kind, "object": obj}).to_string();
            r.watchers.retain(|t| t.send(Some(line.clone())).is_ok());
        }

        /// Answers every open watch with `410 Gone` and closes it.
        fn gone(&self) {
            let mut w = self.world.lock().unwrap();
            let status = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                "metadata": {}, "status": "Failure", "message": "too old resource version: 1000 (1042)",
                "reason": "Expired", "code": 410}})
            .to_string();
            for r in w.1.values_mut() {
                for t in r.watchers.drain(..) {
                    let _ = t.send(Some(status.clone()));
                    let _ = t.send(None);
                }
            }
        }

        fn lists(&self, path: &str) -> u64 {
            self.world.lock().unwrap().1[path].lists
        }

        fn watching(&self) -> bool {
            self.world
                .lock()
                .unwrap()
                .1
                .values()
                .all(|r| !r.watchers.is_empty())
        }
    }

    /// Service `istiod` as `kubectl get svc -o json` shows it (istio 1.2x install).
    fn istiod_service(port_name: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": "istiod", "namespace": "istio-system",
                "uid": "4c1e4d5e-8a47-4f3e-9a0f-2b8f5f3c9d11",
                "creationTimestamp": "2024-05-01T12:00:00Z",
                "labels": {"app": "istiod", "istio": "pilot", "istio.io/rev": "default",
                           "install.operator.istio.io/owning-resource": "unknown"},
                "annotations": {
                    "ad.datadoghq.com/endpoints.check_names": "[\"istio\"]",
                    "ad.datadoghq.com/endpoints.init_configs": "[{}]",
                    "ad.datadoghq.com/endpoints.instances":
                        format!("[{{\"istiod_endpoint\": \"http://%%host%%:%%port_{port_name}%%/metrics\"}}]"),
                }
            },
            "spec": {
                "clusterIP": "10.96.112.41", "clusterIPs": ["10.96.112.41"], "type": "ClusterIP",
                "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "sessionAffinity": "None", "selector": {"app": "istiod", "istio": "pilot"},
                "ports": [
                    {"name": "grpc-xds", "port": 15010, "protocol": "TCP", "targetPort": 15010},
                    {"name": "https-dns", "port": 15012, "protocol": "TCP", "targetPort": 15012},
                    {"name": "https-webhook", "port": 443, "protocol": "TCP", "targetPort": 15017},
                    {"name": "http-monitoring", "port": 15014, "protocol": "TCP", "targetPort": 15014}
                ]
            },
            "status": {"loadBalancer": {}}
        })
    }

    fn istiod_endpoints(
        ready: &[(&str, &str)],
        not_ready: &[(&str, &str)],
        port_name: &str,
    ) -> Value {
        let addr = |(ip, node): &(&str, &str)| {
            json!({"ip": ip, "nodeName": node, "targetRef": {"kind": "Pod", "namespace": "istio-system",
                   "name": format!("istiod-7d4f9c8b6-{}", ip.rsplit('.').next().unwrap_or("x")),
                   "uid": format!("uid-{ip}")}})
        };
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "istiod", "namespace": "istio-system",
                         "uid": "9f2d7c55-1b0e-4c57-8a44-3e6c0a7b2e90",
                         "creationTimestamp": "2024-05-01T12:00:01Z",
                         "labels": {"app": "istiod", "istio": "pilot"},
                         "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T12:00:05Z"}},
            "subsets": [{
                "addresses": ready.iter().map(addr).collect::<Vec<_>>(),
                "notReadyAddresses": not_ready.iter().map(addr).collect::<Vec<_>>(),
                "ports": [
                    {"name": "grpc-xds", "port": 15010, "protocol": "TCP"},
                    {"name": "https-dns", "port": 15012, "protocol": "TCP"},
                    {"name": "https-webhook", "port": 15017, "protocol": "TCP"},
                    {"name": port_name, "port": 15014, "protocol": "TCP"}
                ]
            }]
        })
    }

    /// Service `reviews` backed only by an EndpointSlice (no Endpoints object).
    fn reviews() -> (Value, Value) {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "reviews", "namespace": "bookinfo", "uid": "0d8f0e43-reviews",
                         "labels": {"app": "reviews", "service": "reviews"},
                         "annotations": {
                             "ad.datadoghq.com/endpoints.check_names": "[\"istio\"]",
                             "ad.datadoghq.com/endpoints.init_configs": "[{}]",
                             "ad.datadoghq.com/endpoints.instances": "[{\"istio_mesh_endpoint\": \"http://%%host%%:15090/stats/prometheus\"}]"}},
            "spec": {"clusterIP": "10.96.7.9", "type": "ClusterIP",
                     "ports": [{"name": "http", "port": 9080, "protocol": "TCP", "targetPort": 9080}],
                     "selector": {"app": "reviews"}}
        });
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "reviews-x7k2p", "namespace": "bookinfo", "uid": "slice-uid-1",
                         "generateName": "reviews-",
                         "labels": {"kubernetes.io/service-name": "reviews",
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "endpoints": [
                {"addresses": ["10.244.2.17"], "conditions": {"ready": true, "serving": true, "terminating": false},
                 "nodeName": "node-b", "targetRef": {"kind": "Pod", "namespace": "bookinfo", "name": "reviews-v1-5b8d7f-abcde", "uid": "pod-uid-r1"}}
            ],
            "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}]
        });
        (svc, slice)
    }

    /// (node, instance endpoint) of every endpoints check the cluster agent holds.
    fn endpoints_checks(ca: &str) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for node in ["node-a", "node-b", "node-c"] {
            let v = get_json(
                ca,
                &format!("/api/v1/endpointschecks/configs/{node}"),
                Some(TOKEN),
            );
            for c in v["configs"].as_array().unwrap() {
                use base64::Engine as _;
                let inst = base64::engine::general_purpose::STANDARD
                    .decode(c["instances"][0].as_str().unwrap())
                    .unwrap();
                let inst: Value = serde_json::from_slice(&inst).unwrap();
                let url = inst
                    .get("istiod_endpoint")
                    .or_else(|| inst.get("istio_mesh_endpoint"))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned();
                out.insert((node.to_owned(), url));
            }
        }
        out
    }

    fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn kube_provider_lists_watches_relists_and_follows_churn() {
        let api = ApiServer::start();
        api.apply(SERVICES, "ADDED", istiod_service("http-monitoring"));
        api.apply(
            ENDPOINTS,
            "ADDED",
            istiod_endpoints(&[("10.244.1.5", "node-a")], &[], "http-monitoring"),
        );
        let (svc, slice) = reviews();
        api.apply(SERVICES, "ADDED", svc);
        api.apply(SLICES, "ADDED", slice);

        let dir = std::env::temp_dir().join(format!("meshmon-kube-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("http://{}", api.addr);
        let (mut child, ca, log) = start_loopback(
            &dir,
            &[
                ("DD_CLUSTER_AGENT_AUTH_TOKEN", TOKEN),
                ("DD_CLUSTER_CHECKS_ENABLED", "true"),
                ("DD_EXTRA_CONFIG_PROVIDERS", "kube_endpoints kube_services"),
                ("MESHMON_CLUSTER_AGENT_KUBE_API_URL", &url),
            ],
        );
        let ca = ca.as_str();
        let wait = |what: &str, want: BTreeSet<(String, String)>| {
            wait_for(20, what, || (endpoints_checks(ca) == want).then_some(()))
        };
        // The initial list: istiod's pod on node-a (Endpoints), reviews' pod on node-b
        // (EndpointSlice only).
        wait(
            "the listed objects",
            set(&[
                ("node-a", "http://10.244.1.5:15014/metrics"),
                ("node-b", "http://10.244.2.17:15090/stats/prometheus"),
            ]),
        );
        wait_for(10, "open watches", || api.watching().then_some(()));
        // Churn through the watch: a pod added on node-c…
        api.apply(
            ENDPOINTS,
            "MODIFIED",
            istiod_endpoints(
                &[("10.244.1.5", "node-a"), ("10.244.3.8", "node-c")],
                &[],
                "http-monitoring",
            ),
        );
        wait(
            "the added pod",
            set(&[
                ("node-a", "http://10.244.1.5:15014/metrics"),
                ("node-c", "http://10.244.3.8:15014/metrics"),
                ("node-b", "http://10.244.2.17:15090/stats/prometheus"),
            ]),
        );
        // …node-a's pod turns not ready…
        api.apply(
            ENDPOINTS,
            "MODIFIED",
            istiod_endpoints(
                &[("10.244.3.8", "node-c")],
                &[("10.244.1.5", "node-a")],
                "http-monitoring",
            ),
        );
        wait(
            "the unready pod dropped",
            set(&[
                ("node-c", "http://10.244.3.8:15014/metrics"),
                ("node-b", "http://10.244.2.17:15090/stats/prometheus"),
            ]),
        );
        // …the watch expires (410 Gone) and, while no watch is open, the reviews slice is
        // deleted and the monitoring port renamed: only a relist can see it.
        let lists_before = api.lists(ENDPOINTS);
        api.gone();
        let (_, slice) = reviews();
        api.apply(SLICES, "DELETED", slice);
        api.apply(SERVICES, "MODIFIED", istiod_service("http-metrics"));
        api.apply(
            ENDPOINTS,
            "MODIFIED",
            istiod_endpoints(&[("10.244.3.8", "node-c")], &[], "http-metrics"),
        );
        wait(
            "the state after the relist",
            set(&[("node-c", "http://10.244.3.8:15014/metrics")]),
        );
        // The watcher relists once its watch has seen the 410; the new state can arrive
        // through the open watches of the other kinds first.
        crate::run::wait_for(10, "a relist after 410 Gone", || {
            (api.lists(ENDPOINTS) > lists_before).then_some(())
        });
        // The port renamed in the Endpoints but not in the template: the check cannot
        // resolve and is dropped (reported), not guessed.
        api.apply(
            ENDPOINTS,
            "MODIFIED",
            istiod_endpoints(&[("10.244.3.8", "node-c")], &[], "http-monitoring"),
        );
        wait("the renamed port", BTreeSet::new());
        let st = get_json(ca, "/api/v1/clusterchecks", Some(TOKEN));
        assert!(
            st["provider"]["last_error"].is_null(),
            "{st}\n{}",
            log.lock().unwrap()
        );
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `http` that reports a failed connection instead of panicking.
    fn try_http(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        try_http_head(addr, method, path, body).map(|(code, _, body)| (code, body))
    }

    /// [`try_http`], also returning the response head (status line and headers).
    fn try_http_head(
        addr: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> Option<(u16, String, String)> {
        let mut s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).ok()?;
        let text = String::from_utf8_lossy(&resp).to_string();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split(' ').nth(1)?.parse().ok()?;
        Some((code, head.to_ascii_lowercase(), body.to_owned()))
    }

    /// A replica process, killed when dropped (also when the test fails).
    struct Replica(Child);

    impl Drop for Replica {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// What a simulated node agent held after one poll.
    #[derive(Clone, Debug)]
    struct Sample {
        /// Seconds since the epoch.
        at: f64,
        cluster: BTreeSet<String>,
        endpoints: BTreeSet<String>,
        /// A failed request's status (0: no connection).
        error: Option<u16>,
    }

    fn epoch() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    fn ids(body: &str) -> Option<(i64, BTreeSet<String>)> {
        let v: Value = serde_json::from_str(body).ok()?;
        let set = v["configs"]
            .as_array()?
            .iter()
            .filter_map(|c| c["service_id"].as_str().map(str::to_owned))
            .collect();
        Some((v["last_change"].as_i64().unwrap_or(0), set))
    }

    /// A node agent speaking the node side's protocol (`src/cluster/client.rs`): heartbeat,
    /// fetch when not up to date, keep what it holds when a request fails (the grace).
    fn node_sim(
        ca: String,
        node: &'static str,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<Vec<Sample>> {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let (mut last_change, mut cluster, mut endpoints) =
                (0i64, BTreeSet::new(), BTreeSet::new());
            while !stop.load(Ordering::Relaxed) {
                let mut error = None;
                let status = format!("{{\"last_change\": {last_change}}}");
                match try_http(
                    &ca,
                    "POST",
                    &format!("/api/v1/clusterchecks/status/{node}"),
                    &status,
                ) {
                    Some((200, b)) => {
                        let up: Value = serde_json::from_str(&b).unwrap_or(Value::Null);
                        if up["isuptodate"] == Value::Bool(false) {
                            match try_http(
                                &ca,
                                "GET",
                                &format!("/api/v1/clusterchecks/configs/{node}"),
                                "",
                            ) {
                                Some((200, b)) => {
                                    if let Some((lc, set)) = ids(&b) {
                                        last_change = lc;
                                        cluster = set;
                                    }
                                }
                                r => error = Some(r.map_or(0, |r| r.0)),
                            }
                        }
                    }
                    r => error = Some(r.map_or(0, |r| r.0)),
                }
                match try_http(
                    &ca,
                    "GET",
                    &format!("/api/v1/endpointschecks/configs/{node}"),
                    "",
                ) {
                    Some((200, b)) => {
                        if let Some((_, set)) = ids(&b) {
                            endpoints = set;
                        }
                    }
                    r => error = error.or(Some(r.map_or(0, |r| r.0))),
                }
                out.push(Sample {
                    at: epoch(),
                    cluster: cluster.clone(),
                    endpoints: endpoints.clone(),
                    error,
                });
                std::thread::sleep(Duration::from_millis(200));
            }
            out
        })
    }

    fn metric(ca: &str, name: &str) -> Option<f64> {
        let (code, body) = try_http(ca, "GET", "/metrics", "")?;
        if code != 200 {
            return None;
        }
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    fn leader_of(ca: &str) -> Option<String> {
        let (_, body) = try_http(ca, "GET", "/metrics", "")?;
        let l = body
            .lines()
            .find(|l| l.starts_with("meshmon_cluster_agent_leader_info{"))?;
        let v = l.split("leader=\"").nth(1)?.split('"').next()?;
        (!v.is_empty()).then(|| v.to_owned())
    }

    /// Service `mesh-{i}` with a cluster check (no node): `kube_service://…`.
    fn cluster_service(i: u32) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("mesh-{i}"), "namespace": "istio-system", "uid": format!("svc-uid-{i}"),
                         "annotations": {
                             "ad.datadoghq.com/service.check_names": "[\"istio\"]",
                             "ad.datadoghq.com/service.init_configs": "[{}]",
                             "ad.datadoghq.com/service.instances": "[{\"istio_mesh_endpoint\": \"http://%%host%%:15090/stats/prometheus\"}]"}},
            "spec": {"clusterIP": format!("10.96.9.{i}"), "type": "ClusterIP",
                     "ports": [{"name": "http-monitoring", "port": 15090, "protocol": "TCP", "targetPort": 15090}]}
        })
    }

    /// A replica that finds a valid Lease held by another replica which advertises no URL
    /// follows it, dispatches nothing and answers the node agents' calls `503` with
    /// `Retry-After` ("retry, keep your configs"), not an empty list; a request another
    /// replica already forwarded is never forwarded again.
    #[test]
    fn a_follower_that_knows_no_leader_url_tells_node_agents_to_retry() {
        let api = ApiServer::start();
        api.apply(SERVICES, "ADDED", cluster_service(1));
        let now = serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::now(),
        ))
        .unwrap();
        let key = format!("{LEASES}meshmon/leases/meshmon-leader-election");
        api.leases.lock().unwrap().objects.insert(
            key,
            json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "meshmon-leader-election", "namespace": "meshmon",
                             "resourceVersion": "7"},
                "spec": {"holderIdentity": "replica-elsewhere", "leaseDurationSeconds": 60,
                         "acquireTime": now, "renewTime": now, "leaseTransitions": 3}
            }),
        );
        let dir = std::env::temp_dir().join(format!("meshmon-noleader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("http://{}", api.addr);
        let (c, ca, log) = start_loopback(
            &dir,
            &[
                ("DD_CLUSTER_AGENT_AUTH_TOKEN", TOKEN),
                ("DD_CLUSTER_CHECKS_ENABLED", "true"),
                ("DD_EXTRA_CONFIG_PROVIDERS", "kube_services"),
                ("MESHMON_CLUSTER_AGENT_KUBE_API_URL", &url),
                ("DD_LEADER_ELECTION", "true"),
                ("DD_KUBE_RESOURCES_NAMESPACE", "meshmon"),
                ("DD_POD_NAME", "replica-here"),
            ],
        );
        let _replica = Replica(c);
        wait_for(10, "following replica-elsewhere", || {
            (leader_of(&ca).as_deref() == Some("replica-elsewhere")).then_some(())
        });
        assert_eq!(metric(&ca, "meshmon_cluster_agent_leader"), Some(0.0));
        for (method, path, body) in [
            (
                "POST",
                "/api/v1/clusterchecks/status/node-a",
                "{\"last_change\": 0}",
            ),
            ("GET", "/api/v1/clusterchecks/configs/node-a", ""),
            ("GET", "/api/v1/endpointschecks/configs/node-a", ""),
        ] {
            let (code, head, text) = try_http_head(&ca, method, path, body).unwrap();
            assert_eq!(code, 503, "{path}: {head}\n{text}");
            assert!(head.contains("\r\nretry-after: "), "{head}");
            assert!(text.contains("no cluster agent leader known"), "{text}");
        }
        assert_eq!(
            metric(&ca, "meshmon_cluster_agent_no_leader_total"),
            Some(3.0)
        );
        assert_eq!(
            metric(&ca, "meshmon_cluster_agent_dispatched_total"),
            Some(0.0),
            "a follower dispatches nothing"
        );
        // The Lease is left to its holder: only reads.
        {
            let l = api.leases.lock().unwrap();
            assert!(l.log.iter().all(|(m, _)| m == "GET"), "{:?}", l.log);
        }
        let lease = api
            .lease_object("meshmon", "meshmon-leader-election")
            .unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], json!("replica-elsewhere"));
        assert!(
            log.lock().unwrap().contains("no leader known")
                || log.lock().unwrap().contains("following replica-elsewhere"),
            "{}",
            log.lock().unwrap()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Two cluster-agent replicas elect a leader through the Lease: both start at once
    /// (the stand-in holds their first reads so both try to create the Lease: one 201,
    /// one 409), the follower forwards node agents to the leader, the leader is killed
    /// (SIGKILL, no release) and the follower takes over within the lease duration plus a
    /// renew period, waits its warm-up before moving anything, and node agents keep their
    /// configs throughout.
    #[test]
    fn two_replicas_elect_one_leader_forward_and_hand_over() {
        const LEASE_S: f64 = 2.0;
        const WARMUP_S: f64 = 2.0;
        let api = ApiServer::start();
        api.leases.lock().unwrap().hold_first_gets = 2;
        api.apply(SERVICES, "ADDED", istiod_service("http-monitoring"));
        api.apply(
            ENDPOINTS,
            "ADDED",
            istiod_endpoints(
                &[("10.244.1.5", "node-a"), ("10.244.2.6", "node-b")],
                &[],
                "http-monitoring",
            ),
        );
        for i in 1..=4 {
            api.apply(SERVICES, "ADDED", cluster_service(i));
        }
        let url = format!("http://{}", api.addr);
        let base = std::env::temp_dir().join(format!("meshmon-lease-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let start = |id: &'static str| {
            let dir = base.join(id);
            std::fs::create_dir_all(&dir).unwrap();
            let url = url.clone();
            std::thread::spawn(move || {
                start_loopback(
                    &dir,
                    &[
                        ("DD_CLUSTER_AGENT_AUTH_TOKEN", TOKEN),
                        ("DD_CLUSTER_CHECKS_ENABLED", "true"),
                        ("DD_EXTRA_CONFIG_PROVIDERS", "kube_endpoints kube_services"),
                        ("MESHMON_CLUSTER_AGENT_KUBE_API_URL", &url),
                        ("DD_LEADER_ELECTION", "true"),
                        ("DD_LEADER_LEASE_DURATION", "2"),
                        ("DD_KUBE_RESOURCES_NAMESPACE", "meshmon"),
                        ("DD_POD_NAME", id),
                        ("DD_CLUSTER_CHECKS_WARMUP_DURATION", "2s"),
                        ("DD_CLUSTER_CHECKS_NODE_EXPIRATION_TIMEOUT", "10s"),
                    ],
                )
            })
        };
        let (a, b) = (start("replica-a"), start("replica-b"));
        let mut replicas: BTreeMap<String, (Replica, String, Arc<Mutex<String>>)> = BTreeMap::new();
        for (id, h) in [("replica-a", a), ("replica-b", b)] {
            let (c, addr, log) = h.join().unwrap();
            replicas.insert(id.into(), (Replica(c), addr, log));
        }
        let logs = |r: &BTreeMap<String, (Replica, String, Arc<Mutex<String>>)>| {
            r.iter()
                .map(|(k, v)| format!("--- {k} ---\n{}", v.2.lock().unwrap()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let addr = |id: &str| replicas[id].1.clone();

        // Exactly one leader; the other follows it.
        let (leader, follower) = wait_for(10, "one leader", || {
            let la = metric(&addr("replica-a"), "meshmon_cluster_agent_leader")?;
            let lb = metric(&addr("replica-b"), "meshmon_cluster_agent_leader")?;
            let (l, f) = match (la, lb) {
                (1.0, 0.0) => ("replica-a", "replica-b"),
                (0.0, 1.0) => ("replica-b", "replica-a"),
                _ => return None,
            };
            (leader_of(&addr(f)).as_deref() == Some(l)).then_some((l.to_owned(), f.to_owned()))
        });
        let (la, fa) = (addr(&leader), addr(&follower));
        {
            let l = api.leases.lock().unwrap();
            let posts: Vec<u16> = l
                .log
                .iter()
                .filter(|(m, _)| m == "POST")
                .map(|(_, c)| *c)
                .collect();
            assert_eq!(
                posts.iter().filter(|c| **c == 201).count(),
                1,
                "{:?}",
                l.log
            );
            assert_eq!(
                posts.iter().filter(|c| **c == 409).count(),
                1,
                "both raced to create: {:?}",
                l.log
            );
        }
        assert!(metric(&fa, "meshmon_cluster_agent_lease_conflicts_total").unwrap() >= 1.0);
        let lease = api
            .lease_object("meshmon", "meshmon-leader-election")
            .unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], json!(leader), "{lease}");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], json!(2));
        assert_eq!(lease["spec"]["leaseTransitions"], json!(0));
        assert_eq!(
            lease["metadata"]["annotations"]["meshmon.io/leader-url"],
            json!(format!("http://{la}"))
        );
        assert_eq!(
            try_http(&fa, "GET", "/health", "").map(|r| r.0),
            Some(200),
            "/health on the follower"
        );

        // Node agents polling the follower get what the leader dispatches.
        let stop = Arc::new(AtomicBool::new(false));
        let sims: Vec<_> = ["node-a", "node-b", "node-c"]
            .into_iter()
            .map(|n| (n, node_sim(fa.clone(), n, stop.clone())))
            .collect();
        let all: BTreeSet<String> = (1..=4)
            .map(|i| format!("kube_service://istio-system/mesh-{i}"))
            .collect();
        let spread = |ca: &str| -> Option<BTreeMap<String, BTreeSet<String>>> {
            let mut m = BTreeMap::new();
            for n in ["node-a", "node-b", "node-c"] {
                let (code, body) =
                    try_http(ca, "GET", &format!("/api/v1/clusterchecks/configs/{n}"), "")?;
                if code != 200 {
                    return None;
                }
                m.insert(n.to_owned(), ids(&body)?.1);
            }
            let union: BTreeSet<String> = m.values().flatten().cloned().collect();
            let total: usize = m.values().map(BTreeSet::len).sum();
            (union == all && total == all.len() && m.values().all(|s| !s.is_empty())).then_some(m)
        };
        let via_follower = wait_for(15, "cluster checks spread over the three nodes", || {
            spread(&fa)
        });
        assert_eq!(
            spread(&la).as_ref(),
            Some(&via_follower),
            "the follower answers what the leader dispatched"
        );
        let ep_f = try_http(&fa, "GET", "/api/v1/endpointschecks/configs/node-a", "").unwrap();
        let ep_l = try_http(&la, "GET", "/api/v1/endpointschecks/configs/node-a", "").unwrap();
        assert_eq!(ep_f, ep_l);
        assert_eq!(ids(&ep_f.1).unwrap().1.len(), 1, "{}", ep_f.1);
        let text = try_http(&fa, "GET", "/metrics", "").unwrap().1;
        assert!(
            text.contains("meshmon_cluster_agent_forwarded_total{code=\"200\"}"),
            "{text}"
        );
        // Let every node hold its configs before the handover.
        std::thread::sleep(Duration::from_millis(800));

        // The leader dies without releasing the lease.
        let killed = Instant::now();
        let killed_at = epoch();
        {
            let c = &mut replicas.get_mut(&leader).unwrap().0.0;
            let _ = c.kill();
            let _ = c.wait();
        }
        // The lease still names the dead leader (it expires up to 2 s from now): the
        // follower cannot forward and tells the node agent to retry, not "no configs".
        let (code, head, body) =
            try_http_head(&fa, "GET", "/api/v1/clusterchecks/configs/node-a", "").unwrap();
        assert_eq!(code, 503, "{head}\n{body}");
        assert!(head.contains("\r\nretry-after: "), "{head}");
        assert!(
            body.contains(&format!("the leader {leader}")) && body.contains("retry later"),
            "{body}"
        );
        let (took_over, dispatched_at_takeover, warming) =
            wait_for(10, "the follower takes over", || {
                (metric(&fa, "meshmon_cluster_agent_leader")? == 1.0).then(|| {
                    (
                        killed.elapsed(),
                        metric(&fa, "meshmon_cluster_agent_dispatched_total").unwrap_or(-1.0),
                        metric(&fa, "meshmon_cluster_agent_warming_up").unwrap_or(-1.0),
                    )
                })
            });
        // When it became leader, by its clock (the system clock, as the test's).
        let st = get_json(&fa, "/api/v1/clusterchecks", Some(TOKEN));
        let warm_end = st["election"]["leader_since"].as_f64().unwrap() + WARMUP_S;
        assert!(
            st["warmup"].as_bool().unwrap() || epoch() >= warm_end,
            "{st}"
        );
        eprintln!(
            "takeover {:.2} s after the leader was killed (lease {LEASE_S} s)",
            took_over.as_secs_f64()
        );
        assert!(
            took_over.as_secs_f64() <= LEASE_S + LEASE_S / 3.0 + 1.5,
            "takeover took {took_over:?}\n{}",
            logs(&replicas)
        );
        assert_eq!(warming, 1.0, "a new leader warms up");
        assert_eq!(
            dispatched_at_takeover, 0.0,
            "nothing dispatched at the takeover"
        );
        let lease = api
            .lease_object("meshmon", "meshmon-leader-election")
            .unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], json!(follower), "{lease}");
        assert_eq!(lease["spec"]["leaseTransitions"], json!(1), "{lease}");
        assert_eq!(
            metric(&fa, "meshmon_cluster_agent_leader_transitions"),
            Some(1.0)
        );
        // During the warm-up nothing moves…
        std::thread::sleep(Duration::from_secs_f64(WARMUP_S * 0.6));
        if epoch() < warm_end - 0.1 {
            assert_eq!(
                metric(&fa, "meshmon_cluster_agent_dispatched_total"),
                Some(0.0)
            );
        }
        // …then the cluster checks are dispatched again over the nodes that reported.
        let after = wait_for(15, "the checks re-dispatched by the new leader", || {
            spread(&fa)
        });
        assert!(metric(&fa, "meshmon_cluster_agent_dispatched_total").unwrap() >= all.len() as f64);
        assert_eq!(metric(&fa, "meshmon_cluster_agent_warming_up"), Some(0.0));
        std::thread::sleep(Duration::from_millis(800));
        stop.store(true, Ordering::Relaxed);

        // What the node agents held: after their first configs, never nothing; nothing
        // changed during the warm-up; at the end what the new leader dispatched.
        let mut errors = 0;
        for (n, h) in sims {
            let samples = h.join().unwrap();
            errors += samples.iter().filter(|s| s.error.is_some()).count();
            let first = samples
                .iter()
                .position(|s| !s.cluster.is_empty())
                .unwrap_or_else(|| panic!("{n} never got a cluster check"));
            for s in &samples[first..] {
                assert!(
                    !s.cluster.is_empty(),
                    "{n} lost its cluster checks: {samples:?}"
                );
                if n != "node-c" {
                    assert_eq!(
                        s.endpoints.len(),
                        1,
                        "{n} lost its endpoints check: {samples:?}"
                    );
                }
            }
            let before: Vec<&Sample> = samples.iter().filter(|s| s.at < killed_at).collect();
            let held = &before.last().unwrap().cluster;
            for s in samples
                .iter()
                .filter(|s| s.at > killed_at && s.at < warm_end)
            {
                assert_eq!(
                    &s.cluster, held,
                    "{n} changed during the handover or the warm-up"
                );
            }
            assert_eq!(&samples.last().unwrap().cluster, &after[n], "{n}");
        }
        eprintln!("node polls that failed during the handover (kept their configs): {errors}");
        drop(replicas);
        let _ = std::fs::remove_dir_all(&base);
    }
}
