//! One group the agent cannot read never blinds it: the rest of the export loads, drift on
//! the other groups' instances is confirmed, the flows that depend on the unreadable rule are
//! `unknown` (never drift), and the log and a metric name the source, group and field.

mod common;

use std::time::Duration;

use serde_json::Value;
use sgprobe::config::Config;
use sgprobe::lab::{LabSpec, Listen};
use sgprobe::model::Protocol;
use sgprobe::sources::Reading;

use common::{control_get as get, wait_for};

/// describe-security-groups with one permission a newer EC2 might print: a protocol name
/// sgprobe does not know.
const GROUPS: &str = r#"{"SecurityGroups": [
  {"GroupId": "sg-good", "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], "IpPermissionsEgress": []},
  {"GroupId": "sg-bad", "IpPermissions": [
     {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
     {"IpProtocol": "tcp-ao", "FromPort": 179, "ToPort": 179, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], "IpPermissionsEgress": []}
]}"#;

const INSTANCES: &str = r#"
[[source]]
name = "ec2"
format = "aws"
path = "sgs.json"

[[instance]]
name = "good"
addresses = ["10.77.1.10"]
security_groups = ["sg-good"]
ports = "tcp:8080"

[[instance]]
name = "bad"
addresses = ["10.77.1.11"]
security_groups = ["sg-bad"]
ports = "tcp:8080"
"#;

const FIELD: &str = "$.SecurityGroups[1].IpPermissions[1].IpProtocol";

#[test]
fn one_unreadable_group_leaves_the_other_groups_drift_detection_working() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("sgs.json"), GROUPS).expect("write the export");
    let port = 19491;
    let (config, socket) = common::agent_config(
        dir.path(),
        &format!(
            "interval = \"1s\"\nmetrics_listen = \"127.0.0.1:{port}\"\ntimeout = \"300ms\"\nretries = 1\nconfirm_cycles = 2"
        ),
        INSTANCES,
    );
    // What eval and lint do by default: refuse, naming the file, the field and the flag.
    let strict = Config::load(&config, Reading::Strict)
        .expect_err("strict reading refuses")
        .to_string();
    assert!(
        strict.contains("sgs.json") && strict.contains(FIELD) && strict.contains("--keep-going"),
        "{strict}"
    );
    let read = Config::load(&config, Reading::KeepGoing).expect("the rest reads");
    let Some(lab) = common::lab(&LabSpec {
        inventory: read.inventory,
        listen: ["good", "bad"]
            .into_iter()
            .map(|instance| Listen {
                instance: instance.into(),
                protocol: Protocol::Tcp,
                ports: vec![22, 80, 8080],
            })
            .collect(),
        ..LabSpec::default()
    }) else {
        return;
    };
    // A rule added by hand on each instance: on `good` the groups say closed (drift); on
    // `bad` the unreadable rule might allow it, so the verdict is unknown (no drift).
    for instance in ["good", "bad"] {
        lab.expose(instance, Protocol::Tcp, 8080)
            .expect("a rule added by hand");
    }
    let log = dir.path().join("agent.log");
    let mut command = common::agent_command(&lab.prober().name, &config, &[]);
    command.stderr(std::fs::File::create(&log).expect("log file"));
    let _agent = common::start_agent(command, &socket);
    wait_for(
        "confirmed drift on the readable group",
        Duration::from_secs(30),
        || {
            get(&socket, "/v1/drift")
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    );
    wait_for("two more cycles", Duration::from_secs(20), || {
        get(&socket, "/v1/status")["cycles"].as_u64() >= Some(4)
    });
    let drift: Vec<(String, u64, String)> = get(&socket, "/v1/drift")
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["instance"].as_str().expect("instance").to_string(),
                r["port"].as_u64().expect("port"),
                r["drift"].as_str().expect("drift").to_string(),
            )
        })
        .collect();
    assert_eq!(drift, [("good".to_string(), 8080, "exposed".to_string())]);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sgprobe"))
        .args([
            "check",
            "bad",
            "--ports",
            "tcp:80,tcp:8080",
            "--json",
            "--socket",
        ])
        .arg(&socket)
        .output()
        .expect("check runs");
    let rows: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let row = |port: u64| {
        rows.as_array()
            .expect("array")
            .iter()
            .find(|r| r["port"].as_u64() == Some(port))
            .cloned()
            .unwrap_or_else(|| panic!("port {port} in {rows}"))
    };
    assert_eq!(
        (row(80)["predicted"].as_str(), row(80)["observed"].as_str()),
        (Some("open"), Some("open")),
        "a readable rule of the bad group still decides: {rows}"
    );
    let unknown = row(8080);
    assert_eq!(
        (
            unknown["predicted"].as_str(),
            unknown["observed"].as_str(),
            unknown["drift"].as_str()
        ),
        (Some("unknown"), Some("open"), Some("inconclusive")),
        "{rows}"
    );
    assert_eq!(unknown["rule"]["group"].as_str(), Some("sg-bad"), "{rows}");

    let metrics = common::scrape(&lab, port, "/metrics");
    let series = metrics
        .lines()
        .find(|l| l.starts_with("sgprobe_source_unreadable{"))
        .unwrap_or_else(|| panic!("no unreadable series in\n{metrics}"));
    for label in [
        "source=\"ec2\"".to_string(),
        "group=\"sg-bad\"".to_string(),
        format!("field=\"{FIELD}\""),
    ] {
        assert!(series.contains(&label), "{label} in {series}");
    }
    assert!(series.ends_with(" 1"), "{series}");
    assert!(
        metrics.contains("sgprobe_source_up{source=\"ec2\"} 1"),
        "the source loaded"
    );
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains("cannot be read") && logged.contains("sg-bad") && logged.contains(FIELD),
        "{logged}"
    );
}
