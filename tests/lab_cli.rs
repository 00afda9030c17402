//! `sgprobe probe`, the built binary, run inside a lab's prober namespace.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sgprobe::lab::{LabSpec, Listen};
use sgprobe::model::Protocol;
use sgprobe::sources::native;

const LAB: &str = r#"
[[group]]
id = "sg-web"
cloud = "tencent"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "22,80"
peer = "all"
[[group.ingress]]
action = "accept"
protocol = "icmp"
peer = "0.0.0.0/0"
[[group.egress]]
action = "accept"
peer = "all"

[[instance]]
name = "web"
addresses = ["10.77.1.1", "10.77.1.2", "10.77.1.3"]
security_groups = ["sg-web"]
"#;

#[test]
fn probe_json_follows_the_contract_over_a_last_octet_range() {
    let inventory = native::parse(Path::new("lab.toml"), LAB).expect("valid");
    let spec = LabSpec {
        inventory,
        listen: vec![Listen {
            instance: "web".into(),
            protocol: Protocol::Tcp,
            ports: vec![80],
        }],
        ..LabSpec::default()
    };
    let Some(lab) = common::lab(&spec) else {
        return;
    };
    let output = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.prober().name,
            env!("CARGO_BIN_EXE_sgprobe"),
            "probe",
            "10.77.1.1-3",
            "--ports",
            "tcp:22,80,443,icmp",
            "--timeout",
            "300ms",
            "--retries",
            "1",
            "--json",
        ])
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 12, "3 addresses x 4 probes");
    for row in rows {
        let mut keys: Vec<&str> = row
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "address",
                "attempts",
                "evidence",
                "method",
                "port",
                "protocol",
                "reachable",
                "rtt_ms",
                "state"
            ]
        );
        // The groups open 22 and 80 (nothing listens on 22: RST), drop 443 by default, allow ping.
        let expected = match (row["protocol"].as_str(), row["port"].as_u64()) {
            (Some("tcp"), Some(22)) => ("closed", Value::Bool(true), "syn"),
            (Some("tcp"), Some(80)) => ("open", Value::Bool(true), "syn"),
            (Some("tcp"), Some(443)) => ("filtered", Value::Bool(false), "syn"),
            (Some("icmp"), None) => ("open", Value::Bool(true), "icmp"),
            other => panic!("unexpected row {other:?}"),
        };
        assert_eq!(
            (
                row["state"].as_str().expect("state"),
                row["reachable"].clone(),
                row["method"].as_str().expect("method")
            ),
            expected,
            "{row}"
        );
    }
}
