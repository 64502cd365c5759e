//! Reliability of `meshmon-agent run` against hostile or broken clients (issue
//! "Reliability and security of the agent"): slow headers and bodies (slowloris), more
//! connections than allowed, oversized and malformed requests, each answered with its
//! status and counted in `/metrics`, while `/health` keeps answering.
#![cfg(feature = "agent")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::run::{Agent, TempDir, get_json, http, wait_for, write_config};

/// An agent with tight HTTP limits: header timeout `header_s`, body timeout 1 s, 4
/// connections per intake listener, 8 on the API, 8 KiB of headers, 64 KiB of body.
/// An agent with small limits. `apm.decoder_timeout: 0s`: a payload that finds the
/// memory budget spent is refused at once (the wait is tested in `trace_overload`).
fn agent(dir: &Path, header_s: u64) -> Agent {
    let cfg = write_config(
        dir,
        &format!(
            "data_dir: {}\napi:\n  listen: 127.0.0.1:0\n  max_connections: 8\n  header_read_timeout: {header_s}s\n  max_header_bytes: 8192\napm:\n  receiver_port: 0\n  zipkin_port: null\n  max_connections: 4\n  header_read_timeout: {header_s}s\n  body_read_timeout: 1s\n  max_header_bytes: 8192\n  max_body_bytes: 65536\n  max_inflight_body_bytes: 65536\n  decoder_timeout: 0s\ndogstatsd:\n  enabled: false\n",
            dir.join("data").display()
        ),
    );
    Agent::start(&cfg, &[])
}

/// `name{listener="<listener>"}` from `/metrics` (0 when absent).
fn metric(api: &str, name: &str, listener: Option<&str>) -> f64 {
    let (code, body) = http(api, "GET", "/metrics", &[], b"");
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    let key = match listener {
        Some(l) => format!("{name}{{listener=\"{l}\"}} "),
        None => format!("{name} "),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

fn wait_metric(api: &str, name: &str, listener: Option<&str>, at_least: f64) -> f64 {
    wait_for(10, &format!("{name} >= {at_least}"), || {
        let v = metric(api, name, listener);
        (v >= at_least).then_some(v)
    })
}

fn health_ok(api: &str) {
    let v = get_json(api, "/health");
    assert_eq!(v["status"], "ok", "{v}");
}

/// Reads what the server sends until it closes (or `secs` pass): the status code of the
/// first response, if any, and how long it took (reads for at least one 100 ms poll).
fn read_status(s: &mut TcpStream, ms: u64) -> (Option<u16>, Duration) {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if t0.elapsed() >= Duration::from_millis(ms) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok());
    (status, t0.elapsed())
}

/// Whether the server has closed `s` (EOF or reset) within `secs`.
fn closed_within(s: &mut TcpStream, secs: u64) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t0 = Instant::now();
    let mut b = [0u8; 1024];
    while t0.elapsed() < Duration::from_secs(secs) {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn slow_headers_are_cut_and_counted() {
    let dir = TempDir::new("rel-slow-headers");
    let a = agent(dir.path(), 1);
    let traces = a.traces.clone().unwrap();
    // Three slowloris clients, each sending a header byte every 200 ms.
    let mut clients: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(&traces).unwrap();
            s.write_all(b"POST /v0.4/traces HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let t0 = Instant::now();
    let mut cut = [false; 3];
    while t0.elapsed() < Duration::from_secs(5) && !cut.iter().all(|c| *c) {
        for (i, s) in clients.iter_mut().enumerate() {
            if !cut[i] && s.write_all(b"a").is_err() {
                cut[i] = true;
            }
            if !cut[i] && closed_within(s, 0) {
                cut[i] = true;
            }
        }
        // The API answers while the intake is under attack.
        health_ok(&a.api);
        std::thread::sleep(Duration::from_millis(200));
    }
    for (i, s) in clients.iter_mut().enumerate() {
        cut[i] = cut[i] || closed_within(s, 1);
    }
    assert!(
        cut.iter().all(|c| *c),
        "slow-header clients were not disconnected after {:?}: {cut:?}",
        t0.elapsed()
    );
    let n = wait_metric(
        &a.api,
        "meshmon_http_header_read_timeouts_total",
        Some("apm"),
        3.0,
    );
    assert_eq!(n, 3.0);
    // The API's own header timeout too.
    let mut s = TcpStream::connect(&a.api).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(closed_within(&mut s, 5), "API slow-header client not cut");
    wait_metric(
        &a.api,
        "meshmon_http_header_read_timeouts_total",
        Some("api"),
        1.0,
    );
    // A normal request is served afterwards.
    let (code, _) = http(&traces, "GET", "/info", &[], b"");
    assert_eq!(code, 200);
    assert!(a.stop().success());
}

#[test]
fn slow_body_is_answered_408_and_counted() {
    let dir = TempDir::new("rel-slow-body");
    let a = agent(dir.path(), 5);
    let traces = a.traces.clone().unwrap();
    let mut s = TcpStream::connect(&traces).unwrap();
    s.write_all(
        b"PUT /v0.4/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\nContent-Length: 100\r\n\r\n",
    )
    .unwrap();
    let t0 = Instant::now();
    let mut status = None;
    while t0.elapsed() < Duration::from_secs(6) {
        let _ = s.write_all(b"\x90");
        let (st, _) = read_status(&mut s, 0);
        if st.is_some() {
            status = st;
            break;
        }
        health_ok(&a.api);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(status, Some(408), "after {:?}", t0.elapsed());
    assert!(closed_within(&mut s, 3), "connection kept open after 408");
    let n = wait_metric(
        &a.api,
        "meshmon_http_body_read_timeouts_total",
        Some("apm"),
        1.0,
    );
    assert_eq!(n, 1.0);
    // apm.max_inflight_body_bytes (64 KiB): a body of 60 000 bytes being read leaves no
    // room for one of 10 000 (refused: 429 when the tracer sent
    // Datadog-Send-Real-Http-Status, else 200 with the rates, as the Datadog Agent), and
    // room again once it is gone.
    let mut hold = TcpStream::connect(&traces).unwrap();
    hold.write_all(b"PUT /v0.4/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let plain = vec![("Content-Type".to_owned(), "application/msgpack".to_owned())];
    let mut ct = plain.clone();
    ct.push(("Datadog-Send-Real-Http-Status".to_owned(), "1".to_owned()));
    let (code, _) = http(&traces, "PUT", "/v0.4/traces", &ct, &[0x90; 10_000]);
    assert_eq!(code, 429);
    let (code, body) = http(&traces, "PUT", "/v0.4/traces", &plain, &[0x90; 10_000]);
    assert_eq!(code, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("rate_by_service"),
        "{body:?}"
    );
    wait_metric(
        &a.api,
        "meshmon_trace_requests_rejected_memory_total",
        None,
        2.0,
    );
    wait_metric(
        &a.api,
        "meshmon_trace_requests_refused_answered_200_total",
        None,
        1.0,
    );
    drop(hold);
    wait_for(10, "the budget back", || {
        let (code, _) = http(&traces, "PUT", "/v0.4/traces", &ct, &[0x90; 10_000]);
        (code != 429).then_some(())
    });
    assert!(a.stop().success());
}

#[test]
fn connections_beyond_the_limit_get_503_and_are_counted() {
    let dir = TempDir::new("rel-conns");
    let a = agent(dir.path(), 10);
    let traces = a.traces.clone().unwrap();
    // apm.max_connections: 4 held open (idle keep-alive clients)…
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&traces).unwrap())
        .collect();
    wait_metric(&a.api, "meshmon_http_connections_open", Some("apm"), 4.0);
    // …so two more are refused with 503 and closed.
    for _ in 0..2 {
        let mut s = TcpStream::connect(&traces).unwrap();
        let (st, _) = read_status(&mut s, 5000);
        assert_eq!(st, Some(503));
        assert!(closed_within(&mut s, 2));
    }
    let n = wait_metric(
        &a.api,
        "meshmon_http_connections_rejected_total",
        Some("apm"),
        2.0,
    );
    assert_eq!(n, 2.0);
    // The API is another listener: it still answers.
    health_ok(&a.api);
    // Its own limit (8): 7 held + the /metrics polls fit; 8 held refuse a ninth.
    let api_held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(&a.api).unwrap())
        .collect();
    wait_for(10, "an API connection refused", || {
        let mut s = TcpStream::connect(&a.api).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (st, _) = read_status(&mut s, 5000);
        (st == Some(503)).then_some(())
    });
    drop(api_held);
    // Once the held connections go, both listeners serve again.
    drop(held);
    wait_for(10, "intake served again", || {
        let (code, _) = http(&traces, "GET", "/info", &[], b"");
        (code == 200).then_some(())
    });
    wait_for(10, "API open connections back down", || {
        (metric(&a.api, "meshmon_http_connections_open", Some("api")) <= 2.0).then_some(())
    });
    wait_metric(
        &a.api,
        "meshmon_http_connections_rejected_total",
        Some("api"),
        1.0,
    );
    health_ok(&a.api);
    assert!(a.stop().success());
}

/// A blocking connection to `addr` from the loopback address `from` (Linux routes all
/// of 127.0.0.0/8 to `lo`, so each is another client address).
fn connect_from(from: [u8; 4], addr: &str) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let to: std::net::SocketAddr = addr.parse().unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(std::net::SocketAddr::from((from, 0))).unwrap();
        sock.connect(to).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// Sends one request on a new connection made from `from` (a loopback address) with
/// `headers`, and returns the status.
fn status_from(from: [u8; 4], addr: &str, path: &str, headers: &str) -> Option<u16> {
    let mut s = connect_from(from, addr);
    s.write_all(format!("GET {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n").as_bytes())
        .unwrap();
    read_status(&mut s, 5000).0
}

#[test]
fn browsers_from_elsewhere_get_403_and_one_client_cannot_take_every_connection() {
    let dir = TempDir::new("rel-origin");
    let cfg = write_config(
        dir.path(),
        &format!(
            "data_dir: {}\napi:\n  listen: 127.0.0.1:0\n  allowed_hosts: [meshmon.example]\napm:\n  receiver_port: 0\n  zipkin_port: null\n  max_connections: 8\n  max_connections_per_client: 3\ndogstatsd:\n  enabled: false\n",
            dir.path().join("data").display()
        ),
    );
    let a = Agent::start(&cfg, &[]);
    let traces = a.traces.clone().unwrap();
    let api = a.api.clone();
    let own = format!("Host: {api}\r\n");
    // Served: no browser headers, the page's own origin, localhost, a configured name.
    for h in [
        own.clone(),
        format!("{own}Sec-Fetch-Site: same-origin\r\nOrigin: http://{api}\r\n"),
        "Host: localhost:5002\r\n".to_owned(),
        "Host: meshmon.example\r\n".to_owned(),
    ] {
        assert_eq!(
            status_from([127, 0, 0, 1], &api, "/health", &h),
            Some(200),
            "{h}"
        );
    }
    // Refused: another site, another port of localhost, a foreign or null origin, and a
    // rebound name (DNS rebinding) — on the API; the intake refuses the browser ones too.
    let cross = [
        format!("{own}Sec-Fetch-Site: cross-site\r\n"),
        format!("{own}Sec-Fetch-Site: same-site\r\n"),
        format!("{own}Origin: http://evil.example\r\n"),
        format!("{own}Origin: null\r\n"),
    ];
    for h in &cross {
        assert_eq!(
            status_from([127, 0, 0, 1], &api, "/api/v1/status", h),
            Some(403),
            "{h}"
        );
    }
    assert_eq!(
        status_from(
            [127, 0, 0, 1],
            &api,
            "/api/v1/status",
            "Host: evil.example:5002\r\n"
        ),
        Some(403)
    );
    let intake_own = format!("Host: {traces}\r\n");
    assert_eq!(
        status_from([127, 0, 0, 1], &traces, "/info", &intake_own),
        Some(200)
    );
    // A tracer reaching the agent by a service name is served: the intake has no Host list.
    assert_eq!(
        status_from(
            [127, 0, 0, 1],
            &traces,
            "/info",
            "Host: datadog-agent.datadog.svc:8126\r\n"
        ),
        Some(200)
    );
    assert_eq!(
        status_from(
            [127, 0, 0, 1],
            &traces,
            "/info",
            &format!("{intake_own}Origin: http://evil.example\r\n")
        ),
        Some(403)
    );
    // The counters are published once a second.
    for (name, listener, n) in [
        ("meshmon_http_requests_cross_origin_total", "api", 4.0),
        ("meshmon_http_requests_bad_host_total", "api", 1.0),
        ("meshmon_http_requests_cross_origin_total", "apm", 1.0),
    ] {
        assert_eq!(
            wait_metric(&api, name, Some(listener), n),
            n,
            "{name} {listener}"
        );
    }
    // One address holds its 3 connections: its fourth is refused, another address is
    // still served, and the global limit (8) was never reached.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| connect_from([127, 0, 0, 7], &traces))
        .collect();
    wait_metric(&api, "meshmon_http_connections_open", Some("apm"), 3.0);
    assert_eq!(
        status_from([127, 0, 0, 7], &traces, "/info", &intake_own),
        Some(503)
    );
    assert_eq!(
        status_from([127, 0, 0, 8], &traces, "/info", &intake_own),
        Some(200)
    );
    let n = wait_metric(
        &api,
        "meshmon_http_connections_rejected_per_client_total",
        Some("apm"),
        1.0,
    );
    assert_eq!(n, 1.0);
    assert_eq!(
        metric(&api, "meshmon_http_connections_rejected_total", Some("apm")),
        0.0
    );
    drop(held);
    wait_for(10, "the held client served again", || {
        (status_from([127, 0, 0, 7], &traces, "/info", &intake_own) == Some(200)).then_some(())
    });
    health_ok(&api);
    assert!(a.stop().success());
}

#[test]
fn oversized_headers_431_and_bodies_413_are_counted() {
    let dir = TempDir::new("rel-oversized");
    let a = agent(dir.path(), 5);
    let traces = a.traces.clone().unwrap();
    // Headers over apm.max_header_bytes (8 KiB): 431.
    let big = vec![("X-Big".to_owned(), "a".repeat(9000))];
    let (code, _) = http(&traces, "GET", "/info", &big, b"");
    assert_eq!(code, 431);
    // Too many headers (hyper's 100): 431 too.
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let (code, _) = http(&traces, "GET", "/info", &many, b"");
    assert_eq!(code, 431);
    wait_metric(
        &a.api,
        "meshmon_http_requests_header_too_large_total",
        Some("apm"),
        2.0,
    );
    // The API's own header limit.
    let (code, _) = http(&a.api, "GET", "/health", &big, b"");
    assert_eq!(code, 431);
    wait_metric(
        &a.api,
        "meshmon_http_requests_header_too_large_total",
        Some("api"),
        1.0,
    );
    // A body over apm.max_body_bytes (64 KiB) by Content-Length: 413 before reading it.
    let body = vec![0x90u8; 70_000];
    let ct = vec![("Content-Type".to_owned(), "application/msgpack".to_owned())];
    let (code, _) = http(&traces, "PUT", "/v0.4/traces", &ct, &body);
    assert_eq!(code, 413);
    // A chunked body that grows past the limit: 413 once the limit is crossed.
    let mut s = TcpStream::connect(&traces).unwrap();
    s.write_all(b"PUT /v0.4/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    for _ in 0..10 {
        let chunk = vec![0x90u8; 10_000];
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let (st, _) = read_status(&mut s, 5000);
    assert_eq!(st, Some(413));
    let n = wait_metric(
        &a.api,
        "meshmon_trace_requests_rejected_too_large_total",
        None,
        2.0,
    );
    assert_eq!(n, 2.0);
    health_ok(&a.api);
    assert!(a.stop().success());
}

/// xorshift64*: a seeded generator for the mutated requests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn malformed_requests_get_400_and_are_counted() {
    let dir = TempDir::new("rel-malformed");
    let a = agent(dir.path(), 2);
    let traces = a.traces.clone().unwrap();
    let send = |addr: &str, raw: &[u8]| -> Option<u16> {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(raw);
        read_status(&mut s, 5000).0
    };
    // Not HTTP at all, a bad request line, a header without a colon, a bad version.
    let bad: [&[u8]; 4] = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
        b"PUT /v0.4/traces\r\n\r\n",
        b"PUT /v0.4/traces HTTP/1.1\r\nHost x\r\n\r\n",
        b"PUT /v0.4/traces HTTP/7.1\r\nHost: x\r\n\r\n",
    ];
    for raw in bad {
        assert_eq!(
            send(&traces, raw),
            Some(400),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(send(&a.api, b"NOT HTTP\r\n\r\n"), Some(400));
    let n = wait_metric(
        &a.api,
        "meshmon_http_requests_malformed_total",
        Some("apm"),
        4.0,
    );
    assert_eq!(n, 4.0);
    wait_metric(
        &a.api,
        "meshmon_http_requests_malformed_total",
        Some("api"),
        1.0,
    );
    // A broken chunked body: 400 from the intake, counted.
    let st = send(
        &traces,
        b"PUT /v0.4/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    );
    assert_eq!(st, Some(400));
    wait_metric(
        &a.api,
        "meshmon_trace_requests_rejected_bad_body_total",
        None,
        1.0,
    );
    // A payload that is HTTP but not msgpack: the decoder's 400, counted as invalid.
    let ct = vec![("Content-Type".to_owned(), "application/msgpack".to_owned())];
    let (code, _) = http(&traces, "PUT", "/v0.4/traces", &ct, b"\xc1\xc1\xc1");
    assert_eq!(code, 400);
    wait_metric(&a.api, "meshmon_trace_payloads_invalid_total", None, 1.0);
    // Seeded mutations of a valid request: every one gets an HTTP status or a close,
    // within the timeouts, and the agent stays healthy.
    let base = b"PUT /v0.4/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\nContent-Length: 1\r\nX-Datadog-Trace-Count: 0\r\n\r\n\x90".to_vec();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut by_status = std::collections::BTreeMap::new();
    // Three workers: within apm.max_connections (4), so that the parser, not the
    // connection limit, answers (a 503 can still happen while a closed connection's slot
    // is being released).
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let mut reqs = Vec::new();
            for _ in 0..32 {
                let mut r = base.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(r.len());
                    match rng.below(3) {
                        0 => r[i] = rng.next() as u8,
                        1 => {
                            r.remove(i);
                        }
                        _ => r.insert(i, rng.next() as u8),
                    }
                }
                reqs.push(r);
            }
            let t = traces.clone();
            std::thread::spawn(move || {
                reqs.iter()
                    .map(|r| {
                        let mut s = TcpStream::connect(&t).unwrap();
                        let _ = s.write_all(r);
                        let (st, took) = read_status(&mut s, 8000);
                        assert!(took < Duration::from_secs(8), "a mutated request hung");
                        st
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for w in workers {
        for st in w.join().unwrap() {
            *by_status.entry(st).or_insert(0u32) += 1;
        }
    }
    eprintln!("mutated requests by status: {by_status:?}");
    let refused = by_status.get(&Some(503)).copied().unwrap_or(0);
    assert!(refused <= 10, "{refused} of 96 refused: {by_status:?}");
    for st in by_status.keys().flatten() {
        assert!(
            [
                200, 400, 404, 405, 408, 411, 413, 415, 429, 431, 501, 503, 505
            ]
            .contains(st),
            "unexpected status {st}: {by_status:?}"
        );
    }
    health_ok(&a.api);
    assert!(a.stop().success());
}

/// Sends `body` to `addr` once; the status, or `None` when the agent is down.
fn try_post(addr: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        if !["content-length", "host", "connection"].contains(&k.to_ascii_lowercase().as_str()) {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    String::from_utf8_lossy(&resp)
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

/// `kill -9` at 20+ seeded random points while the agent tails a steadily written CRI
/// file, receives traces and scrapes a target with advancing counters; a restart after
/// each. At the end: every written line is counted (0 lost), duplicates are at most one
/// read batch per kill, every counter delta is positive and their sum never exceeds the
/// target's real increase (nothing counted twice across restarts), and pattern ids are
/// stable across restarts.
#[test]
fn kill9_at_random_points_loses_nothing_and_doubles_nothing() {
    use crate::run::{advancing, append, corpus, cri, serve};
    use std::collections::{BTreeMap, HashMap};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    let Some(fixture) = corpus("istio-fixtures/1.5/istio-proxy.txt") else {
        return;
    };
    let Some(payloads) = corpus("trace-payloads/ddtrace-4.16.0-v04") else {
        return;
    };
    let trace_meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(payloads.join("0002_v0.4_traces.json")).unwrap())
            .unwrap();
    let trace_body = std::fs::read(payloads.join("0002_v0.4_traces.bin")).unwrap();
    let trace_path = trace_meta["path"].as_str().unwrap().to_owned();
    let trace_headers: Vec<(String, String)> = trace_meta["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
        .collect();
    let fixture = std::fs::read_to_string(fixture).unwrap();
    let target = serve(move |n| advancing(&fixture, n));

    let dir = TempDir::new("rel-kill9");
    let pods = dir.path().join("pods");
    let cdir = pods.join("shop_cart-5d8f7c9b6d-q2w3e_9f1a/cart");
    std::fs::create_dir_all(&cdir).unwrap();
    let log = cdir.join("0.log");
    // 8 KiB per read: a read batch holds at most 8192 / (shortest line) lines.
    let max_read = 8192usize;
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"
data_dir: {data}
api:
  listen: 127.0.0.1:0
checks:
  - name: istio
    instances:
      - istio_mesh_endpoint: http://{target}/metrics
        min_collection_interval: 1
apm:
  receiver_port: 0
  zipkin_port: null
dogstatsd:
  enabled: false
scrape:
  jitter: 0
logs:
  enabled: true
  container_collect_all: true
  pod_logs_root: {pods}
  scan_interval: 1s
  read_interval: 100ms
  max_read_bytes: {max_read}
"#,
            data = dir.path().join("data").display(),
            target = target.addr,
            pods = pods.display()
        ),
    );

    // The writer: ~200 lines a second of three shapes, the whole time (also while the
    // agent is down).
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let shortest = Arc::new(AtomicU64::new(u64::MAX));
    let writer = {
        let (stop, written, shortest, log) =
            (stop.clone(), written.clone(), shortest.clone(), log.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let msg = match i % 3 {
                    0 => format!("order {i} placed by user {} total {}.50", i % 7, i),
                    1 => format!("payment {i} authorized in {} ms", i % 97),
                    _ => format!("cart {} updated with {} items", i % 13, i % 5),
                };
                let line = cri(i % 3600, &msg);
                shortest.fetch_min(line.len() as u64, Ordering::SeqCst);
                append(&log, &line);
                i += 1;
                written.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // The trace sender: one captured payload every 50 ms to the current intake.
    let intake: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let accepted = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, intake, accepted) = (stop.clone(), intake.clone(), accepted.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let addr = intake.lock().unwrap().clone();
                if let Some(a) = addr
                    && try_post(&a, &trace_path, &trace_headers, &trace_body) == Some(200)
                {
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let count = |api: &str| -> (u64, Vec<(u64, String)>) {
        let v = get_json(api, "/api/v1/patterns?service=cart");
        let pats = v["patterns"].as_array().unwrap();
        (
            pats.iter().map(|p| p["count"].as_u64().unwrap()).sum(),
            pats.iter()
                .map(|p| {
                    (
                        p["id"].as_u64().unwrap(),
                        p["template"].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        )
    };
    let points = |api: &str| -> Vec<(String, f64)> {
        let v = get_json(
            api,
            "/api/v1/series?name=istio.mesh.request.count.total&tag=response_code:200",
        );
        let mut out = Vec::new();
        for s in v["series"].as_array().unwrap() {
            let key = serde_json::to_string(&s["tags"]).unwrap();
            for p in s["points"].as_array().unwrap() {
                out.push((format!("{key}@{}", p["t"]), p["v"].as_f64().unwrap()));
            }
        }
        out
    };

    let mut rng = Rng(0x00c0_ffee_0000_0014);
    let kills = 22;
    let mut deltas: BTreeMap<String, f64> = BTreeMap::new();
    let mut ids_by_template: HashMap<String, u64> = HashMap::new();
    let mut ids_before: std::collections::BTreeSet<u64> = Default::default();
    let mut check_patterns = |pats: &[(u64, String)], life: usize| {
        let now: std::collections::BTreeSet<u64> = pats.iter().map(|p| p.0).collect();
        assert!(
            ids_before.is_subset(&now),
            "life {life}: pattern ids {ids_before:?} not all kept: {pats:?}"
        );
        for (id, t) in pats {
            let was = *ids_by_template.entry(t.clone()).or_insert(*id);
            assert_eq!(was, *id, "life {life}: template {t:?} changed id");
        }
        ids_before = now;
    };
    let mut agent = Agent::start(&cfg, &[]);
    for life in 0..kills {
        *intake.lock().unwrap() = agent.traces.clone();
        // A seeded random point: 300 ms – 2.5 s into this life.
        std::thread::sleep(Duration::from_millis(300 + rng.below(2200) as u64));
        // What this life holds, read just before the kill.
        let (_, pats) = count(&agent.api);
        check_patterns(&pats, life);
        for (k, v) in points(&agent.api) {
            deltas.insert(k, v);
        }
        agent.kill9();
        *intake.lock().unwrap() = None;
        // Down for 0 – 500 ms while the writer goes on.
        std::thread::sleep(Duration::from_millis(rng.below(500) as u64));
        agent = Agent::start(&cfg, &[]);
    }
    *intake.lock().unwrap() = agent.traces.clone();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    sender.join().unwrap();
    let written = written.load(Ordering::SeqCst);
    let api = agent.api.clone();
    let (seen, pats) = wait_for(60, "every written line counted", || {
        let (c, p) = count(&api);
        (c >= written).then_some((c, p))
    });
    check_patterns(&pats, kills);
    let per_batch = max_read as u64 / shortest.load(Ordering::SeqCst) + 1;
    eprintln!(
        "kill -9 x{kills}: wrote {written} lines, counted {seen} ({} duplicates, bound {} = {kills} kills x {per_batch} lines a batch), {} patterns, {} trace payloads accepted",
        seen - written,
        kills as u64 * per_batch,
        pats.len(),
        accepted.load(Ordering::SeqCst)
    );
    assert!(
        seen >= written,
        "lost lines: wrote {written}, counted {seen}"
    );
    assert!(
        seen - written <= kills as u64 * per_batch,
        "{} duplicates after {kills} kills (at most {per_batch} a kill)",
        seen - written
    );
    // Counters: every delta positive, a multiple of the target's step (10 a scrape),
    // and all of them together at most what the target really advanced.
    wait_for(30, "a scrape after the last restart", || {
        (!points(&api).is_empty()).then_some(())
    });
    for (k, v) in points(&api) {
        deltas.insert(k, v);
    }
    let mut per_series: BTreeMap<&str, f64> = BTreeMap::new();
    for (k, v) in &deltas {
        assert!(*v > 0.0 && (*v % 10.0) == 0.0, "delta {v} at {k}");
        *per_series.entry(k.split('@').next().unwrap()).or_default() += v;
    }
    let hits = target.hits.load(Ordering::SeqCst);
    let real = 10.0 * (hits.saturating_sub(1)) as f64;
    for (s, sum) in &per_series {
        assert!(
            *sum <= real,
            "series {s}: deltas add up to {sum}, the target advanced {real} in {hits} scrapes"
        );
    }
    assert!(!per_series.is_empty(), "no counter deltas at all");
    // Traces were received across the restarts, and the last agent decodes them.
    assert!(
        accepted.load(Ordering::SeqCst) > 0,
        "no trace payload accepted"
    );
    let tr = get_json(&api, "/api/v1/status");
    assert!(
        tr["components"]["traces"]["payloads"].as_u64() > Some(0),
        "{}",
        tr["components"]["traces"]
    );
    assert!(agent.stop().success());
}

/// Damaged state files and log files changed while the agent is down: a truncated
/// positions file falls back to its previous generation (at most one read cycle again),
/// corrupt positions with no usable previous generation start existing files at their
/// end (never all again from their start), a foreign-version pattern file is set aside;
/// each reported and moved aside, the agent always starts. Then rotation, copy-truncation
/// and delete-and-recreate while the agent is down, found by inode and fingerprint.
#[test]
fn damaged_state_and_files_changed_while_down() {
    use crate::run::{append, cri};
    let dir = TempDir::new("rel-state");
    let pods = dir.path().join("pods");
    let cdir = pods.join("shop_cart-5d8f7c9b6d-q2w3e_9f1a/cart");
    std::fs::create_dir_all(&cdir).unwrap();
    let log = cdir.join("0.log");
    let data = dir.path().join("data");
    let cfg = write_config(
        dir.path(),
        &format!(
            "data_dir: {}\napi:\n  listen: 127.0.0.1:0\napm:\n  enabled: false\ndogstatsd:\n  enabled: false\nlogs:\n  enabled: true\n  container_collect_all: true\n  pod_logs_root: {}\n  scan_interval: 200ms\n  read_interval: 100ms\n",
            data.display(),
            pods.display()
        ),
    );
    let mut n = 0u64;
    let mut write = |path: &Path, k: u64| {
        for _ in 0..k {
            append(
                path,
                &cri(n % 3600, &format!("order {n} placed by user {}", n % 7)),
            );
            n += 1;
        }
    };
    let count = |api: &str| -> u64 {
        get_json(api, "/api/v1/patterns?service=cart")["patterns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["count"].as_u64().unwrap())
            .sum()
    };
    // Waits for `at_least`, then lets the tailer settle and returns the count.
    let settle = |a: &Agent, at_least: u64| -> u64 {
        wait_for(30, &format!("{at_least} lines"), || {
            (count(&a.api) >= at_least).then_some(())
        });
        std::thread::sleep(Duration::from_millis(1500));
        count(&a.api)
    };
    let state = |name: &str| data.join("state").join(name);
    let set_aside = |name: &str| -> usize {
        std::fs::read_dir(data.join("state"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}.bad-"))
            })
            .count()
    };
    // Five read cycles of 10 lines, so that positions have several generations.
    let a = Agent::start(&cfg, &[]);
    for i in 1..=5 {
        write(&log, 10);
        assert_eq!(settle(&a, 10 * i), 10 * i);
    }
    assert!(a.stop().success());
    assert!(state("log-positions.json.prev").exists());

    // 1. Truncated positions: the previous generation is used.
    let p = state("log-positions.json");
    let full = std::fs::read(&p).unwrap();
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    write(&log, 10);
    let a = Agent::start(&cfg, &[]);
    let c = settle(&a, 60);
    assert!(
        (60..=70).contains(&c),
        "counted {c}: 60 lines, at most one cycle (10) again"
    );
    assert_eq!(set_aside("log-positions.json"), 1);
    assert!(
        a.stderr
            .lock()
            .unwrap()
            .contains("Using the previous generation"),
        "{}",
        a.stderr.lock().unwrap()
    );
    assert_eq!(
        metric(&a.api, "meshmon_logs_state_files_recovered_total", None),
        1.0
    );
    assert!(a.stop().success());

    // 2. Both generations corrupt: files start at their end, nothing is read again
    //    (lines written while down are skipped, reported).
    std::fs::write(&p, b"\x00\x01garbage").unwrap();
    std::fs::write(state("log-positions.json.prev"), b"{\"meshmon_state\"").unwrap();
    write(&log, 10);
    let a = Agent::start(&cfg, &[]);
    wait_for(10, "the report", || {
        a.stderr
            .lock()
            .unwrap()
            .contains("Files present now are read from their end")
            .then_some(())
    });
    // The report comes when the state is loaded; the file is placed at its end when the
    // tailer first opens it. Lines written before that would be "present at start".
    wait_for(30, "the tailer to open the file", || {
        get_json(&a.api, "/api/v1/status")["components"]["logs"]["files"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
            .then_some(())
    });
    write(&log, 5);
    let c2 = settle(&a, c + 5);
    assert_eq!(c2, c + 5, "only the 5 lines written after start are new");
    assert!(set_aside("log-positions.json") >= 2);
    assert_eq!(
        metric(&a.api, "meshmon_logs_state_files_set_aside_total", None),
        1.0
    );
    assert!(a.stop().success());

    // 3. A pattern set of a foreign version (and no previous generation): set aside,
    //    patterns start over; positions are intact, so only new lines are counted.
    let pat = state("log-patterns.json");
    let _ = std::fs::remove_file(state("log-patterns.json.prev"));
    std::fs::write(
        &pat,
        br#"{"meshmon_state":"log-patterns","version":99,"data":{}}"#,
    )
    .unwrap();
    write(&log, 4);
    let a = Agent::start(&cfg, &[]);
    assert_eq!(settle(&a, 4), 4);
    assert_eq!(set_aside("log-patterns.json"), 1);
    assert!(a.stderr.lock().unwrap().contains("version 99"));
    assert!(a.stop().success());

    // 4. Rotated while down (kubelet's rename to `0.log.<time>`): the rotated file's
    //    unread tail and the new file, each once.
    write(&log, 5);
    std::fs::rename(&log, cdir.join("0.log.20240501-120000")).unwrap();
    write(&log, 7);
    let a = Agent::start(&cfg, &[]);
    assert_eq!(settle(&a, 16), 16);
    assert!(a.stop().success());
    std::fs::remove_file(cdir.join("0.log.20240501-120000")).unwrap();

    // 5. Copy-truncated while down: shorter than the saved offset, read from its start.
    std::fs::write(&log, b"").unwrap();
    write(&log, 3);
    let a = Agent::start(&cfg, &[]);
    assert_eq!(settle(&a, 19), 19);
    assert!(a.stop().success());

    // 6. Deleted and recreated while down, longer than the saved offset (the inode may
    //    be reused): the fingerprint of the first line tells it is another file.
    std::fs::remove_file(&log).unwrap();
    write(&log, 6);
    let a = Agent::start(&cfg, &[]);
    assert_eq!(settle(&a, 25), 25);
    // 7. Deleted while down and not recreated: nothing to read, no error.
    assert!(a.stop().success());
    std::fs::remove_file(&log).unwrap();
    let a = Agent::start(&cfg, &[]);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(count(&a.api), 25);
    health_ok(&a.api);
    assert!(a.stop().success());
}

// The trace intake's overload test (10× its capacity under a CPU quota, with `hey`) is
// in `trace_overload.rs`.
