//! Scraping a Prometheus / OpenMetrics endpoint over HTTP (feature `scrape`).
//!
//! One async GET with Prometheus' content negotiation
//! (`Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5`),
//! gzip, a timeout over the whole exchange, a body size limit (applied to the
//! decompressed body too) and an optional bearer token read from a file at each scrape
//! (Kubernetes rotates service-account tokens). It returns the body, its content type,
//! the [`Format`] to parse it with and how long the scrape took.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use meshmon_prom::scrape::{ScrapeOptions, Scraper};
//! let scraper = Scraper::new(ScrapeOptions::default());
//! let resp = scraper.scrape("http://127.0.0.1:9100/metrics").await?;
//! let (families, samples) = meshmon_prom::count(&resp.body, resp.format)?;
//! println!("{families} families, {samples} samples in {:?}", resp.duration);
//! # Ok(()) }
//! ```

use std::io::Read as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::header::{ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::Format;
use crate::mapping::LimitsError;

/// The `Accept` header Prometheus sends: OpenMetrics preferred, text format accepted.
pub const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";

/// Scrape options; every limit has a default. Set what differs with the `with_*`
/// methods (the limits are validated there, or by [`ScrapeOptions::validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScrapeOptions {
    /// Timeout for the whole request, body included (default 10 s).
    pub timeout: Duration,
    /// Largest accepted body, before and after decompression (default 64 MiB).
    pub max_body_bytes: usize,
    /// Read a bearer token from this file at each scrape and send it as
    /// `Authorization: Bearer <token>`.
    pub bearer_token_path: Option<PathBuf>,
    /// Ask for gzip (default true).
    pub gzip: bool,
    /// The `Accept` header (default [`ACCEPT_HEADER`]).
    pub accept: String,
}

impl Default for ScrapeOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_body_bytes: 64 << 20,
            bearer_token_path: None,
            gzip: true,
            accept: ACCEPT_HEADER.to_owned(),
        }
    }
}

impl ScrapeOptions {
    /// Gives up after `timeout` (more than zero), body included.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, LimitsError> {
        self.timeout = timeout;
        self.validate()?;
        Ok(self)
    }

    /// Refuses bodies larger than `max_body_bytes` (at least 1).
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Result<Self, LimitsError> {
        self.max_body_bytes = max_body_bytes;
        self.validate()?;
        Ok(self)
    }

    /// Sends the bearer token read from `path` at each scrape.
    #[must_use]
    pub fn with_bearer_token_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.bearer_token_path = Some(path.into());
        self
    }

    /// Asks for gzip or not.
    #[must_use]
    pub fn with_gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// Checks the limits (for callers who set the public fields directly).
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.timeout.is_zero() {
            return Err(LimitsError::Zero("timeout"));
        }
        if self.max_body_bytes == 0 {
            return Err(LimitsError::Zero("max_body_bytes"));
        }
        Ok(())
    }
}

/// What a scrape returned.
#[derive(Clone, Debug)]
pub struct ScrapeResponse {
    /// The (decompressed) body.
    pub body: Vec<u8>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The format chosen from the content type.
    pub format: Format,
    /// Time from sending the request to having the whole body.
    pub duration: Duration,
    /// Bytes received on the wire (compressed size when gzipped).
    pub wire_bytes: usize,
}

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScrapeError {
    /// The URL could not be used.
    #[error("invalid URL {url:?}: {message}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The bearer token file could not be read.
    #[error("reading bearer token {path}: {source}")]
    Token {
        /// The token file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Connection or protocol failure.
    #[error("GET {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// The client's message.
        message: String,
    },
    /// The endpoint answered with a non-2xx status.
    #[error("GET {url}: HTTP status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The whole exchange took longer than the timeout.
    #[error("GET {url}: timed out after {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The body (or its decompressed form) exceeded `max_body_bytes`.
    #[error("GET {url}: body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The gzip body could not be decompressed.
    #[error("GET {url}: bad gzip body: {source}")]
    Gzip {
        /// The URL.
        url: String,
        /// The decoder error.
        source: std::io::Error,
    },
}

/// An HTTP scraper (connection pooling over one hyper client).
#[derive(Clone, Debug)]
pub struct Scraper {
    client: Client<HttpConnector, Empty<Bytes>>,
    opts: ScrapeOptions,
}

impl Scraper {
    /// A scraper with these options (needs a Tokio runtime when scraping).
    pub fn new(opts: ScrapeOptions) -> Self {
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Self { client, opts }
    }

    /// The options.
    pub fn options(&self) -> &ScrapeOptions {
        &self.opts
    }

    /// GETs `url` (plain `http://`) and returns its body.
    pub async fn scrape(&self, url: &str) -> Result<ScrapeResponse, ScrapeError> {
        let timeout = self.opts.timeout;
        match tokio::time::timeout(timeout, self.scrape_inner(url)).await {
            Ok(r) => r,
            Err(_) => Err(ScrapeError::Timeout {
                url: url.to_owned(),
                timeout,
            }),
        }
    }

    async fn scrape_inner(&self, url: &str) -> Result<ScrapeResponse, ScrapeError> {
        let uri: hyper::Uri =
            url.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| ScrapeError::InvalidUrl {
                    url: url.to_owned(),
                    message: e.to_string(),
                })?;
        if uri.scheme_str() != Some("http") {
            return Err(ScrapeError::InvalidUrl {
                url: url.to_owned(),
                message: "only http:// is supported".into(),
            });
        }
        let mut req = hyper::Request::get(uri).header(ACCEPT, self.opts.accept.as_str());
        if self.opts.gzip {
            req = req.header(ACCEPT_ENCODING, "gzip");
        }
        if let Some(path) = &self.opts.bearer_token_path {
            let token =
                tokio::fs::read_to_string(path)
                    .await
                    .map_err(|source| ScrapeError::Token {
                        path: path.clone(),
                        source,
                    })?;
            req = req.header(AUTHORIZATION, format!("Bearer {}", token.trim()));
        }
        let http_err = |message: String| ScrapeError::Http {
            url: url.to_owned(),
            message,
        };
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| http_err(e.to_string()))?;
        // The `scrape` edge measures the exchange it performs (see clippy.toml).
        #[allow(clippy::disallowed_methods)]
        let start = Instant::now();
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| http_err(format!("{e:#}")))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ScrapeError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(CONTENT_TYPE);
        let gzipped = header(CONTENT_ENCODING).is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
        let limit = self.opts.max_body_bytes;
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    ScrapeError::BodyTooLarge {
                        url: url.to_owned(),
                        limit,
                    }
                } else {
                    http_err(e.to_string())
                }
            })?
            .to_bytes();
        let wire_bytes = body.len();
        let body = if gzipped {
            let mut out = Vec::with_capacity(body.len() * 4);
            let mut dec = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1);
            dec.read_to_end(&mut out)
                .map_err(|source| ScrapeError::Gzip {
                    url: url.to_owned(),
                    source,
                })?;
            if out.len() > limit {
                return Err(ScrapeError::BodyTooLarge {
                    url: url.to_owned(),
                    limit,
                });
            }
            out
        } else {
            body.to_vec()
        };
        let format = Format::from_content_type(content_type.as_deref().unwrap_or(""));
        Ok(ScrapeResponse {
            body,
            content_type,
            format,
            duration: start.elapsed(),
            wire_bytes,
        })
    }
}
