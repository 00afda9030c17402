//! One HTTP exchange with a deadline: HTTPS to the clouds (rustls, the Mozilla roots), plain
//! HTTP to a local endpoint (tests, proxies). No redirect is followed: an API answers where
//! it is asked, and a signed request (with its token header) must not travel elsewhere. No
//! error names the URL, whose query may be signed.

use std::io::Read;
use std::time::Duration;

use thiserror::Error;

/// Why an exchange got no usable reply. No variant names the URL.
#[derive(Debug, Error)]
pub enum HttpError {
    /// No answer: name resolution, connection, TLS or the timeout, in ureq's words.
    #[error("{0}")]
    Transport(String),
    #[error("the API answered with a redirect (HTTP {0}), which is not followed")]
    Redirect(u16),
    #[error("reading the reply: {0}")]
    Read(std::io::ErrorKind),
    #[error("the reply is longer than {0} bytes")]
    TooLong(usize),
    #[error("the reply is not UTF-8")]
    NotUtf8,
}

impl HttpError {
    /// The same error with `clean` applied to the text that came from outside.
    pub fn redacted(self, clean: impl Fn(String) -> String) -> HttpError {
        match self {
            HttpError::Transport(text) => HttpError::Transport(clean(text)),
            other => other,
        }
    }
}

/// How long, and how much, a metadata service's answer may be: a role's keys are a few
/// hundred bytes, and off the cloud nothing answers.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(2);
pub const METADATA_LIMIT: usize = 64 << 10;

/// A request: method, URL, headers and body.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(&'a str, String)],
    pub body: Option<&'a str>,
}

impl<'a> Request<'a> {
    pub fn get(url: &'a str) -> Self {
        Request {
            method: "GET",
            url,
            headers: &[],
            body: None,
        }
    }
}

/// The status and body of a response, whatever the status; a body longer than `limit`
/// bytes is an error, read no further.
pub fn exchange(
    exchange: Request,
    timeout: Duration,
    limit: usize,
) -> Result<(u16, String), HttpError> {
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .build();
    let mut request = agent.request(exchange.method, exchange.url);
    for (name, value) in exchange.headers {
        request = request.set(name, value);
    }
    let result = match exchange.body {
        Some(body) => request.send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(t)) => {
            return Err(HttpError::Transport(match t.message() {
                Some(message) => format!("{}: {message}", t.kind()),
                None => t.kind().to_string(),
            }));
        }
    };
    let status = response.status();
    if (300..400).contains(&status) {
        return Err(HttpError::Redirect(status));
    }
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    response
        .into_reader()
        .take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| HttpError::Read(e.kind()))?;
    if bytes.len() > limit {
        return Err(HttpError::TooLong(limit));
    }
    let text = String::from_utf8(bytes).map_err(|_| HttpError::NotUtf8)?;
    Ok((status, text))
}
