//! The `scrape` feature: negotiation, gzip, bearer token, limits and errors against a
//! loopback HTTP server; and, end to end, a real `prometheus-node-exporter` when
//! `scripts/it/prom.sh` has started one (it sets `MESHMON_NODE_EXPORTER_URL`).

use std::io::Write as _;
use std::time::Duration;

use meshmon_core::test_util::TempDir;
use meshmon_core::{MetricValue, Timestamp};
use meshmon_prom::mapping::{MetricSpec, SubmitType};
use meshmon_prom::scrape::{ACCEPT_HEADER, ScrapeError, ScrapeOptions, Scraper};
use meshmon_prom::{Format, Mapper, MappingConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Serves one canned response per connection; returns the URL and the request heads.
async fn serve(responses: Vec<Vec<u8>>) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for resp in responses {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = sock.read(&mut buf).await.unwrap();
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            sock.write_all(&resp).await.unwrap();
            let _ = sock.shutdown().await;
        }
    });
    (url, rx)
}

fn response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn negotiates_gzip_token_and_format() {
    let om = b"# TYPE up gauge\nup 1\n# EOF\n";
    let (url, mut heads) = serve(vec![response(
        "200 OK",
        &[
            (
                "Content-Type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(om),
    )])
    .await;
    let tmp = TempDir::new("prom-token").unwrap();
    let token = tmp.write("token", b"s3cret\n").unwrap();
    let scraper = Scraper::new(ScrapeOptions::default().with_bearer_token_path(token));
    let resp = scraper.scrape(&url).await.unwrap();
    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(
        head.contains(&format!("accept: {}", ACCEPT_HEADER.to_ascii_lowercase())),
        "{head}"
    );
    assert!(head.contains("accept-encoding: gzip"));
    assert!(head.contains("authorization: bearer s3cret"));
    assert_eq!(resp.body, om);
    assert_eq!(resp.format, Format::OpenMetrics);
    assert!(resp.wire_bytes > 0 && resp.wire_bytes != om.len());
    assert_eq!(
        meshmon_prom::count(&resp.body, resp.format).unwrap(),
        (1, 1)
    );
}

#[tokio::test]
async fn limits_status_and_timeout() {
    let big = vec![b'#'; 4096];
    let (url, _h) = serve(vec![
        response("200 OK", &[], &big),
        response("200 OK", &[("Content-Encoding", "gzip")], &gzip(&big)),
        response("503 Service Unavailable", &[], b"down"),
    ])
    .await;
    let scraper = Scraper::new(ScrapeOptions::default().with_max_body_bytes(1000).unwrap());
    assert!(matches!(
        scraper.scrape(&url).await,
        Err(ScrapeError::BodyTooLarge { limit: 1000, .. })
    ));
    // the compressed body fits, the decompressed one does not
    assert!(matches!(
        scraper.scrape(&url).await,
        Err(ScrapeError::BodyTooLarge { .. })
    ));
    assert!(matches!(
        scraper.scrape(&url).await,
        Err(ScrapeError::Status { status: 503, .. })
    ));
    assert!(matches!(
        scraper.scrape("https://x/metrics").await,
        Err(ScrapeError::InvalidUrl { .. })
    ));

    // a server that accepts and never answers
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let _keep = silent.accept().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let quick = Scraper::new(
        ScrapeOptions::default()
            .with_timeout(Duration::from_millis(200))
            .unwrap(),
    );
    let r = quick.scrape(&format!("http://{addr}/metrics")).await;
    assert!(matches!(r, Err(ScrapeError::Timeout { .. })), "{r:?}");
}

/// End to end against a real node exporter (started by scripts/it/prom.sh).
#[tokio::test]
async fn node_exporter_scraped_and_mapped() {
    let Ok(url) = std::env::var("MESHMON_NODE_EXPORTER_URL") else {
        eprintln!(
            "MESHMON_NODE_EXPORTER_URL is not set: run scripts/it/prom.sh for the node exporter test"
        );
        return;
    };
    let scraper = Scraper::new(ScrapeOptions::default());
    let resp = scraper.scrape(&url).await.unwrap();
    assert!(resp.body.len() > 10_000, "{} bytes", resp.body.len());
    let (families, samples) = meshmon_prom::count(&resp.body, resp.format).unwrap();
    assert!(
        families > 50 && samples > 200,
        "{families} families, {samples} samples"
    );
    let mut cfg = MappingConfig::default().with_endpoint(url.clone());
    cfg.namespace = "node".into();
    cfg.raw_metric_prefix = "node_".into();
    cfg.metrics = vec![MetricSpec {
        raw: ".*".into(),
        name: None,
        kind: SubmitType::Native,
    }];
    let mut mapper = Mapper::new(cfg).unwrap();
    let mut out = Vec::new();
    let stats = mapper
        .map(&resp.body, resp.format, Timestamp::from_secs(1), &mut |m| {
            out.push(m)
        })
        .unwrap();
    eprintln!(
        "node exporter: {} bytes ({:?}, {} on the wire) in {:?}: {families} families, {samples} samples, {} metrics",
        resp.body.len(),
        resp.format,
        resp.wire_bytes,
        resp.duration,
        stats.submitted
    );
    // node_cpu_seconds_total{cpu,mode} counter → node.cpu_seconds.count
    let cpu: Vec<_> = out
        .iter()
        .filter(|m| &*m.name == "node.cpu_seconds.count")
        .collect();
    assert!(!cpu.is_empty());
    assert!(
        cpu.iter()
            .all(|m| matches!(m.value, MetricValue::MonotonicCount(v) if v >= 0.0))
    );
    assert!(
        cpu.iter()
            .all(|m| m.tags.get("cpu").is_some() && m.tags.get("mode").is_some())
    );
    assert!(
        out.iter()
            .all(|m| m.tags.get("endpoint") == Some(url.as_str()))
    );
    // go_gc_duration_seconds summary → quantile gauges with Python-formatted tags
    let q: Vec<_> = out
        .iter()
        .filter(|m| &*m.name == "node.go_gc_duration_seconds.quantile")
        .collect();
    let tags: Vec<_> = q.iter().filter_map(|m| m.tags.get("quantile")).collect();
    assert!(
        tags.contains(&"0") && tags.contains(&"0.5") && tags.contains(&"1.0"),
        "{tags:?}"
    );
}
