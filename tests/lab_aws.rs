//! AWS end to end: a real AWS API implementation (moto's server) and the real AWS CLI, both
//! inside the lab's prober namespace. The agent reads groups and instances with command
//! sources; the lab is the instances' network. (a) A rule change in moto and in the lab
//! together never confirms drift; (b) a host firewall in the lab alone is confirmed within K
//! cycles; (c) moto stopped: the agent keeps its last good rules with sgprobe_source_up 0,
//! and recovers when moto returns.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sgprobe::lab::{Lab, LabSpec, Listen};
use sgprobe::model::{Direction, Protocol};
use sgprobe::sources::native;

const MOTO_PORT: u16 = 15000;
const METRICS_PORT: u16 = 19480;

/// The lab mirrors what is created in moto: one instance at 10.77.1.10 in a group that
/// opens TCP 22.
const LAB: &str = r#"
[[group]]
id = "sg-lab"
cloud = "aws"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "22"
peer = "0.0.0.0/0"
[[group.egress]]
action = "accept"
peer = "all"

[[instance]]
name = "web"
addresses = ["10.77.1.10"]
security_groups = ["sg-lab"]
"#;

const CREDENTIALS: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    // No instance metadata lookups: the namespace has no route anywhere.
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// `aws ec2 ARGS` against moto, inside the prober namespace; its stdout.
fn aws(ns: &str, args: &[&str]) -> String {
    let endpoint = format!("http://127.0.0.1:{MOTO_PORT}");
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "aws",
            "--endpoint-url",
            &endpoint,
            "ec2",
        ])
        .args(args)
        .envs(CREDENTIALS)
        .output()
        .expect("aws runs");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_string()
}

use common::{control_get as get, wait_for};

fn metrics(lab: &Lab) -> String {
    common::scrape(lab, METRICS_PORT, "/metrics")
}

/// The ports of the confirmed drift, with its kind.
fn drift(socket: &Path) -> Vec<(u64, String)> {
    let mut rows: Vec<(u64, String)> = get(socket, "/v1/drift")
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["port"].as_u64().unwrap_or(0),
                r["drift"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// The lines of the metrics that show a source's health and the TCP 80 flow.
fn watched(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            (l.starts_with("sgprobe_source_up") || l.starts_with("sgprobe_source_rules"))
                || (l.contains("port=\"80\"")
                    && (l.starts_with("sgprobe_flow_drift")
                        || l.starts_with("sgprobe_flow_predicted_open")))
        })
        .map(str::to_string)
        .collect()
}

/// Reads groups and instances with the AWS CLI: two command sources.
fn cli_sources(endpoint: &str) -> String {
    let command =
        |what: &str| format!("[\"aws\", \"--endpoint-url\", \"{endpoint}\", \"ec2\", \"{what}\"]");
    // A refresh longer than K cycles: only the fetch before confirming keeps (a) quiet.
    format!(
        "[[source]]\nname = \"aws-groups\"\nformat = \"aws\"\ncommand = {}\nrefresh = \"20s\"\ntimeout = \"3s\"\n\n[[source]]\nname = \"aws-instances\"\nformat = \"aws\"\ncommand = {}\nrefresh = \"20s\"\ntimeout = \"3s\"\n",
        command("describe-security-groups"),
        command("describe-instances")
    )
}

#[test]
fn rules_read_with_the_aws_cli_follow_changes_without_false_drift() {
    scenario(&["aws-groups", "aws-instances"], cli_sources);
}

/// Reads everything with the SDK: one api source.
#[cfg(feature = "aws-api")]
#[test]
fn rules_read_with_the_aws_sdk_follow_changes_without_false_drift() {
    scenario(&["aws-ec2"], |endpoint| {
        format!(
            "[[source]]\nname = \"aws-ec2\"\napi = \"aws\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\nrefresh = \"20s\"\ntimeout = \"5s\"\n"
        )
    });
}

/// The scenario, with the agent's sources written by `sources` for moto's endpoint; `names`
/// are the sources' names, as metrics label them.
fn scenario(names: &[&str], sources: impl Fn(&str) -> String) {
    if !common::tool("moto_server") || !common::tool("aws") {
        return;
    }
    let inventory = native::parse(Path::new("lab.toml"), LAB).expect("valid");
    let spec = LabSpec {
        inventory,
        listen: vec![Listen {
            instance: "web".into(),
            protocol: Protocol::Tcp,
            ports: vec![22, 80],
        }],
        ..LabSpec::default()
    };
    let Some(lab) = common::lab(&spec) else {
        return;
    };
    let ns = lab.prober().name.clone();
    lab.prober()
        .ip(&["link", "set", "lo", "up"])
        .expect("loopback up");
    let moto = common::spawn_in(
        &ns,
        "moto_server",
        &[
            "-H".as_ref(),
            "127.0.0.1".as_ref(),
            "-p".as_ref(),
            MOTO_PORT.to_string().as_ref(),
        ],
    );
    let moto_pid = Pid::from_raw(moto.id() as i32);
    let started = common::Started(vec![moto]);
    wait_for("moto", Duration::from_secs(30), || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "aws",
                "--endpoint-url",
                &format!("http://127.0.0.1:{MOTO_PORT}"),
                "ec2",
                "describe-regions",
            ])
            .envs(CREDENTIALS)
            .output()
            .is_ok_and(|o| o.status.success())
    });

    // The account: a VPC, a subnet, a group opening TCP 22, an instance at 10.77.1.10.
    let vpc = aws(
        &ns,
        &[
            "create-vpc",
            "--cidr-block",
            "10.77.0.0/16",
            "--query",
            "Vpc.VpcId",
            "--output",
            "text",
        ],
    );
    let subnet = aws(
        &ns,
        &[
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            "10.77.1.0/24",
            "--query",
            "Subnet.SubnetId",
            "--output",
            "text",
        ],
    );
    let group = aws(
        &ns,
        &[
            "create-security-group",
            "--group-name",
            "web",
            "--description",
            "web",
            "--vpc-id",
            &vpc,
            "--query",
            "GroupId",
            "--output",
            "text",
        ],
    );
    aws(
        &ns,
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &group,
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "0.0.0.0/0",
        ],
    );
    let image = aws(
        &ns,
        &[
            "describe-images",
            "--query",
            "Images[0].ImageId",
            "--output",
            "text",
        ],
    );
    aws(
        &ns,
        &[
            "run-instances",
            "--image-id",
            &image,
            "--count",
            "1",
            "--subnet-id",
            &subnet,
            "--security-group-ids",
            &group,
            "--private-ip-address",
            "10.77.1.10",
            "--tag-specifications",
            "ResourceType=instance,Tags=[{Key=Name,Value=web}]",
        ],
    );
    // The agent probes every address it discovers: it must find the lab's, and no other.
    let public = aws(
        &ns,
        &[
            "describe-instances",
            "--query",
            "Reservations[].Instances[].PublicIpAddress",
            "--output",
            "text",
        ],
    );
    assert!(
        public.is_empty() || public == "None",
        "a public address to probe: {public}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let sources = sources(&format!("http://127.0.0.1:{MOTO_PORT}"));
    let (config, socket) = common::agent_config(
        dir.path(),
        &format!(
            "interval = \"1s\"\ntimeout = \"300ms\"\nretries = 1\nconfirm_cycles = 2\nmetrics_listen = \"127.0.0.1:{METRICS_PORT}\""
        ),
        &sources,
    );
    let mut command = common::agent_command(&ns, &config, &[]);
    command.envs(CREDENTIALS.iter().copied());
    // The socket comes after the first load, which waits on moto (Python, slow to answer its
    // first requests on a loaded two-core machine).
    let _agent = common::start_agent(command, &socket);
    wait_for("three cycles", Duration::from_secs(30), || {
        get(&socket, "/v1/status")["cycles"].as_u64() >= Some(3)
    });
    assert_eq!(
        get(&socket, "/v1/status")["instances"],
        1,
        "web, from describe-instances"
    );
    assert_eq!(drift(&socket), [], "the lab and moto agree");

    // (a) A legitimate change: 80 (planned from the start, a common port) opened in moto
    // and in the lab at once.
    let before = watched(&metrics(&lab));
    aws(
        &ns,
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &group,
            "--protocol",
            "tcp",
            "--port",
            "80",
            "--cidr",
            "0.0.0.0/0",
        ],
    );
    lab.expose("web", Protocol::Tcp, 80)
        .expect("the lab opens 80");
    let changed = Instant::now();
    let mut timeline = Vec::new();
    while changed.elapsed() < Duration::from_secs(8) {
        let rows = drift(&socket);
        assert!(
            !rows.iter().any(|(port, _)| *port == 80),
            "a legitimate rule change confirmed drift: {rows:?}"
        );
        timeline.push((changed.elapsed().as_millis(), watched(&metrics(&lab))));
        std::thread::sleep(Duration::from_millis(500));
    }
    let after = watched(&metrics(&lab));
    eprintln!("(a) before the change: {before:?}");
    for (ms, lines) in timeline.iter().step_by(4) {
        eprintln!("(a) +{ms} ms: {lines:?}");
    }
    assert!(
        after
            .iter()
            .any(|l| l.starts_with("sgprobe_flow_predicted_open") && l.ends_with(" 1")),
        "the agent now predicts 80 open: {after:?}"
    );

    // (b) Reality alone changes: a host firewall drops 22. Confirmed within K cycles (plus
    // the fetch that makes sure the rules still say open).
    lab.manual("web", Direction::Inbound, Protocol::Tcp, 22, "drop")
        .expect("a host firewall");
    wait_for("the blocked drift on 22", Duration::from_secs(15), || {
        drift(&socket).contains(&(22, "blocked".to_string()))
    });

    // (c) The API stops answering: the last good rules stand, the sources read down, and
    // come back up when it returns.
    kill(moto_pid, Signal::SIGSTOP).expect("pause our moto");
    wait_for("the sources to read down", Duration::from_secs(30), || {
        let text = metrics(&lab);
        names
            .iter()
            .all(|n| text.contains(&format!("sgprobe_source_up{{source=\"{n}\"}} 0")))
    });
    // Each says why, in one word of the metric's vocabulary.
    let text = metrics(&lab);
    for n in names {
        let reasons: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("sgprobe_source_failure{")
                    && l.contains(&format!("source=\"{n}\"}} 1"))
            })
            .collect();
        assert_eq!(reasons.len(), 1, "{n}: {reasons:?}");
    }
    assert_eq!(
        get(&socket, "/v1/status")["instances"],
        1,
        "the last good rules stand"
    );
    assert!(drift(&socket).contains(&(22, "blocked".to_string())));
    kill(moto_pid, Signal::SIGCONT).expect("resume our moto");
    wait_for("the sources to recover", Duration::from_secs(30), || {
        let text = metrics(&lab);
        names
            .iter()
            .all(|n| text.contains(&format!("sgprobe_source_up{{source=\"{n}\"}} 1")))
    });
    assert!(
        !metrics(&lab).contains("sgprobe_source_failure{"),
        "recovered sources leave no failure"
    );
    drop(started);
}
