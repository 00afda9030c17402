//! Native read-only API clients: each reads what the cloud's CLI would print, page by page,
//! signs every request, retries a throttled one with backoff, and hands the pages to the
//! format's importer. Credentials come from the environment, the CLI's own profile file or
//! the instance's role, and are never logged.

#[cfg(feature = "aws-api")]
pub mod aws;
mod http;
pub mod qingcloud;
pub mod sign;
pub mod tencent;

use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use thiserror::Error;

use crate::sources::{Format, Merged, SourceError};

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{api}: no credentials: {hint}")]
    NoCredentials {
        api: &'static str,
        hint: &'static str,
    },
    #[error("{api} {action}: {message}")]
    Transport {
        api: &'static str,
        action: String,
        message: String,
    },
    /// The exchange itself failed: no reply, or one that could not be read.
    #[error("{api} {action}: {error}")]
    Http {
        api: &'static str,
        action: String,
        error: http::HttpError,
    },
    #[error("{api} {action}: the API refused: {code}: {message}")]
    Refused {
        api: &'static str,
        action: String,
        code: String,
        message: String,
    },
    #[error("{api} {action}: still throttled after {attempts} attempts")]
    Throttled {
        api: &'static str,
        action: String,
        attempts: u32,
    },
    /// A fetch past one of its bounds (`Budget`): it fails rather than hold the agent.
    #[error("{api} {action}: {what}")]
    Bound {
        api: &'static str,
        action: String,
        what: String,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl ApiError {
    /// What kind of failure it is (`SourceError::reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NoCredentials { .. } => "no-credentials",
            ApiError::Transport { .. } | ApiError::Http { .. } => "unreachable",
            ApiError::Refused { .. } => "refused",
            ApiError::Throttled { .. } => "throttled",
            ApiError::Bound { .. } => "timeout",
            ApiError::Source(error) => error.reason(),
        }
    }

    /// The error with every credential of `credentials` blanked out of its text: an API's
    /// message, or an export's field, may quote what the request carried.
    pub fn redacted(self, credentials: &Credentials) -> ApiError {
        if !credentials.appear_in(&self.to_string()) {
            return self;
        }
        let clean = |text: String| credentials.redact(&text);
        match self {
            ApiError::Transport {
                api,
                action,
                message,
            } => ApiError::Transport {
                api,
                action: clean(action),
                message: clean(message),
            },
            ApiError::Http { api, action, error } => ApiError::Http {
                api,
                action: clean(action),
                error: error.redacted(clean),
            },
            ApiError::Refused {
                api,
                action,
                code,
                message,
            } => ApiError::Refused {
                api,
                action: clean(action),
                code: clean(code),
                message: clean(message),
            },
            ApiError::Bound { api, action, what } => ApiError::Bound {
                api,
                action: clean(action),
                what: clean(what),
            },
            // The others hold no text from outside but an export's, named here in one piece.
            other => ApiError::Transport {
                api: "api",
                action: "import".to_string(),
                message: clean(other.to_string()),
            },
        }
    }
}

/// What one fetch may spend. An API that lies about its totals, repeats a page, sends a
/// reply that never ends or an account of a million groups cannot hold the agent: the fetch
/// fails past a bound, naming it, and the source's last good rules stand.
#[derive(Debug, Clone)]
pub struct Budget {
    deadline: Instant,
    limits: Limits,
    requests: Cell<u32>,
    bytes: Cell<usize>,
    items: Cell<usize>,
}

/// A fetch's bounds (README, "Live rules").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests, retries included.
    pub requests: u32,
    /// Bytes of one reply. A reply is parsed whole, and its parse takes several times its
    /// size: a page of 100 groups, or one group's rules, is tens of kilobytes; 8 MiB keeps a
    /// hostile reply's parse inside the unit's 256 MiB.
    pub reply_bytes: usize,
    /// Bytes of all replies together.
    pub bytes: usize,
    /// Items of every list together (groups, rules, instances, templates).
    pub items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests: 20_000,
            reply_bytes: 8 << 20,
            bytes: 512 << 20,
            // About what the unit's 256 MiB holds through a reload: 11,000 groups of 22 rules
            // (253,000 items) peak at 228 MiB (tests/lab_big_export.rs).
            items: 300_000,
        }
    }
}

impl Budget {
    /// A fetch that must end within `time`, with the default limits.
    pub fn new(time: Duration) -> Self {
        Budget::with_limits(time, Limits::default())
    }

    pub fn with_limits(time: Duration, limits: Limits) -> Self {
        Budget {
            deadline: Instant::now() + time,
            limits,
            requests: Cell::new(0),
            bytes: Cell::new(0),
            items: Cell::new(0),
        }
    }

    fn bound(api: &'static str, action: &str, what: String) -> ApiError {
        ApiError::Bound {
            api,
            action: action.to_string(),
            what,
        }
    }

    /// Before a request: the time it may take, `timeout` cut to what is left of the fetch.
    fn request(
        &self,
        api: &'static str,
        action: &str,
        timeout: Duration,
    ) -> Result<Duration, ApiError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Budget::bound(
                api,
                action,
                "the fetch ran past its deadline (the source's refresh, or ten timeouts)".into(),
            ));
        }
        let n = self.requests.get() + 1;
        if n > self.limits.requests {
            return Err(Budget::bound(
                api,
                action,
                format!("more than {} requests in one fetch", self.limits.requests),
            ));
        }
        self.requests.set(n);
        Ok(timeout.min(left))
    }

    /// After a reply of `bytes`.
    fn reply(&self, api: &'static str, action: &str, bytes: usize) -> Result<(), ApiError> {
        let total = self.bytes.get().saturating_add(bytes);
        if total > self.limits.bytes {
            return Err(Budget::bound(
                api,
                action,
                format!(
                    "more than {} bytes of replies in one fetch",
                    self.limits.bytes
                ),
            ));
        }
        self.bytes.set(total);
        Ok(())
    }

    fn items(&self, api: &'static str, action: &str, count: usize) -> Result<(), ApiError> {
        let total = self.items.get().saturating_add(count);
        if total > self.limits.items {
            return Err(Budget::bound(
                api,
                action,
                format!(
                    "more than {} items in one fetch (does the API's total lie?)",
                    self.limits.items
                ),
            ));
        }
        self.items.set(total);
        Ok(())
    }

    /// The wait before a retry, if the fetch has time for it.
    fn wait(&self, api: &'static str, action: &str, wait: Duration) -> Result<(), ApiError> {
        if Instant::now() + wait >= self.deadline {
            return Err(Budget::bound(
                api,
                action,
                "throttled past the fetch's deadline (the source's refresh, or ten timeouts)"
                    .into(),
            ));
        }
        std::thread::sleep(wait);
        Ok(())
    }

    /// One exchange within the budget: its time cut to what is left, its reply counted.
    fn exchange(
        &self,
        api: &'static str,
        action: &str,
        request: http::Request,
        timeout: Duration,
    ) -> Result<(u16, String), ApiError> {
        let time = self.request(api, action, timeout)?;
        let (status, text) =
            http::exchange(request, time, self.limits.reply_bytes).map_err(|error| {
                ApiError::Http {
                    api,
                    action: action.to_string(),
                    error,
                }
            })?;
        self.reply(api, action, text.len())?;
        Ok((status, text))
    }
}

/// A key pair (and, for temporary keys, a token). Its `Debug` shows the key's id only.
#[derive(Clone)]
pub struct Credentials {
    pub id: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Credentials {
    fn secrets(&self) -> impl Iterator<Item = &str> {
        [
            Some(self.id.as_str()),
            Some(self.secret.as_str()),
            self.token.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
    }

    /// Each secret as it may be quoted: as it is, percent-encoded (in a signed query) and
    /// JSON-escaped (in an echoed body).
    fn spellings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for secret in self.secrets() {
            out.push(secret.to_string());
            out.push(sign::encode(secret));
            out.push(
                serde_json::to_string(secret)
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string(),
            );
        }
        out.retain(|s| !s.is_empty());
        out.sort();
        out.dedup();
        out
    }

    fn appear_in(&self, text: &str) -> bool {
        self.spellings().iter().any(|s| text.contains(s.as_str()))
    }

    /// `text` with the key id, secret and token, however quoted, replaced by `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        self.spellings()
            .iter()
            .fold(text.to_string(), |text, secret| {
                text.replace(secret.as_str(), "[redacted]")
            })
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// How many times a throttled request is tried, and the first wait (doubled each time).
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// One try at a request: its answer, or the API saying it is busy (throttled).
enum Try<T> {
    Done(T),
    Busy,
}

/// Tries `attempt` until it is done, waiting twice as long after each busy answer, and
/// reports the API as throttled after `ATTEMPTS` busy ones.
fn with_backoff<T>(
    api: &'static str,
    action: &str,
    budget: &Budget,
    mut attempt: impl FnMut() -> Result<Try<T>, ApiError>,
) -> Result<T, ApiError> {
    let mut wait = FIRST_BACKOFF;
    for n in 1..=ATTEMPTS {
        match attempt()? {
            Try::Done(value) => return Ok(value),
            Try::Busy if n < ATTEMPTS => {
                budget.wait(api, action, wait)?;
                wait *= 2;
            }
            Try::Busy => {}
        }
    }
    Err(ApiError::Throttled {
        api,
        action: action.to_string(),
        attempts: ATTEMPTS,
    })
}

/// How many items a list call asks for at once (both clouds' maximum).
const PAGE: u64 = 100;

/// Every item of a paged list: `page(offset)` gives one page's items and the total the API
/// reports, if it does; pages are asked for until the total is reached or a page is short,
/// within the fetch's budget. A page that repeats the one before is an error: the API
/// ignores the offset, and paging would never end.
fn paged(
    api: &'static str,
    action: &str,
    budget: &Budget,
    mut page: impl FnMut(usize) -> Result<(Vec<Value>, Option<u64>), ApiError>,
) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::new();
    let mut last: Vec<Value> = Vec::new();
    loop {
        let offset = items.len();
        let (got, total) = page(offset)?;
        let count = got.len() as u64;
        if count > 0 && got == last {
            return Err(Budget::bound(
                api,
                action,
                format!(
                    "the page at offset {offset} repeats the one before: the API ignores the offset"
                ),
            ));
        }
        budget.items(api, action, got.len())?;
        items.extend(got.iter().cloned());
        last = got;
        let done = match total {
            Some(total) => items.len() as u64 >= total,
            None => count < PAGE,
        };
        if done || count == 0 {
            return Ok(items);
        }
    }
}

/// Reads one page's JSON (as the CLI prints it) with the format's importer into `merged`.
fn absorb(
    merged: &mut Merged,
    format: Format,
    what: &str,
    text: &str,
    id: Option<&str>,
) -> Result<(), ApiError> {
    let file = PathBuf::from(what);
    // What does not read is carried through, to be refused or reported by the config's reader.
    let inventory = crate::sources::read(format, &file, text, id)?;
    merged.add(&file, inventory)?;
    Ok(())
}

/// A home-relative path, for the CLIs' profile files.
fn home(relative: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(relative))
}
