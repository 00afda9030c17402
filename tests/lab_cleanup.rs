//! No namespace outlives its lab: not on a panic, not on Ctrl-C (SIGINT).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sgprobe::lab::LabSpec;
use sgprobe::sources::native;

const LAB: &str = r#"
[[group]]
id = "sg"
cloud = "aws"
[[instance]]
name = "a"
addresses = ["10.77.1.1"]
security_groups = ["sg"]
"#;

fn namespaces() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip runs")
            .stdout,
    )
    .into_owned()
}

/// Runs in a child process: builds a lab, says which namespaces it made, then panics or
/// waits to be interrupted.
#[test]
#[ignore = "a helper: the tests below run it in a child process"]
fn child_builds_a_lab_then_ends_as_told() {
    let inventory = native::parse(Path::new("lab.toml"), LAB).expect("valid");
    let lab = common::lab(&LabSpec {
        inventory,
        ..LabSpec::default()
    })
    .expect("root");
    println!("READY {}", lab.prober().name);
    if std::env::var("SGPROBE_CHILD").as_deref() == Ok("panic") {
        panic!("on purpose");
    }
    std::thread::sleep(std::time::Duration::from_secs(30));
}

/// Starts the helper, returns its prober namespace name once the lab is up.
fn child(how: &str) -> (std::process::Child, String) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_builds_a_lab_then_ends_as_told",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("SGPROBE_CHILD", how)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("piped");
    let name = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.split("READY ").nth(1).map(|n| n.trim().to_string()))
        .expect("the child reports its lab");
    assert!(
        namespaces().contains(&name),
        "the lab exists while the child runs"
    );
    (child, name)
}

#[test]
fn an_interrupted_process_removes_its_namespaces() {
    if common::lab(&LabSpec::default()).is_none() {
        return;
    }
    let (mut child, name) = child("interrupt");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("signal our own child");
    let status = child.wait().expect("exits");
    assert_eq!(status.code(), Some(130));
    let prefix = name.trim_end_matches("-p");
    assert!(
        !namespaces().contains(prefix),
        "no namespace of {prefix} is left: {}",
        namespaces()
    );
}

#[test]
fn a_panicking_test_removes_its_namespaces() {
    if common::lab(&LabSpec::default()).is_none() {
        return;
    }
    let (mut child, name) = child("panic");
    let status = child.wait().expect("exits");
    assert!(!status.success(), "the helper panicked");
    let prefix = name.trim_end_matches("-p");
    assert!(
        !namespaces().contains(prefix),
        "no namespace of {prefix} is left: {}",
        namespaces()
    );
}
