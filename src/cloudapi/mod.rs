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

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

use crate::model::Inventory;
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
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// A key pair (and, for temporary keys, a token). Its `Debug` shows the key's id only.
#[derive(Clone)]
pub struct Credentials {
    pub id: String,
    pub secret: String,
    pub token: Option<String>,
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
    mut attempt: impl FnMut() -> Result<Try<T>, ApiError>,
) -> Result<T, ApiError> {
    let mut wait = FIRST_BACKOFF;
    for n in 1..=ATTEMPTS {
        match attempt()? {
            Try::Done(value) => return Ok(value),
            Try::Busy if n < ATTEMPTS => {
                std::thread::sleep(wait);
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
/// reports, if it does; pages are asked for until the total is reached or a page is short.
fn paged(
    mut page: impl FnMut(usize) -> Result<(Vec<Value>, Option<u64>), ApiError>,
) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::new();
    loop {
        let (got, total) = page(items.len())?;
        let count = got.len() as u64;
        items.extend(got);
        let done = match total {
            Some(total) => items.len() as u64 >= total,
            None => count < PAGE,
        };
        if done || count == 0 {
            return Ok(items);
        }
    }
}

/// The rules and instances an API gave, as native TOML: what a source's text is.
fn render(inventory: &Inventory) -> String {
    crate::sources::native::render(inventory)
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
