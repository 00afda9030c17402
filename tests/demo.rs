//! `sgprobe demo`, as a newcomer runs it: drift appears, Ctrl-C leaves nothing behind.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sgprobe::lab::LabSpec;

#[test]
fn the_demo_shows_both_drifts_and_cleans_up_on_ctrl_c() {
    if common::lab(&LabSpec::default()).is_none() {
        return;
    }
    let mut demo = Command::new(env!("CARGO_BIN_EXE_sgprobe"))
        .args(["demo", "--interval", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let pid = demo.id();
    let stdout = demo.stdout.take().expect("piped");
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let done = line.starts_with("Ctrl-C");
        seen.push(line);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    let row = |instance: &str, flow: &str, drift: &str| {
        seen.iter()
            .any(|l| l.contains(instance) && l.contains(flow) && l.contains(drift))
    };
    assert!(row("web-1", "TCP:8080", "exposed"), "{text}");
    assert!(row("web-2", "TCP:443", "blocked"), "{text}");
    let check = Command::new(env!("CARGO_BIN_EXE_sgprobe"))
        .args([
            "check",
            "web-1",
            "--ports",
            "tcp:8080",
            "--json",
            "--socket",
            "/run/sgprobe/demo.sock",
        ])
        .output()
        .expect("runs");
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("\"exposed\""),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The metrics forwarder: an HTTP/1.0 client (the reply ends when the connection does)
    // gets whole replies, and scrapes leave no thread or descriptor behind.
    let threads = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("the demo runs")
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .expect("a thread count")
    };
    let before = threads();
    for _ in 0..50 {
        let mut stream = std::net::TcpStream::connect("127.0.0.1:9477").expect("the forwarder");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .expect("write");
        let mut reply = String::new();
        stream
            .read_to_string(&mut reply)
            .expect("the reply ends with the connection");
        assert!(reply.contains("sgprobe_flow_drift"), "{reply}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        threads() <= before,
        "threads before {before}, after {}",
        threads()
    );
    // The config stays while the agent runs: a reload reads it again, cleanly.
    let folder = std::path::PathBuf::from(format!("/tmp/sgprobe-demo-{pid}"));
    let reload = common::control_raw(
        std::path::Path::new("/run/sgprobe/demo.sock"),
        "POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let status = Command::new(env!("CARGO_BIN_EXE_sgprobe"))
        .args(["status", "--json", "--socket", "/run/sgprobe/demo.sock"])
        .output()
        .expect("runs");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON");
    assert_eq!(status["reload_ok"], true, "{status} after {reload}");
    let log = std::fs::read_to_string(folder.join("agent.log")).expect("the agent's log is kept");
    assert!(log.contains("config reloaded"), "{log}");

    kill(Pid::from_raw(pid as i32), Signal::SIGINT).expect("Ctrl-C to our own child");
    let status = demo.wait().expect("exits");
    assert_eq!(status.code(), Some(130));
    let namespaces = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip")
            .stdout,
    )
    .into_owned();
    assert!(!namespaces.contains(&format!("sgp-{pid}-")), "{namespaces}");
    assert!(!std::path::Path::new("/run/sgprobe/demo.sock").exists());
    assert!(!folder.exists(), "Ctrl-C removes the config and the log");
}

#[test]
fn a_missing_tool_is_named_with_its_package_before_anything_is_built() {
    if common::lab(&LabSpec::default()).is_none() {
        return;
    }
    // A PATH with `ip` and `sysctl` but no `nft`, as on a fresh machine.
    let dir = tempfile::tempdir().expect("temp dir");
    for tool in ["ip", "sysctl"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .expect("sh");
        let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
        std::os::unix::fs::symlink(&path, dir.path().join(tool)).expect("symlink");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sgprobe"))
        .arg("demo")
        .env("PATH", dir.path())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the lab needs `nft`, which is not installed: apt-get install nftables"),
        "{stderr}"
    );
}
