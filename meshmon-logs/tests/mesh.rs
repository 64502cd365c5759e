//! A seeded generator of labelled mesh logs (no network, deterministic): Envoy access
//! logs in Istio's default proxy format and Envoy's default format (with and without
//! the upstream cluster, inbound and outbound sides of a call, every response flag),
//! istiod and pilot-agent logs, application logs in JSON and logfmt, Java and Python
//! stack traces (multi-line). Each line carries its family and its true template,
//! labelled by an operator's rule: method, route shape, protocol, response code,
//! response flags and details are constants; ids, sizes, durations, addresses, user
//! agents and names are variables (`<*>`).
//!
//! The generator was written from the formats' documentation (Envoy "Access logging",
//! Istio `meshConfig.accessLogFormat`, istio.io/pkg/log) and never from the miner's
//! output; the accuracy test runs the miner on it as an agent would.

use std::fmt::Write;

/// SplitMix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    pub fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            let _ = write!(s, "{:016x}", self.next());
        }
        s.truncate(n);
        s
    }
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
    pub fn ip(&mut self) -> String {
        format!(
            "10.{}.{}.{}",
            self.below(4),
            self.below(256),
            1 + self.below(254)
        )
    }
    pub fn upper_id(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        // Product-style ids always hold a digit somewhere (as Online Boutique's do).
        let mut s: String = (0..n).map(|_| A[self.below(A.len())] as char).collect();
        let at = self.below(n);
        s.replace_range(at..at + 1, &self.below(10).to_string());
        s
    }
    pub fn pod(&mut self, app: &str) -> String {
        format!(
            "{app}-v{}-{}-{}",
            1 + self.below(3),
            self.hex(10),
            self.hex(5)
        )
    }
    pub fn ts(&mut self, i: usize) -> String {
        let s = i as u64 * 37 + self.next() % 1000;
        format!(
            "2024-05-01T{:02}:{:02}:{:02}.{:06}Z",
            (s / 3600) % 24,
            (s / 60) % 60,
            s % 60,
            self.next() % 1_000_000
        )
    }
}

/// One labelled log: its lines (several for stack traces), family and true template.
pub struct Labelled {
    pub lines: Vec<String>,
    pub family: &'static str,
    pub template: String,
}

/// The label of one value: `<*>`, or `<*>:<*>` for an address with its port (host and
/// port are two variables, as the Loghub-2.0 corrected labels write `10.0.0.1:50010`).
fn label_of(v: &str) -> &'static str {
    match v.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty()
                && !host.contains(['/', ':', ' '])
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            "<*>:<*>"
        }
        _ => "<*>",
    }
}

/// A template with holes: `{}` is a variable. Rendering fills each hole from `vals` in
/// order; the label puts [`label_of`] the value there.
fn fill(tpl: &str, vals: &[String]) -> (String, String) {
    let mut line = String::new();
    let mut label = String::new();
    let mut it = vals.iter();
    let mut rest = tpl;
    while let Some(i) = rest.find("{}") {
        line.push_str(&rest[..i]);
        label.push_str(&rest[..i]);
        let v = it.next().map_or("", String::as_str);
        line.push_str(v);
        label.push_str(label_of(v));
        rest = &rest[i + 2..];
    }
    line.push_str(rest);
    label.push_str(rest);
    (line, label)
}

const SERVICES: &[(&str, u16)] = &[
    ("productpage", 9080),
    ("reviews", 9080),
    ("ratings", 9080),
    ("details", 9080),
    ("cartservice", 7070),
    ("checkout", 5050),
    ("frontend", 8080),
    ("users", 8080),
];

/// Route shapes: `{}` segments are ids (digits, UUIDs, product codes).
#[derive(Clone, Copy)]
enum Seg {
    Num,
    Uuid,
    Code,
    User,
}

const ROUTES: &[(&str, &str, &[Seg], &str)] = &[
    ("GET", "/productpage", &[], "HTTP/1.1"),
    ("GET", "/reviews/{}", &[Seg::Num], "HTTP/1.1"),
    ("GET", "/ratings/{}", &[Seg::Num], "HTTP/1.1"),
    ("GET", "/details/{}", &[Seg::Num], "HTTP/1.1"),
    ("GET", "/api/v1/products/{}", &[Seg::Code], "HTTP/2"),
    ("POST", "/api/v1/cart/{}/items", &[Seg::Uuid], "HTTP/2"),
    (
        "DELETE",
        "/api/v1/cart/{}/items/{}",
        &[Seg::Uuid, Seg::Code],
        "HTTP/2",
    ),
    (
        "POST",
        "/hipstershop.CheckoutService/PlaceOrder",
        &[],
        "HTTP/2",
    ),
    (
        "GET",
        "/api/v2beta1/users/{}/orders",
        &[Seg::User],
        "HTTP/1.1",
    ),
    ("PUT", "/api/v1/users/{}", &[Seg::Num], "HTTP/1.1"),
    ("GET", "/healthz/ready", &[], "HTTP/1.1"),
    ("GET", "/static/css/bootstrap.min.css", &[], "HTTP/1.1"),
];

/// (code, flags, details): response outcomes with Envoy's flags and Istio's details.
const OUTCOMES: &[(&str, &str, &str)] = &[
    ("200", "-", "via_upstream"),
    ("200", "-", "via_upstream"),
    ("200", "-", "via_upstream"),
    ("201", "-", "via_upstream"),
    ("204", "-", "via_upstream"),
    ("304", "-", "via_upstream"),
    ("404", "-", "via_upstream"),
    ("404", "NR", "route_not_found"),
    ("500", "-", "via_upstream"),
    (
        "502",
        "UC",
        "upstream_reset_before_response_started{connection_termination}",
    ),
    (
        "503",
        "UF",
        "upstream_reset_before_response_started{connection_failure}",
    ),
    ("503", "UH", "no_healthy_upstream"),
    (
        "503",
        "UO",
        "upstream_reset_before_response_started{overflow}",
    ),
    ("503", "URX", "via_upstream"),
    ("503", "NC", "cluster_not_found"),
    ("504", "UT", "response_timeout"),
    ("0", "DC", "downstream_remote_disconnect"),
    ("429", "RL", "request_rate_limited"),
    ("403", "UAEX", "ext_authz_denied"),
    ("403", "-", "rbac_access_denied_matched_policy[none]"),
    ("400", "DPE", "http1.codec_error"),
    ("408", "DT", "request_overall_timeout"),
    ("503", "LH", "via_upstream"),
    ("500", "UMSDR", "maximum_stream_duration_reached"),
    ("503", "LR", "local_reset"),
    (
        "503",
        "UR",
        "upstream_reset_before_response_started{remote_reset}",
    ),
    ("200", "DI", "via_upstream"),
    ("503", "FI", "fault_filter_abort"),
    ("500", "RLSE", "rate_limiter_error"),
    ("400", "IH", "request_headers_failed_strict_check"),
    ("408", "SI", "stream_idle_timeout"),
    (
        "502",
        "UPE",
        "upstream_reset_after_response_started{protocol_error}",
    ),
    ("503", "OM", "overload"),
    ("503", "DF", "dns_resolution_failure"),
    ("503", "DO", "drop_overload"),
    ("500", "NFCF", "filter_config_not_found"),
];

const AGENTS: &[&str] = &[
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "grpc-go/1.62.1",
    "python-requests/2.31.0",
    "-",
];

const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace"];

fn envoy(rng: &mut Rng, i: usize, out: &mut Vec<Labelled>) {
    let &(method, route, segs, proto) = rng.pick(ROUTES);
    let &(code, flags, details) = rng.pick(OUTCOMES);
    let mut path = String::new();
    let mut shape = String::new();
    let mut rest = route;
    let mut k = 0;
    while let Some(p) = rest.find("{}") {
        path.push_str(&rest[..p]);
        shape.push_str(&rest[..p]);
        let v = match segs[k] {
            Seg::Num => (1 + rng.below(5000)).to_string(),
            Seg::Uuid => rng.uuid(),
            Seg::Code => rng.upper_id(10),
            Seg::User => (*rng.pick(USERS)).to_owned(),
        };
        path.push_str(&v);
        shape.push_str("<*>");
        k += 1;
        rest = &rest[p + 2..];
    }
    path.push_str(rest);
    shape.push_str(rest);
    if method == "GET" && rng.chance(15) {
        let _ = write!(
            path,
            "?page={}&size={}",
            rng.below(9),
            10 * (1 + rng.below(5))
        );
        shape.push_str("?<*>");
    }
    let &(svc, port) = rng.pick(SERVICES);
    let ns = *rng.pick(&["default", "shop", "bookinfo"]);
    let ts = rng.ts(i);
    let rid = rng.uuid();
    let agent = *rng.pick(AGENTS);
    let (recv, sent, dur) = (rng.below(4000), rng.below(90_000), rng.below(3000));
    let svc_time = if flags == "-" {
        rng.below(dur + 1).to_string()
    } else {
        "-".to_owned()
    };
    let upstream = format!("{}:{port}", rng.ip());
    let label = if details == "-" {
        format!("{method} {shape} {proto} {code} {flags}")
    } else {
        format!("{method} {shape} {proto} {code} {flags} {details}")
    };
    let transport = if flags == "UF" {
        "delayed connect error: 111"
    } else {
        "-"
    };
    // Envoy's default format (no upstream cluster) for some proxies.
    if rng.chance(15) {
        let line = format!(
            r#"[{ts}] "{method} {path} {proto}" {code} {flags} {recv} {sent} {dur} {svc_time} "{}" "{agent}" "{rid}" "{svc}:{port}" "{upstream}""#,
            rng.ip()
        );
        out.push(Labelled {
            lines: vec![line],
            family: "envoy",
            template: format!("{method} {shape} {proto} {code} {flags}"),
        });
        return;
    }
    let client = rng.ip();
    let fqdn = format!("{svc}.{ns}.svc.cluster.local");
    // Outbound (client sidecar), inbound (server sidecar), or both sides of the call.
    let sides = *rng.pick(&[1u8, 2, 3, 3]);
    if sides & 1 != 0 {
        let line = format!(
            r#"[{ts}] "{method} {path} {proto}" {code} {flags} {details} - "{transport}" {recv} {sent} {dur} {svc_time} "-" "{agent}" "{rid}" "{svc}:{port}" "{upstream}" outbound|{port}||{fqdn} {client}:{} 10.96.{}.{}:{port} {client}:{} - default"#,
            30000 + rng.below(30000),
            rng.below(255),
            rng.below(255),
            30000 + rng.below(30000)
        );
        out.push(Labelled {
            lines: vec![line],
            family: "envoy",
            template: label.clone(),
        });
    }
    if sides & 2 != 0 {
        let line = format!(
            r#"[{ts}] "{method} {path} {proto}" {code} {flags} {details} - "-" {recv} {sent} {} {} "{client}" "{agent}" "{rid}" "{svc}:{port}" "{upstream}" inbound|{port}|| 127.0.0.6:{} {upstream} {client}:0 outbound_.{port}_._.{fqdn} default"#,
            dur.saturating_sub(1),
            if svc_time == "-" {
                "-".to_owned()
            } else {
                rng.below(dur + 1).to_string()
            },
            30000 + rng.below(30000)
        );
        out.push(Labelled {
            lines: vec![line],
            family: "envoy",
            template: label,
        });
    }
}

/// Component logs: `(scope, level, template, value makers)`.
type Maker = fn(&mut Rng) -> String;

fn proxy_id(r: &mut Rng) -> String {
    let app = r.pick(SERVICES).0;
    format!(
        "sidecar~{}~{}.default~default.svc.cluster.local",
        r.ip(),
        r.pod(app)
    )
}
fn conn_id(r: &mut Rng) -> String {
    let app = r.pick(SERVICES).0;
    format!("{}.default-{}", r.pod(app), 1 + r.below(40))
}
fn num(r: &mut Rng) -> String {
    r.below(500).to_string()
}
fn size(r: &mut Rng) -> String {
    format!("{}.{}kB", 1 + r.below(90), r.below(10))
}
fn millis(r: &mut Rng) -> String {
    format!("{}.{}ms", r.below(400), r.below(1000))
}
fn addr(r: &mut Rng) -> String {
    format!("{}:{}", r.ip(), 30000 + r.below(30000))
}
fn svc_fqdn(r: &mut Rng) -> String {
    format!("{}.default.svc.cluster.local", r.pick(SERVICES).0)
}
fn ns_name(r: &mut Rng) -> String {
    let ns = *r.pick(&["default", "shop", "bookinfo", "istio-system"]);
    format!("{ns}/{}.{ns}.svc.cluster.local", r.pick(SERVICES).0)
}
fn boolean(r: &mut Rng) -> String {
    (*r.pick(&["true", "false"])).to_owned()
}
fn version(r: &mut Rng) -> String {
    format!(
        "2024-05-01T{:02}:{:02}:{:02}Z/{}",
        r.below(24),
        r.below(60),
        r.below(60),
        r.below(900)
    )
}
fn duration_h(r: &mut Rng) -> String {
    format!(
        "{}h{}m{}.{}s",
        r.below(24),
        r.below(60),
        r.below(60),
        r.below(1000)
    )
}
fn user(r: &mut Rng) -> String {
    (*r.pick(&USERS[..3])).to_owned()
}
fn order(r: &mut Rng) -> String {
    r.uuid()
}
fn amount(r: &mut Rng) -> String {
    format!("{}.{:02}", r.below(500), r.below(100))
}
fn host_port(r: &mut Rng) -> String {
    if r.chance(50) {
        format!("{}:{}", r.ip(), *r.pick(&["443", "5432", "6379"]))
    } else {
        format!(
            "{}:{}",
            *r.pick(&[
                "api.example.com",
                "db.internal.example.org",
                "cache.shop.svc"
            ]),
            *r.pick(&["443", "5432", "6379"])
        )
    }
}
fn go_version(r: &mut Rng) -> String {
    (*r.pick(&["go1.21.9", "go1.22.2", "go1.22.3"])).to_owned()
}
fn http_code(r: &mut Rng) -> String {
    (*r.pick(&["500", "502", "503", "504"])).to_owned()
}

const ISTIOD: &[(&str, &str, &str, &[Maker])] = &[
    ("ads", "info", "ADS: new connection for node:{}", &[conn_id]),
    ("ads", "info", "ADS: \"{}\" {} terminated", &[addr, conn_id]),
    (
        "ads",
        "info",
        "CDS: PUSH request for node:{} resources:{} size:{}",
        &[conn_id, num, size],
    ),
    (
        "ads",
        "info",
        "LDS: PUSH for node:{} resources:{} size:{}",
        &[conn_id, num, size],
    ),
    (
        "ads",
        "info",
        "EDS: PUSH request for node:{} resources:{} size:{} empty:{} cached:{}",
        &[conn_id, num, size, num, num],
    ),
    (
        "ads",
        "info",
        "XDS: Pushing Services:{} ConnectedEndpoints:{} Version:{}",
        &[num, num, version],
    ),
    (
        "ads",
        "info",
        "Push debounce stable[{}] {} for config ServiceEntry/{}: {} since last change, {} since last push, full={}",
        &[num, num, ns_name, millis, millis, boolean],
    ),
    (
        "ads",
        "warn",
        "ADS: \"{}\" {} terminated with stream closed",
        &[addr, conn_id],
    ),
    ("model", "info", "Full push, new service {}", &[ns_name]),
    (
        "status",
        "error",
        "failed to update status for {}: the object has been modified; please apply your changes to the latest version and try again",
        &[svc_fqdn],
    ),
    (
        "validationController",
        "info",
        "Not ready to switch validation to fail-closed: dummy invalid config not rejected",
        &[],
    ),
    (
        "ca",
        "info",
        "generated new workload certificate for {} ttl {}",
        &[proxy_id, duration_h],
    ),
];

const PILOT_AGENT: &[(&str, &str, &str, &[Maker])] = &[
    (
        "xdsproxy",
        "info",
        "connected to upstream XDS server: istiod.istio-system.svc:15012",
        &[],
    ),
    (
        "xdsproxy",
        "warn",
        "upstream terminated with unexpected error rpc error: code = Unavailable desc = closing transport due to: connection error: desc = \"error reading from server: EOF\", received prior goaway: code: NO_ERROR",
        &[],
    ),
    (
        "cache",
        "info",
        "generated new workload certificate latency={} ttl={}",
        &[millis, duration_h],
    ),
    (
        "cache",
        "info",
        "Root cert has changed, start rotating root cert",
        &[],
    ),
    (
        "ads",
        "info",
        "SDS: PUSH request for node:{} resources:1 size:{} resource:default",
        &[conn_id, size],
    ),
    (
        "healthcheck",
        "warn",
        "failed to probe application: Get \"http://{}/healthz\": dial tcp {}: connect: connection refused",
        &[addr, addr],
    ),
    (
        "sds",
        "info",
        "SDS server for workload certificates started, listening on \"var/run/secrets/workload-spiffe-uds/socket\"",
        &[],
    ),
    ("envoy", "info", "Envoy proxy is ready", &[]),
];

/// Application messages, including the failure classes of issue 15: optional
/// parenthesised values, empty vs filled brackets, glued `host:port`, low-cardinality
/// names, constants with digits.
const APP: &[(&str, &str, &[Maker])] = &[
    (
        "info",
        "order {} placed by user {} amount {} USD",
        &[order, user, amount],
    ),
    ("info", "session opened for user {}", &[user]),
    ("warn", "slow query took {} on {}", &[millis, host_port]),
    ("info", "connected to {} using TLSv1.3", &[host_port]),
    (
        "error",
        "payment declined for order {}: card expired",
        &[order],
    ),
    ("info", "cache refreshed: {} entries in {}", &[num, millis]),
    ("info", "built for linux x86_64 with {}", &[go_version]),
    (
        "error",
        "upstream {} returned HTTP/1.1 {} after {}",
        &[host_port, http_code, millis],
    ),
];

fn istio_line(
    rng: &mut Rng,
    i: usize,
    tab: &[(&str, &str, &str, &[Maker])],
    family: &'static str,
    out: &mut Vec<Labelled>,
) {
    let &(scope, level, tpl, makers) = rng.pick(tab);
    let vals: Vec<String> = makers.iter().map(|m| m(rng)).collect();
    let (msg, label) = fill(tpl, &vals);
    let ts = rng.ts(i);
    out.push(Labelled {
        lines: vec![format!("{ts}\t{level}\t{scope}\t{msg}")],
        family,
        template: label,
    });
}

fn json_escape(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn app_line(rng: &mut Rng, i: usize, out: &mut Vec<Labelled>) {
    let &(level, tpl, makers) = rng.pick(APP);
    let vals: Vec<String> = makers.iter().map(|m| m(rng)).collect();
    let (msg, label) = fill(tpl, &vals);
    let ts = rng.ts(i);
    let rid = rng.hex(16);
    if rng.chance(50) {
        out.push(Labelled {
            lines: vec![format!(
                r#"{{"ts":"{ts}","level":"{level}","logger":"shop.api","msg":{},"trace_id":"{rid}"}}"#,
                json_escape(&msg)
            )],
            family: "app-json",
            template: label,
        });
    } else {
        out.push(Labelled {
            lines: vec![format!(
                "time={ts} level={level} caller=api/handler.go:{} msg={} trace_id={rid}",
                10 + rng.below(300),
                json_escape(&msg)
            )],
            family: "app-logfmt",
            template: label,
        });
    }
}

const JAVA: &[(&str, &str, &[Maker], &[&str])] = &[
    (
        "java.lang.IllegalStateException",
        "cart {} is closed",
        &[order],
        &[
            "com.example.shop.CartService.addItem(CartService.java:88)",
            "com.example.shop.CartController.add(CartController.java:41)",
            "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)",
        ],
    ),
    (
        "java.net.ConnectException",
        "Connection refused to {}",
        &[host_port],
        &[
            "java.base/sun.nio.ch.Net.pollConnect(Native Method)",
            "okhttp3.internal.connection.RealConnection.connectSocket(RealConnection.kt:295)",
            "com.example.shop.PaymentClient.charge(PaymentClient.java:120)",
        ],
    ),
];

/// Python tracebacks: exception, message template, values, `(File …, code)` frames.
type PyTrace = (
    &'static str,
    &'static str,
    &'static [Maker],
    &'static [(&'static str, &'static str)],
);

const PYTHON: &[PyTrace] = &[
    (
        "KeyError",
        "'{}'",
        &[user],
        &[
            (
                "/app/recommend/service.py\", line 57, in recommend",
                "    profile = PROFILES[user]",
            ),
            (
                "/usr/local/lib/python3.12/site-packages/grpc/_server.py\", line 552, in _call_behavior",
                "    response_or_iterator = behavior(argument, context)",
            ),
        ],
    ),
    (
        "ValueError",
        "invalid literal for int() with base 10: '{}'",
        &[order],
        &[(
            "/app/recommend/service.py\", line 31, in parse_id",
            "    return int(raw)",
        )],
    ),
];

fn trace(rng: &mut Rng, i: usize, out: &mut Vec<Labelled>) {
    let day = format!(
        "2024-05-01 {:02}:{:02}:{:02}.{:03}",
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60,
        rng.below(1000)
    );
    if rng.chance(50) {
        let &(exc, tpl, makers, frames) = rng.pick(JAVA);
        let vals: Vec<String> = makers.iter().map(|m| m(rng)).collect();
        let (msg, label) = fill(tpl, &vals);
        let thread = format!("http-nio-8080-exec-{}", 1 + rng.below(10));
        let mut lines = vec![
            format!("{day} ERROR 1 --- [{thread}] c.e.shop.ErrorHandler : request failed"),
            format!("{exc}: {msg}"),
        ];
        let mut tl = format!(
            "<*> ERROR <*> --- [<*>] c.e.shop.ErrorHandler : request failed {exc}: {label}"
        );
        for f in frames {
            lines.push(format!("\tat {f}"));
            let _ = write!(tl, " at {f}");
        }
        out.push(Labelled {
            lines,
            family: "trace-java",
            template: tl,
        });
    } else {
        let &(exc, tpl, makers, frames) = rng.pick(PYTHON);
        let vals: Vec<String> = makers.iter().map(|m| m(rng)).collect();
        let (msg, label) = fill(tpl, &vals);
        let mut lines = vec![
            format!("{day} ERROR recommend.server: exception calling application"),
            "Traceback (most recent call last):".to_owned(),
        ];
        let mut tl = "<*> ERROR recommend.server: exception calling application Traceback (most recent call last):".to_owned();
        for (f, code) in frames {
            lines.push(format!("  File \"{f}"));
            lines.push(code.to_string());
            let _ = write!(tl, " File \"{f} {}", code.trim());
        }
        lines.push(format!("{exc}: {msg}"));
        let _ = write!(tl, " {exc}: {label}");
        out.push(Labelled {
            lines,
            family: "trace-python",
            template: tl,
        });
    }
}

/// The mesh corpus: `n` logs drawn with `seed` across the families.
pub fn corpus(seed: u64, n: usize) -> Vec<Labelled> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n + n / 2);
    for i in 0..n {
        match rng.below(100) {
            0..=44 => envoy(&mut rng, i, &mut out),
            45..=59 => istio_line(&mut rng, i, ISTIOD, "istiod", &mut out),
            60..=69 => istio_line(&mut rng, i, PILOT_AGENT, "pilot-agent", &mut out),
            70..=91 => app_line(&mut rng, i, &mut out),
            _ => trace(&mut rng, i, &mut out),
        }
    }
    out
}
