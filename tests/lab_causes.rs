//! Drift with its cause: each cause planted in a lab (a rule added by hand, a host that
//! rejects, one that drops, a served port nothing listens on, a box answering for the
//! instance with another TTL, a router on the way that rejects, and one that resets for the
//! instance), and `unknown` where the lab leaves the evidence ambiguous (a host that answers
//! nothing that agrees with its rules).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use sgprobe::cause::Cause;
use sgprobe::config::Config;
use sgprobe::daemon::cycle::{Selection, check};
use sgprobe::drift::Drift;
use sgprobe::engine::{Counters, Pacer, Settings};
use sgprobe::lab::{HostEffect, HostRule, LabSpec, Listen};
use sgprobe::model::Protocol;

/// `web` answers on 22 and 80 as its rules say (its baseline), and on every other port
/// something else happens; `db`'s rules open nothing, and only a port opened by hand
/// answers.
const LAB: &str = r#"
[[group]]
id = "sg-web"
cloud = "tencent"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "22,80,443,7443,8443,9000,9300"
peer = "0.0.0.0/0"
[[group.ingress]]
action = "accept"
protocol = "udp"
ports = "5400"
peer = "0.0.0.0/0"

[[group]]
id = "sg-db"
cloud = "tencent"

[[instance]]
name = "web"
addresses = ["10.77.1.10"]
security_groups = ["sg-web"]
ports = "tcp:8080,tcp:8081,tcp:9000,tcp:9100,tcp:9200,udp:5353"
serves = "tcp:9300,udp:5400"

[[instance]]
name = "db"
addresses = ["10.77.2.10"]
security_groups = ["sg-db"]
ports = "tcp:5432"
"#;

#[test]
fn each_planted_cause_is_read_from_the_replies_and_ambiguity_is_unknown() {
    let inventory = sgprobe::sources::native::parse(Path::new("lab.toml"), LAB).expect("valid");
    let spec = LabSpec {
        inventory,
        listen: vec![
            Listen {
                instance: "web".into(),
                protocol: Protocol::Tcp,
                // Nothing listens on 9000 and 9300 (open by the rules; web serves 9300) or
                // 8081 (closed by them).
                ports: vec![22, 80, 443, 7443, 8443, 8080, 9100],
            },
            Listen {
                instance: "web".into(),
                protocol: Protocol::Udp,
                ports: vec![5353],
            },
            Listen {
                instance: "db".into(),
                protocol: Protocol::Tcp,
                ports: vec![5432],
            },
        ],
        host: vec![
            HostRule {
                instance: "web".into(),
                protocol: Protocol::Tcp,
                port: Some(443),
                effect: HostEffect::AdminProhibited,
            },
            HostRule {
                instance: "web".into(),
                protocol: Protocol::Tcp,
                port: Some(8443),
                effect: HostEffect::Drop,
            },
        ],
        namespace_per_instance: true,
        // A second prober behind a router (the prober namespace), which rejects 7443.
        nat: Some("192.0.2.7".parse().expect("address")),
        ..LabSpec::default()
    };
    let Some(lab) = common::lab(&spec) else {
        return;
    };
    lab.expose("web", Protocol::Tcp, 8080)
        .expect("a rule added by hand");
    lab.expose("web", Protocol::Tcp, 8081)
        .expect("a rule added by hand");
    lab.expose("web", Protocol::Tcp, 9100)
        .expect("a rule added by hand");
    lab.expose("web", Protocol::Udp, 5353)
        .expect("a rule added by hand");
    lab.answer_with_ttl("web", 9100, 30)
        .expect("a box in front answers for 9100");
    lab.expose("db", Protocol::Tcp, 5432)
        .expect("a rule added by hand");

    lab.prober()
        .exec(
            "nft",
            &["-f", "-"],
            Some("table ip sgprobe_router {\n  chain forward {\n    type filter hook forward priority 0;\n    tcp dport 7443 reject with icmp type admin-prohibited\n    tcp dport 9200 reject with tcp reset\n  }\n}\n"),
        )
        .expect("the router rejects 7443 and resets 9200 for the instance");

    let rows = check_from(lab.prober(), LAB);
    let cause_of = |instance: &str, port: u16| {
        let row = rows
            .get(&(instance.to_string(), "tcp", port))
            .unwrap_or_else(|| panic!("{instance}:{port} was planned: {rows:?}"));
        (row.0, row.1)
    };
    for (instance, port, expected) in [
        ("web", 8080, (Drift::Exposed, Some(Cause::UnlistedRule))),
        (
            "web",
            9100,
            (Drift::Exposed, Some(Cause::AnsweredByMiddlebox)),
        ),
        ("web", 443, (Drift::Blocked, Some(Cause::HostRejects))),
        ("web", 8443, (Drift::Blocked, Some(Cause::SilentDrop))),
        // Opened by hand, nothing listening: the host's own RST shows the way is open.
        ("web", 8081, (Drift::Exposed, Some(Cause::UnlistedRule))),
        // A RST where the rules open the flow: on a port web serves, the service is down
        // and the rules are right; on one it only asks to be checked (`ports`), no drift.
        ("web", 9300, (Drift::Blocked, Some(Cause::NotListening))),
        ("web", 9000, (Drift::None, None)),
        // Its baseline: agreeing with the rules, so no drift and no cause.
        ("web", 22, (Drift::None, None)),
        // Nothing db answers agrees with its rules: no baseline to tell whose answer this is.
        ("db", 5432, (Drift::Exposed, Some(Cause::Unknown))),
    ] {
        assert_eq!(
            cause_of(instance, port),
            expected,
            "{instance}:{port}: {:?}",
            rows.get(&(instance.to_string(), "tcp", port))
        );
    }
    // A UDP answer is the instance's own by its TTL too, and so is its port unreachable on
    // a port it serves (the error's TTL, from the socket's error queue).
    for (port, expected) in [
        (5353, (Drift::Exposed, Some(Cause::UnlistedRule), Some(64))),
        (5400, (Drift::Blocked, Some(Cause::NotListening), Some(64))),
    ] {
        let (drift, cause, _, ttl) = &rows[&("web".to_string(), "udp", port)];
        assert_eq!((*drift, *cause, *ttl), expected, "udp:{port}");
    }
    // The evidence shows what the cause was read from, as nmap's --reason does.
    let (_, _, evidence, ttl) = &rows[&("web".to_string(), "tcp", 9100)];
    assert_eq!((evidence.as_str(), *ttl), ("syn-ack", Some(30)));
    let (_, _, _, ttl) = &rows[&("web".to_string(), "tcp", 22)];
    assert_eq!(*ttl, Some(64), "no hop between prober and target");
    assert_eq!(
        cause_of("web", 7443),
        (Drift::None, None),
        "the router forwards only for the prober behind it"
    );

    // From behind the router: 7443 is rejected on the way, by the router's own address; the
    // router resets 9200 bearing the instance's address, one hop nearer than the instance.
    let config = format!("[agent]\nseen_as = [\"192.0.2.7\"]\n{LAB}");
    let behind = check_from(lab.behind_nat().expect("a NAT"), &config);
    let row = &behind[&("web".to_string(), "tcp", 7443)];
    assert_eq!(
        (row.0, row.1),
        (Drift::Blocked, Some(Cause::RouterRejects)),
        "{row:?}"
    );
    assert!(
        row.2.contains("from 10.75.0.1"),
        "the router is named: {row:?}"
    );
    let (_, _, _, ttl) = &behind[&("web".to_string(), "tcp", 22)];
    assert_eq!(*ttl, Some(63), "one hop: the router");
    let row = &behind[&("web".to_string(), "tcp", 9200)];
    assert_eq!(
        (row.0, row.1, row.3),
        (Drift::Exposed, Some(Cause::AnsweredByMiddlebox), Some(64)),
        "{row:?}"
    );
}

/// IPv6 replies carry no header to a raw socket: the hop limit comes beside them, and the
/// causes read from it are the IPv4 ones.
#[test]
fn ipv6_causes_are_read_from_the_hop_limit() {
    const LAB6: &str = r#"
[[group]]
id = "sg-web"
cloud = "tencent"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "22,80,443,9300"
peer = "::/0"
[[group.ingress]]
action = "accept"
protocol = "udp"
ports = "9300"
peer = "::/0"

[[instance]]
name = "web6"
addresses = ["fd77:1::10"]
security_groups = ["sg-web"]
ports = "tcp:8080,tcp:9100,udp:9100"
serves = "tcp:9300,udp:9300"
"#;
    let inventory = sgprobe::sources::native::parse(Path::new("lab.toml"), LAB6).expect("valid");
    let spec = LabSpec {
        inventory,
        listen: vec![
            Listen {
                instance: "web6".into(),
                protocol: Protocol::Tcp,
                ports: vec![22, 80, 443, 8080, 9100],
            },
            Listen {
                instance: "web6".into(),
                protocol: Protocol::Udp,
                ports: vec![9100],
            },
        ],
        host: vec![HostRule {
            instance: "web6".into(),
            protocol: Protocol::Tcp,
            port: Some(443),
            effect: HostEffect::AdminProhibited,
        }],
        ..LabSpec::default()
    };
    let Some(lab) = common::lab(&spec) else {
        return;
    };
    for (protocol, port) in [
        (Protocol::Tcp, 8080),
        (Protocol::Tcp, 9100),
        (Protocol::Udp, 9100),
    ] {
        lab.expose("web6", protocol, port)
            .expect("a rule added by hand");
    }
    lab.answer_with_ttl("web6", 9100, 30)
        .expect("a box in front answers for 9100");
    // Its port unreachables (code 4) leave with another hop limit; its rejects (code 1) not.
    lab.namespace_of("web6")
        .expect("its namespace")
        .exec(
            "nft",
            &["-f", "-"],
            Some("table ip6 sgprobe_unreachable {\n  chain out {\n    type filter hook output priority 0;\n    icmpv6 type destination-unreachable icmpv6 code 4 ip6 hoplimit set 30\n  }\n}\n"),
        )
        .expect("a rewrite of its port unreachables");
    let rows = check_from(lab.prober(), LAB6);
    let row =
        |protocol: &'static str, port: u16| rows[&("web6".to_string(), protocol, port)].clone();
    assert_eq!(
        row("tcp", 22).3,
        Some(64),
        "the hop limit as received: {rows:?}"
    );
    for (protocol, port, expected) in [
        ("tcp", 8080, (Drift::Exposed, Some(Cause::UnlistedRule))),
        (
            "tcp",
            9100,
            (Drift::Exposed, Some(Cause::AnsweredByMiddlebox)),
        ),
        ("tcp", 9300, (Drift::Blocked, Some(Cause::NotListening))),
        (
            "udp",
            9100,
            (Drift::Exposed, Some(Cause::AnsweredByMiddlebox)),
        ),
        // An ICMPv6 error quoting TCP, from the instance, with its own hop limit.
        ("tcp", 443, (Drift::Blocked, Some(Cause::HostRejects))),
        // A port unreachable bearing the instance's address with another hop limit (the
        // error's own, not the quoted probe's): whose it is cannot be told.
        ("udp", 9300, (Drift::Blocked, Some(Cause::Unknown))),
    ] {
        let (drift, cause, ..) = row(protocol, port);
        assert_eq!(
            (drift, cause),
            expected,
            "{protocol}:{port}: {:?}",
            row(protocol, port)
        );
    }
    assert_eq!(row("tcp", 9100).3, Some(30));
    assert_eq!(row("udp", 9100).3, Some(30));
    assert_eq!(row("tcp", 443).3, Some(64));
    assert_eq!(row("udp", 9300).3, Some(30));
}

/// Each TCP and UDP flow of `text`'s instances checked from `ns`: (instance, protocol, port)
/// -> (drift, cause, evidence, TTL).
type Rows = BTreeMap<(String, &'static str, u16), (Drift, Option<Cause>, String, Option<u8>)>;

fn check_from(ns: &sgprobe::lab::Netns, text: &str) -> Rows {
    let config = Config::parse(Path::new("sgprobe.toml"), text).expect("valid");
    ns.spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let instances: Vec<&sgprobe::model::Instance> = config.inventory.instances.iter().collect();
        let settings = Settings {
            rate: 2000,
            timeout: std::time::Duration::from_millis(300),
            retries: 1,
            force_connect: false,
        };
        let checked = runtime
            .block_on(check(
                &config,
                &instances,
                &Selection::default(),
                &settings,
                &Pacer::new(settings.rate),
                Arc::new(Counters::default()),
            ))
            .expect("probes run");
        checked
            .results
            .into_iter()
            .filter(|r| matches!(r.key.protocol, "tcp" | "udp"))
            .map(|r| {
                (
                    (
                        r.key.instance.to_string(),
                        r.key.protocol,
                        r.key.port.unwrap_or(0),
                    ),
                    (r.drift, r.cause, r.evidence.to_string(), r.ttl),
                )
            })
            .collect()
    })
    .expect("a thread in the namespace")
    .join()
    .expect("the check runs")
}
