//! `sgprobe demo`, as a newcomer runs it: drift appears, Ctrl-C leaves nothing behind.

mod common;

use std::io::{BufRead, BufReader};
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
}
