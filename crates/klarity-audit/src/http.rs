//! A small JSON-over-HTTP client for commands that talk to a running relay (`dlq`, and later
//! `send`): http or https (the system's trusted roots), keep-alive, a bearer token, JSON answers.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;

/// A client of one base URL.
pub(crate) struct JsonClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    bearer: Option<String>,
    timeout: Duration,
}

/// An answer: the status and the body (JSON, or the text wrapped in a string when it is not JSON).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    /// The API's error message (`{"error": {"code", "message"}}`), or the body.
    pub(crate) fn error_message(&self) -> String {
        match (self.body["error"]["code"].as_str(), self.body["error"]["message"].as_str()) {
            (Some(code), Some(message)) => format!("{message} ({code}, HTTP {})", self.status.as_u16()),
            _ => format!("HTTP {}: {}", self.status.as_u16(), self.body),
        }
    }
}

impl JsonClient {
    /// A client of `base` (such as `http://127.0.0.1:8080`) sending `bearer` when given.
    pub(crate) fn new(base: &str, bearer: Option<String>) -> anyhow::Result<JsonClient> {
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("{base:?} is not an http:// or https:// URL");
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .context("loading the system's trusted certificates")?
            .https_or_http()
            .enable_http1()
            .build();
        let inner = Client::builder(TokioExecutor::new()).build(https);
        Ok(JsonClient { inner, base: base.trim_end_matches('/').to_owned(), bearer, timeout: Duration::from_secs(60) })
    }

    /// Sends `body` (JSON) with `method` to `path` and reads the answer.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Bytes>) -> anyhow::Result<Answer> {
        let (status, bytes) = self.call_raw(method, path, body).await?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Answer { status, body })
    }

    /// Like [`JsonClient::call`], but leaves the answer's body unparsed.
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let url = format!("{}{path}", self.base);
        let mut request =
            Request::builder().method(method.clone()).uri(&url).header(header::ACCEPT, "application/json");
        if let Some(token) = &self.bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default())).with_context(|| format!("building {url}"))?;
        let response = tokio::time::timeout(self.timeout, self.inner.request(request))
            .await
            .with_context(|| format!("{method} {url} did not answer within {:?}", self.timeout))?
            .with_context(|| format!("cannot reach {} (is the relay running there?)", self.base))?;
        let status = response.status();
        let bytes = response.into_body().collect().await.with_context(|| format!("reading the answer of {url}"))?;
        Ok((status, bytes.to_bytes()))
    }
}
