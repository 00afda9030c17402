//! End to end, nothing mocked: lab + agent + a real Prometheus with the shipped alert rules +
//! a real Alertmanager delivering to a webhook receiver inside this test. A hand-added rule
//! opens a port the groups close: the exposed alert must fire, and resolve once reverted.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sgprobe::lab::{Lab, LabSpec, Listen};
use sgprobe::model::Protocol;
use sgprobe::sources::native;

const GROUPS: &str = r#"
[[group]]
id = "sg-web"
cloud = "tencent"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "80"
peer = "0.0.0.0/0"
[[group.egress]]
action = "accept"
peer = "all"

[[instance]]
name = "web"
addresses = ["10.77.1.10"]
security_groups = ["sg-web"]
ports = "tcp:8080,8081"
"#;

fn spawn(lab: &Lab, program: &str, args: &[String]) -> std::process::Child {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    common::spawn_in(&lab.prober().name, program, &args)
}

/// The webhook receiver: an HTTP listener inside the prober namespace that forwards each
/// notification's (status, alertname, cloud instance), its summary and its labels to the
/// test.
fn webhook(lab: &Lab, port: u16) -> mpsc::Receiver<Notified> {
    let listener = lab
        .in_prober(move || TcpListener::bind(("127.0.0.1", port)))
        .expect("runs")
        .expect("the webhook listens");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
                continue;
            };
            for alert in payload["alerts"].as_array().into_iter().flatten() {
                let field = |v: &Value| v.as_str().unwrap_or("").to_string();
                let _ = tx.send((
                    (
                        field(&alert["status"]),
                        field(&alert["labels"]["alertname"]),
                        field(&alert["labels"]["cloud_instance"]),
                    ),
                    field(&alert["annotations"]["summary"]),
                    alert["labels"].clone(),
                ));
            }
        }
    });
    rx
}

/// One alert of a notification: (status, alertname, cloud instance), summary, labels.
type Notified = ((String, String, String), String, Value);

/// How long until the notification `wanted` came, its summary and its labels.
fn await_notification(
    rx: &mpsc::Receiver<Notified>,
    wanted: (&str, &str, &str),
    limit: Duration,
) -> (Duration, String, Value) {
    let start = Instant::now();
    loop {
        let left = limit
            .checked_sub(start.elapsed())
            .unwrap_or_else(|| panic!("no {wanted:?} notification within {limit:?}"));
        let ((status, name, instance), summary, labels) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {wanted:?} notification within {limit:?}"));
        if (status.as_str(), name.as_str(), instance.as_str()) == wanted {
            return (start.elapsed(), summary, labels);
        }
    }
}

#[test]
fn an_exposed_port_fires_the_alert_through_prometheus_and_alertmanager_and_resolves() {
    if !common::tool("prometheus") || !common::tool("prometheus-alertmanager") {
        return;
    }
    let inventory = native::parse(Path::new("lab.toml"), GROUPS).expect("valid");
    let spec = LabSpec {
        inventory,
        listen: vec![Listen {
            instance: "web".into(),
            protocol: Protocol::Tcp,
            ports: vec![80, 8080, 8081],
        }],
        ..LabSpec::default()
    };
    let Some(lab) = common::lab(&spec) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/sgprobe-alerts.yml");

    // 1s here; SGPROBE_E2E_INTERVAL=60s measures the time to a page at a production interval.
    let interval = std::env::var("SGPROBE_E2E_INTERVAL").unwrap_or_else(|_| "1s".into());
    let cycle = humantime::parse_duration(&interval).expect("SGPROBE_E2E_INTERVAL: a duration");
    let limit = Duration::from_secs(60) + 3 * cycle;
    std::fs::write(
        path("sgprobe.toml"),
        format!("[agent]\ninterval = \"{interval}\"\nmetrics_listen = \"127.0.0.1:19478\"\ncontrol_socket = \"{}\"\ntimeout = \"300ms\"\nretries = 1\n{GROUPS}", path("sgprobe.sock")),
    )
    .expect("write");
    std::fs::write(
        path("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [\"{}\"]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:19093\"]\nscrape_configs:\n  - job_name: sgprobe\n    static_configs:\n      - targets: [\"127.0.0.1:19478\"]\n",
            rules.display()
        ),
    )
    .expect("write");
    std::fs::write(
        path("alertmanager.yml"),
        "route:\n  receiver: test\n  group_by: [alertname, cloud_instance]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: http://127.0.0.1:19099/hook\n        send_resolved: true\n",
    )
    .expect("write");

    let notifications = webhook(&lab, 19099);
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let _agent = common::start_agent(
        common::agent_command(&lab.prober().name, Path::new(&path("sgprobe.toml")), &[]),
        Path::new(&path("sgprobe.sock")),
    );
    let _started = common::Started(vec![
        spawn(
            &lab,
            "prometheus-alertmanager",
            &s(&[
                "--config.file",
                &path("alertmanager.yml"),
                "--storage.path",
                &path("am"),
                "--web.listen-address",
                "127.0.0.1:19093",
                "--cluster.listen-address=",
            ]),
        ),
        spawn(
            &lab,
            "prometheus",
            &s(&[
                "--config.file",
                &path("prometheus.yml"),
                "--storage.tsdb.path",
                &path("tsdb"),
                "--web.listen-address",
                "127.0.0.1:19090",
            ]),
        ),
    ]);
    // A quiet start: the groups and the lab agree, so nothing may fire.
    std::thread::sleep(Duration::from_secs(8));
    let early: Vec<_> = notifications.try_iter().collect();
    assert!(
        early.is_empty(),
        "nothing fires while all is well: {early:?}"
    );

    // Two ports opened by hand on one instance: one page, naming the cloud instance (a plain
    // scrape job: Prometheus owns `instance`, which names the agent).
    lab.expose("web", Protocol::Tcp, 8080)
        .expect("a rule added by hand");
    lab.expose("web", Protocol::Tcp, 8081)
        .expect("a rule added by hand");
    let (fired, summary, labels) = await_notification(
        &notifications,
        ("firing", "SgprobeFlowExposed", "web"),
        limit,
    );
    assert!(
        summary.starts_with("web: ")
            && summary.contains("answer though its security groups say closed"),
        "{summary}"
    );
    assert!(
        !summary.contains("127.0.0.1"),
        "the agent's address is not the instance: {summary}"
    );
    // A page per instance carries no flow: one per port would carry its port. It says why:
    // the instance answers itself, so a rule was added by hand.
    assert!(labels.get("port").is_none(), "{labels}");
    assert_eq!(labels["cause"], "unlisted-rule", "{labels}");
    eprintln!(
        "rule change to firing alert at the webhook: {:.1} s",
        fired.as_secs_f64()
    );

    lab.unexpose("web").expect("reverted");
    let (resolved, _, _) = await_notification(
        &notifications,
        ("resolved", "SgprobeFlowExposed", "web"),
        limit,
    );
    let pages: Vec<_> = notifications
        .try_iter()
        .filter(|((status, name, _), _, _)| status == "firing" && name == "SgprobeFlowExposed")
        .collect();
    assert!(
        pages.is_empty(),
        "one page for the instance, not one per port: {pages:?}"
    );
    eprintln!(
        "revert to resolved notification: {:.1} s",
        resolved.as_secs_f64()
    );
}
