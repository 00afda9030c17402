//! Shared by the lab tests: root or skip (never skip under CI), and a runtime in the prober.
#![allow(dead_code)]

use std::sync::Arc;

use sgprobe::engine::{Counters, Pacer, Report, Settings, Target, probe};
use sgprobe::lab::{Lab, LabSpec};

/// The lab, or `None` with a printed reason on a machine without root. Under `CI=true` a
/// missing privilege fails the test instead: CI must run them.
pub fn lab(spec: &LabSpec) -> Option<Lab> {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "lab tests need root, and CI=true: run them as root"
        );
        eprintln!("SKIPPED: lab tests need root (network namespaces and nftables)");
        return None;
    }
    Some(Lab::build(spec).expect("the lab builds"))
}

/// Runs the engine from inside the lab's prober namespace.
pub fn probe_in(lab: &Lab, settings: Settings, targets: Vec<Target>) -> Report {
    lab.in_prober(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime
            .block_on(probe(
                &settings,
                &Pacer::new(settings.rate),
                &targets,
                Arc::new(Counters::default()),
            ))
            .expect("probes run")
    })
    .expect("the prober thread runs")
}

/// Whether a tool the test needs is installed; under `CI=true` a missing one fails the test.
pub fn tool(name: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is missing, and CI=true: .ci/run installs it"
        );
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}

/// Processes a test started, stopped by PID (SIGKILL) when the test ends, however it ends.
pub struct Started(pub Vec<std::process::Child>);

impl Drop for Started {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // SIGKILL by PID, unless the child was already reaped: its PID may be another's.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `program` inside the namespace `ns`, its output discarded.
pub fn spawn_in(ns: &str, program: &str, args: &[&std::ffi::OsStr]) -> std::process::Child {
    std::process::Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Writes an agent config in `dir`: its control socket there, `agent` lines in `[agent]`, then
/// `inventory`. Returns the config's path and the socket's.
pub fn agent_config(
    dir: &std::path::Path,
    agent: &str,
    inventory: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (config, socket) = (dir.join("sgprobe.toml"), dir.join("sgprobe.sock"));
    let text = format!(
        "[agent]\ncontrol_socket = \"{}\"\n{agent}\n{inventory}",
        socket.display()
    );
    std::fs::write(&config, text).expect("write the agent's config");
    (config, socket)
}

/// The agent as the lab tests run it: `ip netns exec NS [WRAP...] sgprobe run --config
/// CONFIG`, output discarded unless the caller redirects it. `wrap` runs inside the namespace
/// around the agent: dropped privileges (`setpriv`), a descriptor limit or a memory cgroup
/// (`sh -c '... && exec "$0" "$@"'`).
pub fn agent_command(ns: &str, config: &std::path::Path, wrap: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("ip");
    command
        .args(["netns", "exec", ns])
        .args(wrap)
        .arg(env!("CARGO_BIN_EXE_sgprobe"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// Starts the agent and waits until its control socket answers: at most 90 s (the first load
/// may wait on a slow API emulator), failing at once if the agent exits first. It is killed
/// by PID when the result is dropped, however the test ends.
pub fn start_agent(mut command: std::process::Command, socket: &std::path::Path) -> Started {
    let mut agent = Started(vec![command.spawn().expect("the agent starts")]);
    wait_for(
        "the control socket",
        std::time::Duration::from_secs(90),
        || {
            if let Ok(Some(status)) = agent.0[0].try_wait() {
                panic!("the agent exited ({status}) before its control socket answered");
            }
            std::os::unix::net::UnixStream::connect(socket).is_ok()
        },
    );
    agent
}

/// Waits for a child to exit, failing the test past `limit` (it is killed when its `Started`
/// drops): a stop that regressed fails rather than hangs.
pub fn wait_exit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            start.elapsed() < limit,
            "the process did not exit within {limit:?}"
        );
        // Fine-grained: tests time how fast a signal takes effect.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Polls `done` until it holds; fails the test past `limit`, naming `what`.
pub fn wait_for(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A raw HTTP/1.1 exchange over the agent's control socket (what `curl --unix-socket` does).
pub fn control_raw(socket: &std::path::Path, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("the socket answers");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
}

/// `GET path` on the control socket: the JSON body.
pub fn control_get(socket: &std::path::Path, path: &str) -> serde_json::Value {
    let reply = control_raw(
        socket,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    serde_json::from_str(reply.split("\r\n\r\n").nth(1).expect("a body")).expect("JSON")
}

/// The agent's whole reply to `GET path` on its metrics listener, from inside the prober
/// namespace.
pub fn scrape(lab: &Lab, port: u16, path: &'static str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    String::from_utf8_lossy(&exchange(lab, port, request)).into_owned()
}

/// One raw HTTP/1.1 request to the agent's metrics listener, from inside the prober
/// namespace: the whole reply, bytes as sent.
pub fn exchange(lab: &Lab, port: u16, request: String) -> Vec<u8> {
    use std::io::{Read, Write};
    lab.in_prober(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("listening");
        stream.write_all(request.as_bytes()).expect("write");
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        reply
    })
    .expect("runs")
}
