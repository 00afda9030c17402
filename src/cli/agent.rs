//! `sgprobe run` (the daemon) and its clients over the control socket: `check`, `status`,
//! `drift`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::BadInput;
use super::ConfigArg;
use super::output::table;
use crate::config::{Config, DEFAULT_CONTROL_SOCKET};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Args)]
#[command(
    about = "Run the agent: check every instance each interval, export drift as Prometheus metrics, answer on the control socket",
    after_help = "Example:\n  sudo sgprobe run --config /etc/sgprobe/sgprobe.toml\n\n\
Signals: SIGHUP reloads the config (a broken file keeps the old config running and sets \
sgprobe_config_last_reload_successful to 0); SIGTERM and SIGINT stop gracefully.\n\
Endpoints: http://METRICS_LISTEN/metrics, /-/healthy, /-/ready; the control socket serves \
GET /v1/status, GET /v1/drift, POST /v1/check, POST /v1/reload (curl --unix-socket works)."
)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Log lines as plain text (without timestamps under journald) or JSON.
    #[arg(long, value_enum, default_value = "plain")]
    log_format: LogFormat,
    /// The least severe lines logged: error, warn, info, debug or trace. RUST_LOG (or
    /// SGPROBE_LOG), in tracing's filter syntax, takes over when set.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: tracing::Level,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let filter = ["RUST_LOG", "SGPROBE_LOG"]
        .into_iter()
        .find_map(|name| tracing_subscriber::EnvFilter::try_from_env(name).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(args.log_level.as_str()));
    // Colour only for a person at a terminal who has not asked for none (no-color.org):
    // never into a file or the journal.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match (
        args.log_format,
        std::env::var_os("JOURNAL_STREAM").is_some(),
    ) {
        (LogFormat::Json, _) => builder.json().init(),
        (LogFormat::Plain, true) => builder.without_time().init(),
        (LogFormat::Plain, false) => builder.init(),
    }
    // Two workers: a cycle busy planning a large config never holds up a signal, a scrape
    // or the control socket.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let result = runtime.block_on(crate::daemon::run(&args.config.config));
    // A reload blocked on a source must not hold up the exit: its thread goes with the
    // process (its command was killed with its group).
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Where the daemon listens: `--socket`, else the config's `control_socket`, else the default.
#[derive(Debug, Args)]
pub struct SocketArgs {
    /// The control socket.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    socket: Option<PathBuf>,
    /// Read `control_socket` from this config file.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

impl SocketArgs {
    fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(socket) = &self.socket {
            return Ok(socket.clone());
        }
        if let Some(config) = &self.config {
            // Only its socket is wanted: sources are the agent's to fetch.
            return Ok(Config::read_agent(config)
                .context("cannot read the config")?
                .control_socket);
        }
        Ok(PathBuf::from(DEFAULT_CONTROL_SOCKET))
    }
}

#[derive(Debug, Args)]
#[command(
    about = "Ask the running agent to check an instance now: predicted, observed, drift and deciding rule per flow",
    after_help = "Examples:\n  sgprobe check web-1\n  sgprobe check web-1 --ports tcp:22 --json\n  sgprobe check web-1 --socket /run/sgprobe/sgprobe.sock"
)]
pub struct CheckArgs {
    /// The instance, by name or cloud id, as the config knows it.
    instance: String,
    /// Flows to check, as tcp:22,80,udp:53,icmp; default the instance's planned flows.
    #[arg(long, short = 'p', value_name = "SPEC")]
    ports: Option<String>,
    #[arg(long, short = 'd', value_name = "inbound|outbound")]
    direction: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    socket: SocketArgs,
}

/// `status` and `drift`: a question to the running agent.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    socket: SocketArgs,
}

pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let body =
        json!({ "instance": args.instance, "ports": args.ports, "direction": args.direction });
    let rows = call(&args.socket.path()?, Method::POST, "/v1/check", Some(body))?;
    print_rows(&rows, args.json)
}

pub fn drift(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let rows = call(&args.socket.path()?, Method::GET, "/v1/drift", None)?;
    print_rows(&rows, args.json)
}

pub fn status(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let status = call(&args.socket.path()?, Method::GET, "/v1/status", None)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&status)?)?;
    } else if let Some(fields) = status.as_object() {
        for (key, value) in fields {
            outln!("{key:>16}: {value}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the rows; exits 1 when one drifts, as `diff` does when the files differ, so a
/// script can tell at once.
fn print_rows(rows: &Value, json: bool) -> anyhow::Result<ExitCode> {
    let drifting = rows
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| matches!(r["drift"].as_str(), Some("exposed" | "blocked")));
    let code = if drifting {
        ExitCode::from(super::EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(rows)?)?;
        return Ok(code);
    }
    let mut out = table(&[
        "INSTANCE",
        "ADDRESS",
        "FLOW",
        "DIRECTION",
        "PREDICTED",
        "OBSERVED",
        "DRIFT",
        "CAUSE",
        "EVIDENCE",
        "RULE",
    ]);
    for row in rows.as_array().into_iter().flatten() {
        let text = |key: &str| {
            row[key]
                .as_str()
                .map_or_else(|| row[key].to_string(), str::to_string)
        };
        let flow = match row["port"].as_u64() {
            Some(port) => format!("{}:{port}", text("protocol").to_uppercase()),
            None => text("protocol").to_uppercase(),
        };
        let rule = match row["rule"].as_object() {
            Some(rule) => format!(
                "{} #{} {}",
                rule["group"].as_str().unwrap_or(""),
                rule["index"],
                rule["action"].as_str().unwrap_or("")
            ),
            None => "default".to_string(),
        };
        out.add_row(vec![
            text("instance"),
            text("address"),
            flow,
            text("direction"),
            // The rules allow or deny; packets show open, closed or filtered.
            match text("predicted").as_str() {
                "open" => "allowed".to_string(),
                "closed" => "denied".to_string(),
                other => other.to_string(),
            },
            text("observed"),
            text("drift"),
            row["cause"].as_str().unwrap_or("").to_string(),
            // As nmap's --reason prints it: what came back, and with which TTL.
            match row["ttl"].as_u64() {
                Some(ttl) => format!("{} ttl {ttl}", text("evidence")),
                None => text("evidence"),
            },
            rule,
        ]);
    }
    outln!("{out}")?;
    Ok(code)
}

/// One request over the control socket; an error reply becomes an error naming the reason.
fn call(socket: &Path, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .with_context(|| format!("cannot reach the agent at {} (is `sgprobe run` running? --socket or --config name another socket)", socket.display()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("control socket handshake")?;
        tokio::spawn(connection);
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let request = Request::builder().method(method).uri(path).header("host", "sgprobe").header("content-type", "application/json").body(Full::new(Bytes::from(payload)))?;
        let response = sender.send_request(request).await.context("control socket request")?;
        let status = response.status();
        let bytes = response.into_body().collect().await.context("control socket reply")?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes).with_context(|| format!("the agent answered {status} with no JSON"))?;
        if !status.is_success() {
            let message = format!("the agent refused ({status}): {}", value["error"].as_str().unwrap_or("no reason given"));
            // 4xx: the request was wrong; 5xx: the agent failed at its work.
            if status.is_client_error() {
                return Err(BadInput(message).into());
            }
            bail!(message);
        }
        Ok(value)
    })
}
