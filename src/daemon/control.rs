//! The control socket: HTTP/1.1 over a Unix socket, JSON, paths under /v1/. Only configured
//! instances can be probed; every refusal is a JSON error, never a crash.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Json;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::net::UnixListener;

use super::cycle::{Selection, check};
use super::listen::Caller;
use super::{Reload, Shared, lock, settings};
use crate::drift::Drift;
use crate::model::{Direction, parse_port_spec};

/// The control socket's file as this agent created it, known by its inode so that only it
/// is removed.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    inode: u64,
}

impl SocketFile {
    /// Removes the socket if it is still the one this agent created.
    pub fn remove(&self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds the socket, mode 0660: the owner and its group may talk. A live socket (another
/// agent answers on it) is refused; a stale one is replaced; anything else at the path is
/// never deleted.
pub fn bind(path: &Path) -> anyhow::Result<(UnixListener, SocketFile)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "{} is in use: another agent answers on it. Stop that agent, or give this one another control_socket",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket: refusing to replace it (remove it, or set another control_socket)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    let inode = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot inspect {}", path.display()))?
        .ino();
    let file = SocketFile {
        path: path.to_path_buf(),
        inode,
    };
    Ok((listener, file))
}

const ENDPOINTS: &str = "GET /v1/status, GET /v1/drift, POST /v1/check, POST /v1/reload";

/// Requests larger than this are refused: a check request is a few dozen bytes.
const BODY_LIMIT: usize = 16 * 1024;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/drift", get(drift))
        .route("/v1/check", post(check_now))
        .route("/v1/reload", post(reload))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                format!("no such endpoint: {ENDPOINTS}"),
            )
        })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("wrong method for this endpoint: {ENDPOINTS}"),
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    Json(lock(&shared.status).clone()).into_response()
}

async fn drift(State(shared): State<Arc<Shared>>) -> Response {
    let latest = lock(&shared.latest);
    let rows: Vec<serde_json::Value> = latest
        .iter()
        .filter(|r| matches!(r.confirmed, Drift::Exposed | Drift::Blocked))
        .map(|r| {
            let mut row = serde_json::to_value(r).unwrap_or_default();
            row["drift"] = json!(r.confirmed.name());
            row
        })
        .collect();
    Json(rows).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    instance: String,
    ports: Option<String>,
    direction: Option<String>,
}

async fn check_now(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(caller): ConnectInfo<Caller>,
    body: Result<Json<CheckRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a check request is at most {BODY_LIMIT} bytes"),
            );
        }
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected {{\"instance\": NAME, \"ports\": SPEC, \"direction\": \"inbound\"|\"outbound\"}}: {}",
                    rejection.body_text()
                ),
            );
        }
    };
    let Ok(_permit) = shared.checks.try_acquire() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "other checks are running: try again in a moment",
        );
    };
    let config = shared.config();
    let found = match config.inventory.instance(&request.instance) {
        Ok(found) => found,
        Err(ambiguous) => return error(StatusCode::BAD_REQUEST, ambiguous.to_string()),
    };
    let Some(instance) = found else {
        let known: Vec<&str> = config
            .inventory
            .instances
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no instance {:?} in the config (known: {})",
                request.instance,
                known.join(", ")
            ),
        );
    };
    let ports = match request.ports.as_deref().map(parse_port_spec).transpose() {
        Ok(ports) => ports,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let direction = match request
        .direction
        .as_deref()
        .map(|d| Direction::parse(d).ok_or(d))
        .transpose()
    {
        Ok(direction) => direction,
        Err(d) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("direction {d:?}: expected inbound or outbound"),
            );
        }
    };
    // Valid requests that name nothing to probe get 422, not an empty 200.
    if ports
        .as_ref()
        .is_some_and(|p| p.iter().any(|s| !s.protocol.is_probe()))
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "\"all\" names no port a probe can send to, nor do ICMP types other than echo or IP protocols (eval gives their verdicts): give protocols and ports, as tcp:1-1024,udp:53,icmp",
        );
    }
    if direction == Some(Direction::Outbound) && (!instance.local || instance.outbound.is_empty()) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "outbound flows of {:?} are probed only by an agent on it (local = true) toward its [[instance.outbound]] destinations",
                instance.name
            ),
        );
    }
    tracing::info!(uid = caller.uid, instance = %instance.name, ports = request.ports.as_deref(), "check requested");
    match check(
        &config,
        &[instance],
        &Selection {
            ports,
            direction,
            only: None,
        },
        &settings(&config.agent),
        &shared.pacer,
        shared.activity.clone(),
    )
    .await
    {
        Ok(checked) => Json(checked.results).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn reload(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(caller): ConnectInfo<Caller>,
) -> Response {
    tracing::info!(uid = caller.uid, "reload requested");
    reload_reply(shared.reload_off_thread().await)
}

/// What a reload came to, as both listeners answer it: 200, 422 (the old config stands) or
/// 202 (one was running: another follows it).
pub fn reload_reply(reload: Reload) -> Response {
    match reload {
        Reload::Done(Ok(())) => Json(json!({ "reloaded": true })).into_response(),
        Reload::Done(Err(message)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the previous config keeps running: {message}"),
        ),
        Reload::Queued => (
            StatusCode::ACCEPTED,
            Json(json!({ "reloaded": false, "queued": true, "message": "a reload is running: one more follows it" })),
        )
            .into_response(),
    }
}
