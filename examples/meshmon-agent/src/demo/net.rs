//! The demo's sockets: each pod's sidecar metrics endpoint (one listener per pod address,
//! all on the same port, as every pod's sidecar listens on the same port of its own IP),
//! and a minimal HTTP/1.1 client for the trace intake and the agent's API.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::mesh::{MeshStats, Topology};

/// Binds one listener per address, all on one port (picked free on the first address).
pub async fn bind_same_port(ips: &[Ipv4Addr]) -> anyhow::Result<(u16, Vec<TcpListener>)> {
    let Some(first) = ips.first() else {
        anyhow::bail!("no pod address");
    };
    let mut last_err = None;
    for _ in 0..50 {
        let l0 = TcpListener::bind((*first, 0))
            .await
            .with_context(|| format!("binding {first}:0 (Linux routes 127.0.0.0/8 to lo)"))?;
        let port = l0.local_addr()?.port();
        let mut ls = vec![l0];
        let mut ok = true;
        for ip in &ips[1..] {
            match TcpListener::bind((*ip, port)).await {
                Ok(l) => ls.push(l),
                Err(e) => {
                    last_err = Some(format!("{ip}:{port}: {e}"));
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            return Ok((port, ls));
        }
    }
    anyhow::bail!(
        "no port free on every pod address: {}",
        last_err.unwrap_or_default()
    )
}

/// Serves pod `pod`'s sidecar metrics on `listener` (`/stats/prometheus`, Istio's merged
/// endpoint path, and `/metrics`) until `shutdown`.
pub async fn serve_metrics(
    listener: TcpListener,
    pod: usize,
    topo: Arc<Topology>,
    stats: Arc<Mutex<MeshStats>>,
    started: Instant,
    scrapes: Arc<std::sync::atomic::AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => {
                let Ok((stream, _)) = r else { continue };
                let (topo, stats, scrapes) = (topo.clone(), stats.clone(), scrapes.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let body = match req.uri().path() {
                            "/stats/prometheus" | "/metrics" => {
                                scrapes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                let text = stats
                                    .lock()
                                    .map(|s| s.render(&topo, pod, started.elapsed().as_secs()))
                                    .unwrap_or_default();
                                Some(text)
                            }
                            _ => None,
                        };
                        let mut resp = match body {
                            Some(t) => hyper::Response::new(Full::new(Bytes::from(t))),
                            None => {
                                let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"404 page not found\n")));
                                *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        resp.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                        );
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

/// One HTTP/1.1 exchange (`Connection: close`): (status, body). Times out after `timeout`.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    tokio::time::timeout(timeout, async {
        let mut s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await?;
        s.write_all(body).await?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await?;
        parse_response(&resp).with_context(|| format!("{method} http://{addr}{path}"))
    })
    .await
    .with_context(|| format!("{method} http://{addr}{path}: no answer within {timeout:?}"))?
}

/// Splits a raw HTTP/1.1 response into status and (de-chunked) body.
pub fn parse_response(resp: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("response without a header end")?;
    let head = String::from_utf8_lossy(&resp[..end]);
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("response without a status")?;
    let mut body = resp[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(p) = body[i..].windows(2).position(|w| w == b"\r\n") {
            let n = std::str::from_utf8(&body[i..i + p])
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .unwrap_or(0);
            if n == 0 || i + p + 2 + n > body.len() {
                break;
            }
            out.extend_from_slice(&body[i + p + 2..i + p + 2 + n]);
            i += p + 2 + n + 2;
            if i >= body.len() {
                break;
            }
        }
        body = out;
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"hi"[..]));
        let (s, b) = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((s, b.as_slice()), (404, &b"abcde"[..]));
        assert!(parse_response(b"garbage").is_err());
    }
}
