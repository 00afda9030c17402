//! One HTTP exchange with a deadline: HTTPS to the clouds (rustls, the Mozilla roots), plain
//! HTTP to a local endpoint (tests, proxies). No redirect is followed: an API answers where
//! it is asked, and a signed request (with its token header) must not travel elsewhere. No
//! error names the URL, whose query may be signed.

use std::io::Read;
use std::time::Duration;

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
) -> Result<(u16, String), String> {
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
            return Err(match t.message() {
                Some(message) => format!("{}: {message}", t.kind()),
                None => t.kind().to_string(),
            });
        }
    };
    let status = response.status();
    if (300..400).contains(&status) {
        return Err(format!(
            "the API answered with a redirect (HTTP {status}), which is not followed"
        ));
    }
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    response
        .into_reader()
        .take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the reply: {}", e.kind()))?;
    if bytes.len() > limit {
        return Err(format!("the reply is longer than {limit} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| "the reply is not UTF-8".to_string())?;
    Ok((status, text))
}
