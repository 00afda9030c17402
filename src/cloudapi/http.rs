//! One HTTP exchange with a deadline: HTTPS to the clouds (rustls, the Mozilla roots), plain
//! HTTP to a local endpoint (tests, proxies).

use std::time::Duration;

/// The status and body of a response, whatever the status.
pub fn exchange(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let mut request = agent.request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(body) => request.send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => return Err(e.to_string()),
    };
    let status = response.status();
    let text = response
        .into_string()
        .map_err(|e| format!("reading the reply: {e}"))?;
    Ok((status, text))
}
