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
    let cfg = dir.join("ca.yaml");
    std::fs::write(
        &cfg,
        "cluster_agent:\n  cmd_port: 0\n  max_body_bytes: 1024\n  read_timeout: 1s\n  warmup_duration: 0s\nautodiscovery:\n  poll_interval: 1s\n",
    )
    .unwrap();
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
    }

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
        assert!(
            api.lists(ENDPOINTS) > lists_before,
            "no relist after 410 Gone"
        );
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
}
