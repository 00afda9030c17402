//! The agent left alone under hostile conditions: signals mid-cycle, readiness, a second
//! agent on the same socket, files it must not delete.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sgprobe::lab::{Lab, LabSpec};
use sgprobe::sources::native;

/// One instance behind a group that opens TCP 22, with `ports` of its own to check.
fn inventory(ports: &str) -> String {
    format!(
        "[[group]]\nid = \"sg-web\"\ncloud = \"tencent\"\n[[group.ingress]]\naction = \"accept\"\nprotocol = \"tcp\"\nports = \"22\"\npeer = \"0.0.0.0/0\"\n[[group.egress]]\naction = \"accept\"\npeer = \"all\"\n\n[[instance]]\nname = \"web\"\naddresses = [\"10.77.1.10\"]\nsecurity_groups = [\"sg-web\"]\nports = \"{ports}\"\n"
    )
}

/// 3,000 planned ports: 30 s to probe at 100 packets/s.
fn slow() -> String {
    inventory("tcp:1000-3999")
}

/// A handful of flows: cycles of a few hundred milliseconds.
fn quick() -> String {
    inventory("tcp:8080")
}

/// How long a lab agent gets for what these tests wait on.
const WAIT: Duration = Duration::from_secs(15);

fn lab() -> Option<Lab> {
    let inventory = native::parse(Path::new("lab.toml"), &slow()).expect("valid");
    common::lab(&LabSpec {
        inventory,
        ..LabSpec::default()
    })
}

fn write_config(dir: &Path, metrics_port: u16, socket: &Path) -> std::path::PathBuf {
    let config = dir.join(format!("sgprobe-{metrics_port}.toml"));
    std::fs::write(
        &config,
        format!(
            "[agent]\ninterval = \"60s\"\nrate = 100\ntimeout = \"1s\"\nretries = 1\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\ncontrol_socket = \"{}\"\n{}",
            socket.display(),
            slow()
        ),
    )
    .expect("write config");
    config
}

/// `sgprobe run` in the prober namespace, its stderr kept.
fn start_command(lab: &Lab, config: &Path) -> Command {
    let mut command = common::agent_command(&lab.prober().name, config, &[]);
    command.stderr(std::process::Stdio::piped());
    command
}

/// The status line of a GET to the agent's metrics listener, from inside the prober namespace.
fn http_status(lab: &Lab, port: u16, path: &'static str) -> String {
    common::scrape(lab, port, path)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn sigterm_mid_cycle_ends_the_agent_within_a_second_and_readiness_waits_for_a_cycle() {
    let Some(lab) = lab() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("sgprobe.sock");
    let config = write_config(dir.path(), 19481, &socket);
    let mut agent = common::start_agent(start_command(&lab, &config), &socket);
    // The first cycle needs 30 s: the agent is live, but not ready.
    assert!(http_status(&lab, 19481, "/-/healthy").contains(" 200 "));
    assert!(
        http_status(&lab, 19481, "/-/ready").contains(" 503 "),
        "ready before the first cycle completed"
    );
    assert!(
        http_status(&lab, 19481, "/metrics").contains(" 200 "),
        "a scrape mid-cycle is answered"
    );
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    kill(Pid::from_raw(agent.0[0].id() as i32), Signal::SIGTERM).expect("signal our child");
    let status = common::wait_exit(&mut agent.0[0], Duration::from_secs(30));
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(1),
        "SIGTERM mid-cycle took {took:?}"
    );
    assert!(!socket.exists(), "the agent removed its own socket");
}

#[test]
fn a_second_agent_on_a_live_socket_refuses_to_start_and_the_first_keeps_it() {
    let Some(lab) = lab() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("sgprobe.sock");
    let first = write_config(dir.path(), 19482, &socket);
    let second = write_config(dir.path(), 19483, &socket);
    let _first = common::start_agent(start_command(&lab, &first), &socket);
    let out = start_command(&lab, &second)
        .output()
        .expect("the second ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is in use: another agent answers on it"),
        "{stderr}"
    );
    assert!(
        UnixStream::connect(&socket).is_ok(),
        "the first agent still answers on its socket"
    );
}

#[test]
fn a_stale_socket_is_replaced_and_anything_else_at_the_path_is_left_alone() {
    let Some(lab) = lab() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // A socket nobody listens on any more: replaced.
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    let config = write_config(dir.path(), 19484, &stale);
    let mut agent = common::start_agent(start_command(&lab, &config), &stale);
    kill(Pid::from_raw(agent.0[0].id() as i32), Signal::SIGTERM).expect("signal our child");
    assert!(common::wait_exit(&mut agent.0[0], Duration::from_secs(30)).success());

    // A regular file: refused, and kept.
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep me").expect("write");
    let config = write_config(dir.path(), 19485, &file);
    let out = start_command(&lab, &config).output().expect("ends");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a socket"));
    assert_eq!(
        std::fs::read_to_string(&file).expect("still there"),
        "keep me"
    );
}

/// One HTTP/1.1 exchange over the control socket: the status code and the parsed body.
fn exchange(socket: &Path, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut stream = UnixStream::connect(socket).expect("the socket answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A body the server refuses may be cut off mid-write: the reply still comes.
    let _ = stream.write_all(request.as_bytes());
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    let code = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or_default();
    (
        code,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn every_control_api_error_has_its_status_and_a_json_message() {
    let Some(lab) = lab() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("sgprobe.sock");
    let config = write_config(dir.path(), 19486, &socket);
    let _agent = common::start_agent(start_command(&lab, &config), &socket);
    let huge = format!("{{\"instance\": \"{}\"}}", "x".repeat(20_000));
    let cases: [(&str, &str, &str, u16, &str); 8] = [
        (
            "POST",
            "/v1/check",
            "not json!",
            400,
            "expected {\"instance\"",
        ),
        ("POST", "/v1/check", &huge, 413, "at most 16384 bytes"),
        ("GET", "/v1/check", "", 405, "wrong method"),
        ("GET", "/nope", "", 404, "no such endpoint"),
        (
            "POST",
            "/v1/check",
            r#"{"instance": "db-9"}"#,
            404,
            "no instance \"db-9\"",
        ),
        (
            "POST",
            "/v1/check",
            r#"{"instance": "web", "ports": "all"}"#,
            422,
            "names no port",
        ),
        (
            "POST",
            "/v1/check",
            r#"{"instance": "web", "direction": "outbound", "ports": "tcp:443"}"#,
            422,
            "probed only by an agent on it",
        ),
        (
            "POST",
            "/v1/check",
            r#"{"instance": "web", "ports": "tcp:99999"}"#,
            400,
            "99999",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let (code, json) = exchange(&socket, method, path, body);
        let shown: String = body.chars().take(60).collect();
        assert_eq!(code, status, "{method} {path} {shown}: {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{method} {path} {shown}: {error:?}"
        );
    }
}

/// With the systemd default of 1,024 descriptors, 1,050 idle connections to /metrics once
/// starved the agent: every cycle failed to open a socket. Now connections are capped and
/// idle ones shed: cycles go on, and a scrape is answered.
#[test]
fn a_crowd_of_idle_connections_neither_starves_the_cycles_nor_blocks_a_scrape() {
    let inventory = native::parse(Path::new("lab.toml"), &quick()).expect("valid");
    let Some(lab) = common::lab(&LabSpec {
        inventory,
        ..LabSpec::default()
    }) else {
        return;
    };
    // This test holds more connections than a default soft limit allows.
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        hard.min(8192),
        hard,
    )
    .expect("setrlimit");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = 19487;
    let (config, socket) = common::agent_config(
        dir.path(),
        &format!(
            "interval = \"1s\"\ntimeout = \"300ms\"\nretries = 1\nmetrics_listen = \"127.0.0.1:{port}\""
        ),
        &quick(),
    );
    let _agent = common::start_agent(
        common::agent_command(
            &lab.prober().name,
            &config,
            &["sh", "-c", "ulimit -n 1024 && exec \"$0\" \"$@\""],
        ),
        &socket,
    );
    let cycles = || {
        exchange(&socket, "GET", "/v1/status", "").1["cycles"]
            .as_u64()
            .unwrap_or(0)
    };
    common::wait_for("a first cycle", WAIT, || cycles() >= 1);
    let crowd = lab
        .in_prober(move || {
            (0..1050)
                .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
                .collect::<Vec<_>>()
        })
        .expect("runs");
    assert!(crowd.len() >= 1000, "only {} connections held", crowd.len());
    let before = cycles();
    common::wait_for("two more cycles under the crowd", WAIT, || {
        cycles() >= before + 2
    });
    assert!(
        http_status(&lab, port, "/metrics").contains(" 200 "),
        "a scrape is answered while the crowd holds on"
    );
    drop(crowd);
}

/// A port already in use is a failure while running, not bad input: its own exit code.
#[test]
fn a_metrics_port_in_use_exits_3_and_a_bad_config_exits_2() {
    let Some(lab) = lab() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let port = 19488;
    let _taken = lab
        .in_prober(move || std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind"))
        .expect("runs");
    let config = write_config(dir.path(), port, &dir.path().join("sgprobe.sock"));
    let out = start_command(&lab, &config).output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot listen on 127.0.0.1:19488"),
        "{stderr}"
    );

    std::fs::write(&config, "[agent]\nrate = 0\n").expect("write");
    let out = start_command(&lab, &config).output().expect("ends");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The threads of a process, from /proc.
fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().parse().ok()))
                .flatten()
        })
        .unwrap_or(0)
}

#[test]
fn a_stuck_command_fetch_neither_queues_reloads_nor_holds_up_sigterm_nor_outlives_the_agent() {
    let Some(lab) = lab() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("sgprobe.sock");
    let (flag, pidfile) = (dir.path().join("stuck"), dir.path().join("sleeper.pid"));
    std::fs::write(dir.path().join("lab.toml"), quick()).expect("write");
    // Once `stuck` exists, the command leaves a grandchild holding its stdout and itself
    // ignores SIGTERM, then waits: the shape of a CLI stuck on a network call.
    let script = format!(
        "if [ -e {flag} ]; then trap '' TERM; sleep 300 & echo $! > {pidfile}; wait; fi; cat {lab}",
        flag = flag.display(),
        pidfile = pidfile.display(),
        lab = dir.path().join("lab.toml").display()
    );
    let config = dir.path().join("sgprobe.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\ninterval = \"60s\"\nmetrics_listen = \"127.0.0.1:19492\"\ncontrol_socket = \"{}\"\n[[source]]\nname = \"cli\"\nformat = \"native\"\ncommand = [\"sh\", \"-c\", {script:?}]\nrefresh = \"1s\"\ntimeout = \"5m\"\n",
            socket.display()
        ),
    )
    .expect("write config");
    // The agent is `ip netns exec`'s child: the process to signal is the one that execs.
    let mut agent = common::start_agent(start_command(&lab, &config), &socket);
    std::fs::write(&flag, "").expect("flag");
    // Past the command's refresh, a reload runs it again.
    std::thread::sleep(Duration::from_millis(1100));
    let pid = agent.0[0].id();
    kill(Pid::from_raw(pid as i32), Signal::SIGHUP).expect("signal our child");
    common::wait_for("the stuck fetch", WAIT, || pidfile.exists());
    let before = threads(pid);
    // Reloads asked for meanwhile are coalesced: answered at once, one more queued.
    for _ in 0..50 {
        let (code, body) = exchange(&socket, "POST", "/v1/reload", "");
        assert_eq!(code, 202, "{body}");
    }
    assert!(
        threads(pid) <= before + 2,
        "threads {before} -> {}: reloads queued",
        threads(pid)
    );
    let sleeper: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    let sent = Instant::now();
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("signal our child");
    let status = common::wait_exit(&mut agent.0[0], Duration::from_secs(30));
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM during a stuck fetch took {took:?}"
    );
    // The command's group died with the agent: its grandchild is gone, or a zombie waiting
    // for init to reap it.
    let running = || {
        let state = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
        state
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|s| s != 'Z')
    };
    common::wait_for(
        "the command's grandchild to die with the agent",
        Duration::from_secs(2),
        || !running(),
    );
    agent.0.clear();
}

/// The resident memory of a process, in bytes, from /proc.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn slow_readers_neither_starve_a_scrape_nor_swell_the_agent() {
    let Some(lab) = lab() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("sgprobe.sock");
    let config = dir.path().join("sgprobe.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\ninterval = \"60s\"\nrate = 20000\ntimeout = \"300ms\"\nretries = 0\nmetrics_listen = \"127.0.0.1:19493\"\ncontrol_socket = \"{}\"\n{}",
            socket.display(),
            slow()
        ),
    )
    .expect("write config");
    let agent = common::start_agent(start_command(&lab, &config), &socket);
    let pid = agent.0[0].id();
    common::wait_for("a cycle", Duration::from_secs(60), || {
        http_status(&lab, 19493, "/-/ready").contains(" 200 ")
    });
    let size = common::scrape(&lab, 19493, "/metrics").len();
    let before = rss(pid);
    // 300 clients that each ask for /metrics 20 times over and never read a byte (bounded:
    // 300 connections, 20 requests each, closed when the test ends).
    let crowd: Vec<std::net::TcpStream> = lab
        .in_prober(|| {
            (0..300)
                .filter_map(|_| {
                    let mut stream = std::net::TcpStream::connect(("127.0.0.1", 19493)).ok()?;
                    let requests = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20);
                    let _ = stream.write_all(requests.as_bytes());
                    Some(stream)
                })
                .collect()
        })
        .expect("runs");
    std::thread::sleep(Duration::from_secs(2));
    let during = rss(pid);
    let asked = Instant::now();
    let scrape = common::scrape(&lab, 19493, "/metrics");
    let healthy = http_status(&lab, 19493, "/-/healthy");
    let answered = asked.elapsed();
    drop(crowd);
    eprintln!(
        "slow readers: /metrics {size} bytes; RSS {} MiB before, {} MiB with 300 slow readers; a scrape and /-/healthy answered in {answered:?}",
        before >> 20,
        during >> 20
    );
    assert!(
        scrape.starts_with("HTTP/1.1 200"),
        "a real scrape is served"
    );
    assert!(scrape.contains("sgprobe_flow_predicted_open"), "and whole");
    assert!(healthy.contains(" 200 "), "{healthy}");
    assert!(
        answered < Duration::from_secs(20),
        "served within the slow readers' write deadline: {answered:?}"
    );
    // One copy of the text, shared: not one per connection (300 x {size} bytes).
    assert!(size > 500_000, "a /metrics worth keeping once: {size}");
    assert!(
        during.saturating_sub(before) < 64 << 20,
        "RSS grew from {before} to {during} bytes"
    );
}

/// `start`, with the faults `planted` (see `sgprobe::failpoint`).
#[cfg(feature = "failpoints")]
fn fault_command(lab: &Lab, config: &Path, planted: &str) -> Command {
    let mut command = start_command(lab, config);
    command.env("SGPROBE_FAILPOINT", planted);
    command
}

#[cfg(feature = "failpoints")]
#[test]
fn a_cycle_task_that_panics_stops_the_agent_with_an_error() {
    let Some(lab) = lab() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("sgprobe.sock");
    let config = write_config(dir.path(), 19_494, &socket);
    let mut agent = common::Started(vec![
        fault_command(&lab, &config, "cycle-panic")
            .spawn()
            .expect("the agent starts"),
    ]);
    let mut status = None;
    common::wait_for("the agent to stop", Duration::from_secs(30), || {
        status = agent.0[0].try_wait().expect("wait");
        status.is_some()
    });
    let status = status.expect("exited");
    let mut stderr = String::new();
    agent.0[0]
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("read");
    // 3: a failure while running (README, "Exit codes").
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the cycle task panicked"),
        "the log says which task: {stderr}"
    );
    assert!(!socket.exists(), "the control socket is removed");
    agent.0.clear();
}

#[cfg(feature = "failpoints")]
#[test]
fn a_reload_that_never_ends_is_seen_stalled_and_sigterm_still_ends_the_agent() {
    let Some(lab) = lab() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("sgprobe.sock");
    std::fs::write(dir.path().join("lab.toml"), quick()).expect("write");
    let config = dir.path().join("sgprobe.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\ninterval = \"60s\"\nmetrics_listen = \"127.0.0.1:19495\"\ncontrol_socket = \"{}\"\n{}",
            socket.display(),
            quick()
        ),
    )
    .expect("write config");
    let mut agent = common::start_agent(fault_command(&lab, &config, "reload-stall"), &socket);
    let pid = agent.0[0].id();
    common::wait_for("a cycle", Duration::from_secs(30), || {
        http_status(&lab, 19_495, "/-/ready").contains(" 200 ")
    });
    assert!(http_status(&lab, 19_495, "/-/healthy").contains(" 200 "));
    kill(Pid::from_raw(pid as i32), Signal::SIGHUP).expect("signal our child");
    // Reading and parsing have a minute beyond their bound (none): then the load is stuck.
    common::wait_for("the stuck load to be seen", Duration::from_secs(90), || {
        http_status(&lab, 19_495, "/-/healthy").contains(" 503 ")
    });
    let metrics = common::scrape(&lab, 19_495, "/metrics");
    assert!(
        metrics.contains("sgprobe_cycle_stalled 1"),
        "the stall is a metric too"
    );
    let sent = Instant::now();
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("signal our child");
    let status = common::wait_exit(&mut agent.0[0], Duration::from_secs(30));
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM during a stuck load took {took:?}"
    );
    agent.0.clear();
}

#[test]
fn the_metrics_listener_has_a_landing_page_and_reloads_as_prometheus_does() {
    let Some(lab) = lab() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("sgprobe.sock");
    let config = write_config(dir.path(), 19_496, &socket);
    let post = || {
        String::from_utf8_lossy(&common::exchange(
            &lab,
            19_496,
            "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .into(),
        ))
        .into_owned()
    };
    let mut agent = common::start_agent(start_command(&lab, &config), &socket);
    // Off unless enabled, as Prometheus' lifecycle API: the listener faces the network.
    let refused = post();
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(refused.contains("web_reload = true"), "{refused}");
    kill(Pid::from_raw(agent.0[0].id() as i32), Signal::SIGTERM).expect("signal our child");
    common::wait_exit(&mut agent.0[0], Duration::from_secs(30));
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(
        &config,
        text.replacen("[agent]\n", "[agent]\nweb_reload = true\n", 1),
    )
    .expect("write");
    let _ = std::fs::remove_file(&socket);
    let _agent = common::start_agent(start_command(&lab, &config), &socket);
    let landing = common::scrape(&lab, 19_496, "/");
    assert!(landing.starts_with("HTTP/1.1 200"), "{landing}");
    assert!(landing.contains("href=\"metrics\""), "{landing}");
    let reload = post();
    assert!(reload.starts_with("HTTP/1.1 200"), "{reload}");
    assert!(reload.contains("\"reloaded\":true"), "{reload}");
    // Gzip when asked for, as Prometheus asks.
    let zipped = common::exchange(
        &lab,
        19_496,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
            .into(),
    );
    let split = zipped
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let headers = String::from_utf8_lossy(&zipped[..split]).to_ascii_lowercase();
    assert!(headers.contains("content-encoding: gzip"), "{headers}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&zipped[split + 4..])
        .read_to_string(&mut text)
        .expect("gzip");
    assert!(text.contains("sgprobe_build_info"), "{text}");
}
