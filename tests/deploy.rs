//! What deploy/ and systemd/ ship: the unit's exposure, the alert rules and their tests. (The
//! dashboard's queries are checked against a running agent's /metrics in `lab_daemon`.)

mod common;

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_systemd_unit_is_exposed_at_most_2_0() {
    if !common::tool("systemd-analyze") {
        return;
    }
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(root().join("systemd/sgprobe.service"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for sgprobe.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{text}");
}

#[test]
fn the_alert_rules_load_and_their_tests_pass() {
    if !common::tool("promtool") {
        return;
    }
    let dir = root().join("deploy/prometheus");
    for args in [
        &["check", "rules", "sgprobe-alerts.yml"][..],
        &["test", "rules", "sgprobe-alerts.test.yml"][..],
        &["check", "config", "prometheus.yml"][..],
        &["check", "config", "prometheus-kubernetes.yml"][..],
    ] {
        let output = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
