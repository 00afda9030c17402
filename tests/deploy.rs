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

#[test]
fn the_kubernetes_manifests_validate_offline_and_keep_to_what_they_say() {
    if !common::tool("kubernetes-validate") {
        return;
    }
    let dir = root().join("deploy/kubernetes");
    let manifests = [
        "sgprobe.yaml",
        "sgprobe-restricted.yaml",
        "sgprobe-statefulset.yaml",
    ];
    for name in manifests {
        let output = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(dir.join(name))
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{name}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(dir.join(name)).expect("read");
        // A subPath mount never sees an edit of its ConfigMap: the agent's reload would wait
        // for a restart.
        assert!(!text.contains("subPath:"), "{name} mounts with subPath");
        assert!(
            text.contains("kind: Namespace"),
            "{name} names its namespace"
        );
        assert!(
            text.contains("kind: NetworkPolicy"),
            "{name} guards /metrics"
        );
        let objects = text.matches("\nkind: ").count() + usize::from(text.starts_with("kind: "));
        let namespaced = text.matches("\n  namespace: sgprobe\n").count();
        assert_eq!(
            namespaced + 1,
            objects,
            "{name}: every object but the Namespace in it"
        );
    }
    let restricted = std::fs::read_to_string(dir.join("sgprobe-restricted.yaml")).expect("read");
    for needed in [
        "pod-security.kubernetes.io/enforce: restricted",
        "runAsNonRoot: true",
        "drop: [ALL]",
        "net.ipv4.ping_group_range",
        "allowPrivilegeEscalation: false",
    ] {
        assert!(restricted.contains(needed), "restricted lacks {needed}");
    }
    // What Restricted forbids, in any spelling: read the manifest's lines, not its comments.
    let settings: Vec<&str> = restricted
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect();
    assert!(
        !settings.iter().any(|l| l.contains("NET_RAW")),
        "no NET_RAW"
    );
    assert!(
        !settings.iter().any(|l| l.contains("runAsUser: 0")),
        "not root"
    );
    assert!(
        !settings.iter().any(|l| l.contains("add:")),
        "no capability added"
    );
    assert!(
        settings
            .iter()
            .any(|l| l.contains("seccompProfile: {type: RuntimeDefault}")),
        "a seccomp profile"
    );
    let statefulset = std::fs::read_to_string(dir.join("sgprobe-statefulset.yaml")).expect("read");
    assert!(
        statefulset.contains("api = \"aws\"") && statefulset.contains("region = "),
        "the StatefulSet reads AWS through the SDK the image holds, in a region"
    );
}
