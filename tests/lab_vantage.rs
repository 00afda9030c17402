//! Two vantage points on one set of groups: an agent inside the "VPC" and one behind a NAT
//! router, which the targets see as another address. One rule allows only the VPC range, one
//! the world: each agent predicts for the source the groups see (its own address, or its
//! `seen_as`) and observes from it, and neither raises false drift.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sgprobe::lab::{LabSpec, Listen};
use sgprobe::model::Protocol;
use sgprobe::sources::native;

use common::{control_get as get, wait_for};

/// The NAT address: outside the VPC range, as a public egress address is.
const NAT: &str = "192.0.2.7";

const GROUPS: &str = r#"
[[group]]
id = "sg-web"
cloud = "tencent"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "22"
peer = "10.0.0.0/8"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "80"
peer = "0.0.0.0/0"

[[instance]]
name = "web"
addresses = ["10.77.1.10"]
security_groups = ["sg-web"]
ports = "tcp:22,tcp:80"
"#;

/// `sgprobe check web --ports tcp:22,80 --json` on an agent's socket: port -> row.
fn rows(socket: &Path) -> Vec<(u64, Value)> {
    let out = Command::new(env!("CARGO_BIN_EXE_sgprobe"))
        .args(["check", "web", "--ports", "tcp:22,80", "--json", "--socket"])
        .arg(socket)
        .output()
        .expect("runs");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("JSON, not: {}", String::from_utf8_lossy(&out.stderr));
    });
    let mut rows: Vec<(u64, Value)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r["port"].as_u64().expect("port"), r.clone()))
        .collect();
    rows.sort_by_key(|(port, _)| *port);
    rows
}

fn fields(row: &Value) -> (&str, &str, &str) {
    (
        row["predicted"].as_str().unwrap_or(""),
        row["observed"].as_str().unwrap_or(""),
        row["peer"].as_str().unwrap_or(""),
    )
}

#[test]
fn an_agent_inside_and_one_behind_nat_each_predict_for_their_own_source_without_false_drift() {
    let inventory = native::parse(Path::new("lab.toml"), GROUPS).expect("valid");
    let spec = LabSpec {
        inventory,
        listen: vec![Listen {
            instance: "web".into(),
            protocol: Protocol::Tcp,
            ports: vec![22, 80],
        }],
        nat: Some(NAT.parse().expect("address")),
        ..LabSpec::default()
    };
    let Some(lab) = common::lab(&spec) else {
        return;
    };
    let outside_ns = lab.behind_nat().expect("the lab has a NAT").name.clone();
    let (inside_dir, outside_dir) = (
        tempfile::tempdir().expect("temp dir"),
        tempfile::tempdir().expect("temp dir"),
    );
    let agent = "interval = \"1s\"\ntimeout = \"300ms\"\nretries = 1";
    let (inside_config, inside) = common::agent_config(
        inside_dir.path(),
        &format!("{agent}\nvantage = \"vpc-main\"\nmetrics_listen = \"127.0.0.1:19490\""),
        GROUPS,
    );
    // Its own address (10.75.0.2) is inside 10.0.0.0/8; the groups see the NAT address.
    let (outside_config, outside) = common::agent_config(
        outside_dir.path(),
        &format!(
            "{agent}\nvantage = \"internet-lab\"\nseen_as = [\"{NAT}\"]\nmetrics_listen = \"127.0.0.1:19494\""
        ),
        GROUPS,
    );
    let _agents = [
        common::start_agent(
            common::agent_command(&lab.prober().name, &inside_config, &[]),
            &inside,
        ),
        common::start_agent(
            common::agent_command(&outside_ns, &outside_config, &[]),
            &outside,
        ),
    ];
    for socket in [&inside, &outside] {
        wait_for("three cycles", Duration::from_secs(30), || {
            get(socket, "/v1/status")["cycles"].as_u64() >= Some(3)
        });
        let status = get(socket, "/v1/status");
        assert_eq!(status["drifting"], 0, "no false drift: {status}");
        assert_eq!(get(socket, "/v1/drift"), serde_json::json!([]));
    }

    let inside_rows = rows(&inside);
    assert_eq!(
        inside_rows
            .iter()
            .map(|(port, row)| (*port, fields(row)))
            .collect::<Vec<_>>(),
        [
            (22, ("open", "open", "10.76.0.1")),
            (80, ("open", "open", "10.76.0.1")),
        ],
        "inside the VPC range: both open"
    );
    let outside_rows = rows(&outside);
    assert_eq!(
        outside_rows
            .iter()
            .map(|(port, row)| (*port, fields(row)))
            .collect::<Vec<_>>(),
        [
            (22, ("closed", "filtered", NAT)),
            (80, ("open", "open", NAT)),
        ],
        "from the internet: only the world's rule"
    );

    // Everything the inside agent exports says where it probes from.
    let text = common::scrape(&lab, 19490, "/metrics");
    let samples: Vec<&str> = text.lines().filter(|l| l.starts_with("sgprobe_")).collect();
    assert!(!samples.is_empty(), "{text}");
    for line in samples {
        assert!(line.contains("vantage=\"vpc-main\""), "{line}");
    }
}
