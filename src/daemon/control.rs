//! The control socket: HTTP/1.1 over a Unix socket, JSON, paths under /v1/. Only configured
//! instances can be probed; every refusal is a JSON error, never a crash.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use serde::Deserialize;
use serde_json::json;
use tokio::net::UnixListener;

use super::cycle::{Selection, check};
use super::{Shared, lock, settings};
use crate::drift::Drift;
use crate::model::{Direction, parse_port_spec};

/// Who called, from SO_PEERCRED: logged with every request that changes or probes anything.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    uid: Option<u32>,
}

impl Connected<IncomingStream<'_, UnixListener>> for Caller {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        Caller {
            uid: stream.io().peer_cred().ok().map(|c| c.uid()),
        }
    }
}

/// Binds the socket (replacing a stale one), mode 0660: the owner and its group may talk.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, app: Router) {
    if let Err(e) = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<Caller>(),
    )
    .await
    {
        tracing::error!(error = %e, "control socket stopped");
    }
}

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
                "no such endpoint: GET /v1/status, GET /v1/drift, POST /v1/check, POST /v1/reload",
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
        .filter(|(_, d)| matches!(d, Drift::Exposed | Drift::Blocked))
        .map(|(r, d)| {
            let mut row = serde_json::to_value(r).unwrap_or_default();
            row["drift"] = json!(d.name());
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
    let Some(instance) = config.inventory.instance(&request.instance) else {
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
    tracing::info!(uid = ?caller.uid, instance = %instance.name, ports = ?request.ports, "check requested");
    match check(
        &config,
        &[instance],
        &Selection { ports, direction },
        &settings(&config.agent),
        &shared.pacer,
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
    tracing::info!(uid = ?caller.uid, "reload requested");
    match shared.reload() {
        Ok(()) => Json(json!({ "reloaded": true })).into_response(),
        Err(message) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the previous config keeps running: {message}"),
        ),
    }
}
