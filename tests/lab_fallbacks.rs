//! Without raw sockets, and with raw replies dropped on the prober host: the answers stay
//! right, the method says how they were got, and a warning says why.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sgprobe::engine::{Method, ProbeProtocol, Settings, Target, Warning};
use sgprobe::lab::{LabSpec, Listen};
use sgprobe::model::PortState;
use sgprobe::model::Protocol;
use sgprobe::sources::native;

const LAB: &str = r#"
[[group]]
id = "sg"
cloud = "aws"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "80-81"
peer = "all"
[[group.ingress]]
action = "accept"
protocol = "icmp"
peer = "all"
[[group.egress]]
action = "accept"
peer = "all"

[[instance]]
name = "web"
addresses = ["10.77.1.1"]
security_groups = ["sg"]
"#;

fn spec() -> LabSpec {
    let inventory = native::parse(Path::new("lab.toml"), LAB).expect("valid");
    LabSpec {
        inventory,
        listen: vec![Listen {
            instance: "web".into(),
            protocol: Protocol::Tcp,
            ports: vec![80],
        }],
        ..LabSpec::default()
    }
}

#[test]
fn without_cap_net_raw_tcp_uses_connect_and_says_so() {
    let Some(lab) = common::lab(&spec()) else {
        return;
    };
    // Root without CAP_NET_RAW: dropped from the bounding set, so the exec'd binary lacks it.
    let output = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.prober().name,
            "setpriv",
            "--bounding-set",
            "-net_raw",
            "--",
            env!("CARGO_BIN_EXE_sgprobe"),
        ])
        .args([
            "probe",
            "10.77.1.1",
            "--ports",
            "tcp:80,81,82,icmp",
            "--timeout",
            "300ms",
            "--retries",
            "1",
            "--json",
        ])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("no CAP_NET_RAW") && stderr.contains("setcap cap_net_raw+ep"),
        "the warning explains: {stderr}"
    );
    let rows: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let seen: Vec<(String, String, String)> = rows
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["port"].to_string(),
                r["state"].as_str().expect("state").into(),
                r["method"].as_str().expect("method").into(),
            )
        })
        .collect();
    let row = |port: &str, state: &str, method: &str| {
        (port.to_string(), state.to_string(), method.to_string())
    };
    assert_eq!(
        seen,
        [
            row("80", "open", "connect"),
            row("81", "closed", "connect"),
            row("82", "filtered", "connect"),
            row("null", "open", "icmp")
        ]
    );
}

#[test]
fn a_prober_firewall_dropping_raw_replies_is_detected_and_worked_around() {
    let Some(lab) = common::lab(&spec()) else {
        return;
    };
    // A host firewall that admits replies only to Linux's own ephemeral ports.
    let ruleset = "table inet hostfw {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    tcp dport 61001-65535 drop\n  }\n}\n";
    lab.prober()
        .exec("nft", &["-f", "-"], Some(ruleset))
        .expect("prober firewall");
    let target = |port| Target {
        addr: "10.77.1.1".parse().expect("address"),
        protocol: ProbeProtocol::Tcp,
        port: Some(port),
    };
    let settings = Settings {
        timeout: Duration::from_millis(300),
        retries: 1,
        ..Settings::default()
    };
    let report = common::probe_in(&lab, settings, vec![target(80), target(81), target(82)]);
    assert_eq!(report.warnings, [Warning::RawRepliesDropped]);
    let seen: Vec<(PortState, Method)> = report
        .observations
        .iter()
        .map(|o| (o.state, o.method))
        .collect();
    assert_eq!(
        seen,
        [
            (PortState::Open, Method::Connect),
            (PortState::Closed, Method::Connect),
            (PortState::Filtered, Method::Connect)
        ]
    );
}

#[test]
fn an_agent_run_as_nobody_checks_tcp_by_connect_and_reads_icmp_unknown() {
    let Some(lab) = common::lab(&spec()) else {
        return;
    };
    // A user with no capability, in a namespace whose ping_group_range grants no group (the
    // default in a new network namespace, as in a pod): no raw socket, no ICMP socket.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let (config, socket) = common::agent_config(
        dir.path(),
        "interval = \"1s\"\ntimeout = \"300ms\"\nretries = 1\nmetrics_listen = \"127.0.0.1:19497\"",
        &format!("{LAB}ports = \"icmp\"\n"),
    );
    let log = dir.path().join("agent.log");
    Command::new("ip")
        .args(["netns", "exec", &lab.prober().name])
        .args(["sysctl", "-q", "-w", "net.ipv4.ping_group_range=1 0"])
        .status()
        .expect("sysctl runs");
    let mut command = common::agent_command(
        &lab.prober().name,
        &config,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ],
    );
    command.stderr(std::fs::File::create(&log).expect("log file"));
    let mut agent = common::start_agent(command, &socket);
    let metrics = || common::scrape(&lab, 19_497, "/metrics");
    common::wait_for("two cycles", Duration::from_secs(30), || {
        common::control_get(&socket, "/v1/status")["cycles"].as_u64() >= Some(2)
    });
    let text = metrics();
    let value = |series: &str| {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no {series} in {text}"))
            .to_string()
    };
    let flow = |protocol: &str, port: &str| {
        format!(
            "sgprobe_flow_observed_state{{address=\"10.77.1.1\",cloud_instance=\"web\",direction=\"inbound\",port=\"{port}\",protocol=\"{protocol}\"}}"
        )
    };
    assert_eq!(value(&flow("tcp", "80")), "1", "TCP by connect(): open");
    assert_eq!(value(&flow("icmp", "")), "4", "ICMP not probed: unknown");
    assert_eq!(value("sgprobe_raw_sockets_available"), "0");
    assert_eq!(value("sgprobe_cycle_errors_total"), "0", "the cycles go on");
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    let said = std::fs::read_to_string(&log).expect("the log");
    assert!(said.contains("net.ipv4.ping_group_range"), "{said}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.0[0].id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal our child");
    assert!(common::wait_exit(&mut agent.0[0], Duration::from_secs(30)).success());
    agent.0.clear();
}
