//! The built binary, run as a user would: contracts, errors, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn sgprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sgprobe"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

#[test]
fn eval_json_names_the_deciding_rule_with_exactly_the_contract_fields() {
    let config = fixture("tencent/sgprobe.toml");
    let out = sgprobe(&[
        "eval",
        "-c",
        config.to_str().expect("utf-8"),
        "--instance",
        "web-1",
        "--from",
        "198.51.100.5",
        "--ports",
        "tcp:22",
        "--json",
    ]);
    let rows = json(&out);
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 1, "web-1 has one IPv4 address");
    let row = rows[0].as_object().expect("an object");
    let mut keys: Vec<&str> = row.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "address",
            "direction",
            "instance",
            "peer",
            "port",
            "predicted",
            "protocol",
            "rule"
        ]
    );
    assert_eq!(row["instance"], "web-1");
    assert_eq!(row["address"], "10.0.0.10");
    assert_eq!(row["direction"], "inbound");
    assert_eq!(row["protocol"], "tcp");
    assert_eq!(row["port"], 22);
    assert_eq!(row["peer"], "198.51.100.5");
    assert_eq!(row["predicted"], "closed");
    assert_eq!(row["rule"]["group"], "sg-aaaaaaaa");
    assert_eq!(row["rule"]["index"], 0);
    assert_eq!(row["rule"]["action"], "drop");
    assert_eq!(row["rule"]["description"], "block a bad network");
}

#[test]
fn eval_without_ports_checks_the_console_common_ports_and_the_instance_extras() {
    let config = fixture("../../deploy/example/sgprobe.toml");
    let out = sgprobe(&[
        "eval",
        "-c",
        config.to_str().expect("utf-8"),
        "-i",
        "db-1",
        "--json",
    ]);
    let rows = json(&out);
    let mut flows: Vec<(String, String, Option<u64>)> = rows
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| {
            (
                r["direction"].as_str().expect("s").to_string(),
                r["protocol"].as_str().expect("s").to_string(),
                r["port"].as_u64(),
            )
        })
        .collect();
    flows.sort();
    let inbound = |p: &str, port: Option<u64>| ("inbound".to_string(), p.to_string(), port);
    let mut expected = vec![
        inbound("icmp", None),
        inbound("tcp", Some(20)),
        inbound("tcp", Some(21)),
        inbound("tcp", Some(22)),
        inbound("tcp", Some(80)),
        inbound("tcp", Some(443)),
        inbound("tcp", Some(3389)),
        ("outbound".to_string(), "all".to_string(), None),
        inbound("tcp", Some(3306)),
    ];
    expected.sort();
    assert_eq!(flows, expected);

    let table = sgprobe(&["eval", "-c", config.to_str().expect("utf-8"), "-i", "db-1"]);
    let text = String::from_utf8_lossy(&table.stdout);
    for word in [
        "PREDICTED",
        "TCP:22 (SSH)",
        "denied",
        "partial",
        "allowed",
        "ALL",
    ] {
        assert!(text.contains(word), "table shows {word:?}:\n{text}");
    }
    let fix = "tccli vpc CreateSecurityGroupPolicies --SecurityGroupId sg-5fh3tpmo";
    assert!(!text.contains(fix), "remedies only when asked:\n{text}");
    // Asked for, for one peer: the rule to add, for that peer alone.
    let config = config.to_str().expect("utf-8");
    let asked = sgprobe(&[
        "eval",
        "-c",
        config,
        "-i",
        "db-1",
        "--remedy",
        "--peer",
        "203.0.113.9",
    ]);
    let text = String::from_utf8_lossy(&asked.stdout);
    assert!(text.contains(fix), "a denied port gets its fix:\n{text}");
    assert!(text.contains("203.0.113.9"), "{text}");
    assert!(
        !text.contains("0.0.0.0/0 --"),
        "never wider than the peer:\n{text}"
    );
    // For every peer, no rule: it says what to give instead.
    let everyone = sgprobe(&["eval", "-c", config, "-i", "db-1", "--remedy"]);
    let text = String::from_utf8_lossy(&everyone.stdout);
    assert!(
        !text.contains(fix) && text.contains("give --peer ADDR"),
        "{text}"
    );
}

/// Broken inputs: exit 2, one line on stderr naming the file and the place, no panic.
#[test]
fn broken_inputs_give_one_clear_line_and_exit_2() {
    let cases: &[(&str, &[&str])] = &[
        (
            "broken/truncated-json.toml",
            &["truncated.json:3:", "not valid JSON"],
        ),
        (
            "broken/bad-port.toml",
            &[
                "bad-port.json: $.SecurityGroupPolicySet.Ingress[1].Port",
                "\"80-70000\"",
            ],
        ),
        (
            "broken/unknown-key.toml",
            &["unknown-key.toml:7:", "unknown field `security_group`"],
        ),
        (
            "broken/unknown-group.toml",
            &["unknown-group.toml:8", "\"sg-missing\""],
        ),
        (
            "broken/bad-cidr.toml",
            &["bad-cidr.toml:8:8:", "10.0.0.300/8"],
        ),
        ("broken/missing-id.toml", &["bad-port.json: $", "id"]),
        (
            "broken/bad-interval.toml",
            &["bad-interval.toml:2:", "agent.interval"],
        ),
        (
            "broken/does-not-exist.toml",
            &["does-not-exist.toml", "cannot read"],
        ),
    ];
    for (config, needles) in cases {
        let out = sgprobe(&["eval", "-c", fixture(config).to_str().expect("utf-8")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{config}: one line: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{config}: {stderr}");
        for needle in *needles {
            assert!(stderr.contains(needle), "{config}: {needle:?} in {stderr}");
        }
    }
}

#[test]
fn unknown_instance_and_bad_arguments_exit_2() {
    let config = fixture("tencent/sgprobe.toml");
    let config = config.to_str().expect("utf-8");
    let out = sgprobe(&["eval", "-c", config, "-i", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("known: web-1, app-1"));
    let out = sgprobe(&["eval", "-c", config, "--ports", "tcp:99999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcp:99999"));
}

#[test]
fn lint_reports_each_kind_and_exits_by_severity() {
    let config = fixture("lint/sgprobe.toml");
    let config = config.to_str().expect("utf-8");
    let out = sgprobe(&["lint", "-c", config, "--json", "--fail-on", "never"]);
    let findings = json(&out);
    let mut got: Vec<(String, String, String, u64)> = findings
        .as_array()
        .expect("an array")
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().expect("s").to_string(),
                f["check"].as_str().expect("s").to_string(),
                f["group"].as_str().expect("s").to_string(),
                f["rule"]["index"].as_u64().expect("a rule"),
            )
        })
        .collect();
    got.sort();
    let f = |s: &str, c: &str, g: &str, i: u64| (s.to_string(), c.to_string(), g.to_string(), i);
    let mut expected = vec![
        f("critical", "all-ports-open", "sg-wide", 0),
        f("high", "high-risk-open", "sg-wide", 0),
        f("medium", "shadowed", "sg-wide", 1),
        f("high", "high-risk-open", "sg-smb", 1),
        f("medium", "shadowed", "sg-smb", 2),
        f("info", "redundant", "sg-aws", 1),
    ];
    expected.sort();
    assert_eq!(got, expected);

    assert_eq!(
        sgprobe(&["lint", "-c", config]).status.code(),
        Some(1),
        "default --fail-on high"
    );
    let clean = fixture("../../deploy/example/sgprobe.toml");
    assert_eq!(
        sgprobe(&["lint", "-c", clean.to_str().expect("utf-8")])
            .status
            .code(),
        Some(0)
    );
}

/// Imports a fixture's exports as native TOML files and checks that `eval` says exactly what
/// it says on the exports, for every peer and direction.
fn import_round_trip(
    cloud: &str,
    imports: &[(&[&str], Option<&str>)],
    ports: &str,
    peers: &[&str],
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let exports = fixture(cloud);
    let mut sources = String::new();
    for (n, (files, id)) in imports.iter().enumerate() {
        let format = cloud.split('-').next().expect("a cloud");
        let mut args: Vec<String> = vec!["import".into(), format.into()];
        args.extend(
            files
                .iter()
                .map(|f| exports.join(f).to_str().expect("utf-8").to_string()),
        );
        if let Some(id) = id {
            args.extend(["--id".to_string(), id.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sgprobe(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let name = format!("{n}.toml");
        std::fs::write(dir.path().join(&name), &out.stdout).expect("write");
        sources.push_str(&format!(
            "[[source]]\nformat = \"native\"\npath = \"{name}\"\n"
        ));
    }
    let config = dir.path().join("sgprobe.toml");
    std::fs::write(&config, sources).expect("write");
    for peer in peers {
        for direction in ["inbound", "outbound"] {
            let eval = |config: &Path| {
                json(&sgprobe(&[
                    "eval",
                    "-c",
                    config.to_str().expect("utf-8"),
                    "--peer",
                    peer,
                    "--ports",
                    ports,
                    "-d",
                    direction,
                    "--json",
                ]))
            };
            let original = eval(&exports.join("sgprobe.toml"));
            assert!(original.as_array().is_some_and(|a| !a.is_empty()));
            assert_eq!(eval(&config), original, "{cloud}: peer {peer} {direction}");
        }
    }
}

#[test]
fn imported_native_toml_evaluates_exactly_like_the_exports() {
    import_round_trip(
        "tencent",
        &[
            (&["sg-a.json"], Some("sg-aaaaaaaa")),
            (&["sg-b.json"], Some("sg-bbbbbbbb")),
            (
                &["templates.json", "service-templates.json", "instances.json"],
                None,
            ),
        ],
        "tcp:22,80,443,3306,3389,5353,8000,8100,8101,8443,8444,9000,9100,udp:53,4500,icmp,all",
        &[
            "all",
            "198.51.100.5",
            "203.0.113.9",
            "10.0.0.20",
            "10.53.0.3",
            "192.0.2.7",
        ],
    );
    import_round_trip(
        "aws-nacl",
        &[(
            &[
                "security-groups.json",
                "network-acls.json",
                "subnets.json",
                "instances.json",
            ],
            None,
        )],
        "tcp:22,443,5432,8080,9000,udp:53,icmp,all",
        &[
            "all",
            "1.2.3.4",
            "203.0.113.5",
            "198.51.100.7",
            "10.2.1.20",
            "10.2.2.10",
        ],
    );
    import_round_trip(
        "alibaba",
        &[(
            &[
                "sg-web.json",
                "sg-app.json",
                "security-groups.json",
                "instances.json",
            ],
            None,
        )],
        "tcp:22,25,80,443,3306,8080,9999,icmp,all",
        &[
            "all",
            "1.2.3.4",
            "198.51.100.9",
            "203.0.113.5",
            "172.16.1.10",
            "172.16.0.11",
            "47.1.1.20",
        ],
    );
    import_round_trip(
        "openstack",
        &[(
            &[
                "sg-web.json",
                "sg-app.json",
                "address-group.json",
                "ports.json",
            ],
            None,
        )],
        "tcp:22,80,443,8080,9100,udp:53,icmp,all",
        &[
            "all",
            "1.2.3.4",
            "10.1.2.3",
            "10.0.1.7",
            "10.9.1.5",
            "192.0.2.9",
            "2001:db8:5::7",
        ],
    );
    import_round_trip(
        "azure",
        &[(
            &["vnet.json", "nsg-subnet.json", "nsg-nic.json", "nics.json"],
            None,
        )],
        "tcp:22,25,80,443,3389,8080,9100,icmp,all",
        &[
            "all",
            "1.2.3.4",
            "10.9.9.9",
            "10.2.0.7",
            "203.0.113.9",
            "10.1.1.10",
            "10.1.1.4",
            "168.63.129.16",
        ],
    );
}

#[test]
fn every_subcommand_teaches_with_an_example() {
    // Every subcommand the command line defines: a new one without an example fails here.
    let all: Vec<String> = <sgprobe::cli::Cli as clap::CommandFactory>::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert!(all.len() >= 11, "{all:?}");
    for sub in &all {
        let out = sgprobe(&[sub.as_str(), "--help"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Example"),
            "{sub} --help has an example:\n{text}"
        );
        assert!(
            text.contains("sgprobe "),
            "{sub} --help shows a command line"
        );
    }
}

#[test]
fn the_default_table_lists_inbound_ports_in_numeric_order_then_outbound() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/example/sgprobe.toml");
    let out = sgprobe(&[
        "eval",
        "-c",
        config.to_str().expect("utf-8"),
        "-i",
        "web-1",
        "--peer",
        "10.0.0.5",
        "--json",
    ]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let flows: Vec<String> = rows
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["address"] == "10.0.1.10")
        .map(|r| format!("{} {} {}", r["direction"], r["protocol"], r["port"]).replace('"', ""))
        .collect();
    assert_eq!(
        flows,
        [
            "inbound icmp null",
            "inbound tcp 20",
            "inbound tcp 21",
            "inbound tcp 22",
            "inbound tcp 80",
            "inbound tcp 443",
            "inbound tcp 3389",
            "inbound tcp 8080",
            "inbound udp 53",
            "outbound all null",
        ]
    );
}

#[test]
fn a_bad_probe_target_is_bad_input_before_any_packet() {
    let out = sgprobe(&["probe", "10.77.1.300", "--ports", "tcp:22"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad target \"10.77.1.300\""));
}

#[test]
fn a_reply_dropped_by_a_network_acl_is_named_and_fixed_on_the_reply_side() {
    // AWS VPC User Guide, "Network ACLs": stateless, so the reply to a client's ephemeral
    // port must pass the outbound entries; the guide recommends allowing 1024-65535 for it.
    let config = fixture("aws-nacl/sgprobe.toml");
    let config = config.to_str().expect("utf-8");
    let base = ["eval", "-c", config, "-i", "app", "--ports", "tcp:22"];
    let out = sgprobe(&[&base[..], &["--peer", "198.51.100.7", "--remedy"]].concat());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("reply: acl-0app #1 drop tcp:all to 198.51.100.0/24"),
        "the table names the reply, and its peer with \"to\": {text}"
    );
    // Entry 90 denies that network on purpose: no rule is offered to undo it.
    assert!(!text.contains("create-network-acl-entry"), "{text}");
    // A client whose port the ACL's catch-all drops gets the entry that lets its reply out.
    let out = sgprobe(
        &[
            &base[..],
            &["--peer", "1.2.3.4", "--peer-port", "1025", "--remedy"],
        ]
        .concat(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("aws ec2 create-network-acl-entry --network-acl-id acl-0app --egress")
            && text.contains(
                "--port-range From=1025,To=1025 --cidr-block 1.2.3.4/32 --rule-action allow"
            ),
        "{text}"
    );

    let rows = json(&sgprobe(
        &[
            &base[..],
            &["--peer", "1.2.3.4", "--peer-port", "1025", "--json"],
        ]
        .concat(),
    ));
    assert_eq!(rows[0]["predicted"], "closed", "{rows}");
    assert_eq!(rows[0]["on_reply"], true, "{rows}");
    assert_eq!(rows[0]["rule"]["id"], "*", "{rows}");
    let rows = json(&sgprobe(
        &[
            &base[..],
            &["--peer", "1.2.3.4", "--peer-port", "40000", "--json"],
        ]
        .concat(),
    ));
    assert_eq!(rows[0]["predicted"], "open", "{rows}");
    assert!(rows[0].get("on_reply").is_none(), "{rows}");
}

#[test]
fn an_unreadable_rule_is_refused_naming_file_field_and_flag_and_keep_going_reads_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("sgs.json"),
        r#"{"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [
          {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
          {"IpProtocol": "tcp-ao", "FromPort": 179, "ToPort": 179, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
          "IpPermissionsEgress": []}]}"#,
    )
    .expect("write export");
    let config = dir.path().join("sgprobe.toml");
    std::fs::write(
        &config,
        "[[source]]\nformat = \"aws\"\npath = \"sgs.json\"\n[[instance]]\nname = \"web\"\naddresses = [\"10.0.0.5\"]\nsecurity_groups = [\"sg-1\"]\n",
    )
    .expect("write config");
    let config = config.to_str().expect("utf-8");
    for command in ["eval", "lint"] {
        let refused = sgprobe(&[command, "-c", config]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("sgs.json")
                && stderr.contains("$.SecurityGroups[0].IpPermissions[1].IpProtocol")
                && stderr.contains("--keep-going"),
            "{command}: {stderr}"
        );
    }
    let rows = json(&sgprobe(&[
        "eval",
        "-c",
        config,
        "--keep-going",
        "--ports",
        "tcp:22,tcp:8080",
        "--json",
    ]));
    let predicted: Vec<(u64, &str)> = rows
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["port"].as_u64().expect("port"),
                r["predicted"].as_str().expect("predicted"),
            )
        })
        .collect();
    assert_eq!(
        predicted,
        [(22, "open"), (8080, "unknown")],
        "the readable rule decides 22; 8080 depends on the unreadable one"
    );
    let lint = sgprobe(&["lint", "-c", config, "--keep-going", "--fail-on", "never"]);
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(
        String::from_utf8_lossy(&lint.stdout).contains("remote-login-open"),
        "the readable rule is linted"
    );
}

#[test]
fn lint_speaks_english_of_one_group() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sgprobe.toml");
    std::fs::write(
        &config,
        "[[group]]\nid = \"sg-quiet\"\ncloud = \"aws\"\n[[group.ingress]]\naction = \"accept\"\nprotocol = \"tcp\"\nports = \"443\"\npeer = \"10.0.0.0/8\"\n",
    )
    .expect("write config");
    let out = sgprobe(&["lint", "-c", config.to_str().expect("utf-8")]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no findings in 1 group"
    );
}

#[test]
fn out_of_range_durations_counts_and_scan_sizes_are_bad_input_not_panics() {
    // Each refused before a socket is opened or a target allocated: exit 2, one line naming
    // the bound.
    for (args, expected) in [
        (
            &[
                "probe",
                "127.0.0.1",
                "--ports",
                "tcp:22",
                "--timeout",
                "100000000000y",
            ][..],
            "from 10ms to 1m",
        ),
        (
            &["probe", "127.0.0.1", "--ports", "tcp:22", "--timeout", "0s"][..],
            "from 10ms to 1m",
        ),
        (
            &[
                "probe",
                "127.0.0.1",
                "--ports",
                "tcp:22",
                "--retries",
                "4294967295",
            ][..],
            "0..=10",
        ),
        (
            &["probe", "127.0.0.1", "--ports", "tcp:22", "--rate", "0"][..],
            "from 1 to 1000000",
        ),
        (
            &["probe", "127.0.0.0/16", "--ports", "tcp:1-65535"][..],
            "more than the 4194304 one run takes",
        ),
    ] {
        let out = sgprobe(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for key in ["timeout", "refresh"] {
        let config = dir.path().join(format!("{key}.toml"));
        std::fs::write(
            &config,
            format!(
                "[[source]]\nformat = \"native\"\ncommand = [\"true\"]\n{key} = \"300000000000y\"\n"
            ),
        )
        .expect("write");
        let out = sgprobe(&["eval", "-c", config.to_str().expect("utf-8")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains("from 1s to 1day"), "{key}: {stderr}");
    }
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    // `sgprobe eval … | head -1`: far more than a pipe holds, read one line, close.
    let config = fixture("tencent/sgprobe.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sgprobe"))
        .args(["eval", "-c"])
        .arg(&config)
        .args(["--instance", "web-1", "--ports", "tcp:1-20000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("a line");
    drop(stdout);
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!first.is_empty());
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "quiet: {stderr}");
}

#[test]
fn the_version_names_its_commit_and_features_and_an_exporter_listen_address_reads() {
    let out = sgprobe(&["--version"]);
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with(&format!("sgprobe {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let features = if cfg!(feature = "aws-api") {
        "features: aws-api)"
    } else {
        "features: none)"
    };
    assert!(version.trim_end().ends_with(features), "{version}");

    // `:9477`, as exporters write it, is every interface.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sgprobe.toml");
    let inline = std::fs::read_to_string(fixture("native/sgprobe.toml")).expect("a fixture");
    std::fs::write(
        &config,
        format!("[agent]\nmetrics_listen = \":9477\"\n{inline}"),
    )
    .expect("write");
    let out = sgprobe(&[
        "eval",
        "-c",
        config.to_str().expect("utf-8"),
        "--ports",
        "tcp:22",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_itself() {
    for shell in ["bash", "zsh", "fish"] {
        let out = sgprobe(&["completions", shell]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}");
        for subcommand in ["eval", "lint", "probe", "check", "drift", "man"] {
            assert!(text.contains(subcommand), "{shell} completes {subcommand}");
        }
    }
    let man = sgprobe(&["man"]);
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(text.contains(".TH sgprobe 1"), "{text}");
    assert!(
        text.contains("Exit codes"),
        "the man page carries the exit codes"
    );
}

#[test]
fn check_reads_only_the_agents_socket_from_the_config_and_runs_no_source() {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("ran");
    let socket = dir.path().join("agent.sock");
    let config = dir.path().join("sgprobe.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\ncontrol_socket = \"{}\"\n\n[[source]]\nname = \"cmdb\"\nformat = \"aws\"\ncommand = [\"touch\", \"{}\"]\n",
            socket.display(),
            marker.display()
        ),
    )
    .expect("write");
    let out = sgprobe(&["check", "web-1", "-c", config.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&socket.display().to_string()),
        "the config's socket is the one tried: {stderr}"
    );
    assert!(!marker.exists(), "the command source ran: {stderr}");
}
