//! Lint: risky or useless rules, each group judged on its own. Pure.

use std::net::IpAddr;

use serde::Serialize;

use super::evaluate::{Predicted, Reach, evaluate, layer_drops, layer_port_points, reach};
use super::link::{Layer, layers};
use crate::model::catalog::{
    EPHEMERAL_RANGES, EXPOSED_TCP, Exposure, HIGH_RISK_TCP, HIGH_RISK_UDP,
};
use crate::model::{
    Action, Cloud, Decision, Direction, Flow, FlowPeer, FlowProtocol, FlowSpec, IPPROTO_TCP,
    Instance, Inventory, Located, Peer, Ports, Protocol, Rule, Service, Tie,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding<'a> {
    pub severity: Severity,
    /// A stable name for the check: `all-ports-open`, `high-risk-open`, `shadowed`, `redundant`.
    pub check: &'static str,
    pub group: String,
    pub direction: Direction,
    pub rule: Option<&'a Rule>,
    pub message: String,
}

/// Every finding for every group, most severe first.
pub fn lint(inv: &Inventory) -> Vec<Finding<'_>> {
    let mut findings = Vec::new();
    for group in inv.groups.values() {
        // Judge the group as if it were the only one bound.
        let mut alone = Instance::new("lint", "lint");
        alone.security_groups.push(Located {
            value: group.id.clone(),
            at: String::new(),
        });
        let Ok(layers) = layers(inv, &alone) else {
            continue;
        };
        let layer = &layers[0];
        for direction in [Direction::Inbound, Direction::Outbound] {
            // A network ACL that allows everything is AWS's default posture: the security
            // groups behind it filter. Its `*` rule cannot be removed, so it is never news.
            if direction == Direction::Inbound && group.cloud != Cloud::AwsNacl {
                findings.extend(world_open(layer, &group.id));
                findings.extend(exposed(inv, &layers, &group.id));
                findings.extend(high_risk(inv, &layers, &group.id));
            }
            findings.extend(unreachable(inv, layer, &group.id, direction));
        }
        findings.extend(acl_return_ports(inv, layer, &group.id));
        findings.extend(equal_priority_conflicts(layer, &group.id));
        if group.cloud == Cloud::Alibaba {
            findings.extend(alibaba_smtp(layer, &group.id));
        }
    }
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.group.cmp(&b.group)));
    findings
}

/// A stateless ACL that admits TCP requests must let the replies out to the clients'
/// ephemeral ports; the seed catalogue lists each OS's range. One finding per client OS
/// whose range the outbound rules cut, naming the first port and peers dropped.
fn acl_return_ports<'a>(inv: &'a Inventory, layer: &Layer<'a>, group: &str) -> Vec<Finding<'a>> {
    if layer.semantics.stateful {
        return Vec::new();
    }
    // The families whose TCP requests the ACL admits: only their replies matter.
    let admits_tcp = |v6: bool| {
        layer.rules(Direction::Inbound).iter().any(|r| {
            r.action == Action::Accept
                && matches!(
                    &r.service,
                    Service::Ports {
                        protocol: Protocol::Tcp | Protocol::All,
                        ..
                    }
                )
                && match &r.peer {
                    Peer::Cidr(net) => net.addr().is_ipv6() == v6,
                    _ => true,
                }
        })
    };
    let families: Vec<bool> = [false, true]
        .into_iter()
        .filter(|v6| admits_tcp(*v6))
        .collect();
    let points = layer_port_points(inv, layer, Direction::Outbound, IPPROTO_TCP);
    let mut findings = Vec::new();
    for (client, range) in EPHEMERAL_RANGES {
        let ports = points
            .iter()
            .copied()
            .filter(|p| range.contains(*p))
            .chain([range.first]);
        let dropped = ports.into_iter().find_map(|port| {
            families.iter().find_map(|&v6| {
                let drops = layer_drops(inv, layer, Direction::Outbound, IPPROTO_TCP, port, v6);
                drops
                    .into_iter()
                    .next()
                    .map(|(peers, by)| (port, peers, by))
            })
        });
        if let Some((port, peers, by)) = dropped {
            findings.push(Finding {
                severity: Severity::Medium,
                check: "acl-return-ports",
                group: group.to_string(),
                direction: Direction::Outbound,
                rule: by.rule,
                message: format!(
                    "replies to {client} clients (ephemeral ports {}-{}) are dropped: TCP to port {port} for {peers}; a stateless ACL must let them out",
                    range.first, range.last
                ),
            });
        }
    }
    findings
}

/// QingCloud does not say which of two rules at one priority wins when their actions
/// differ: where their traffic overlaps, the verdict is `ambiguous`.
fn equal_priority_conflicts<'a>(layer: &Layer<'a>, group: &str) -> Vec<Finding<'a>> {
    if layer.semantics.decision != Decision::Priority(Tie::Ambiguous) {
        return Vec::new();
    }
    let mut findings = Vec::new();
    for direction in [Direction::Inbound, Direction::Outbound] {
        let rules = layer.rules(direction);
        for (i, a) in rules.iter().enumerate() {
            // An unreadable rule's twins (one per action it may have) are no conflict.
            let readable = |r: &Rule| !matches!(r.service, Service::Unreadable(_));
            let clash = rules[i + 1..].iter().find(|b| {
                a.priority == b.priority
                    && a.action != b.action
                    && readable(a)
                    && readable(b)
                    && overlap(a, b)
            });
            if let Some(b) = clash {
                findings.push(Finding {
                    severity: Severity::Medium,
                    check: "equal-priority-conflict",
                    group: group.to_string(),
                    direction,
                    rule: Some(*a),
                    message: format!(
                        "rule {} ({}) and rule {} ({}) share priority {} and may match the same traffic: QingCloud does not say which wins",
                        a.origin.index,
                        a.action,
                        b.origin.index,
                        b.action,
                        a.priority.unwrap_or(0)
                    ),
                });
            }
        }
    }
    findings
}

/// Whether two rules may match one packet (named sets and groups are assumed to overlap).
fn overlap(a: &Rule, b: &Rule) -> bool {
    let peers = match (&a.peer, &b.peer) {
        (Peer::Cidr(x), Peer::Cidr(y)) => x.contains(y) || y.contains(x),
        _ => true,
    };
    let services = match (&a.service, &b.service) {
        (
            Service::Ports {
                protocol: pa,
                ports: xa,
                ..
            },
            Service::Ports {
                protocol: pb,
                ports: xb,
                ..
            },
        ) => {
            let protocols = match (pa.number(), pb.number()) {
                (Some(x), Some(y)) => x == y,
                _ => true,
            };
            let ports = xa.ranges().iter().any(|r| {
                xb.ranges()
                    .iter()
                    .any(|s| r.first <= s.last && s.first <= r.last)
            });
            protocols && (ports || !pa.has_ports() || !pb.has_ports())
        }
        _ => true,
    };
    peers && services
}

/// Alibaba Cloud restricts outbound TCP 25 by default (ECS user guide, "Security group
/// rules"): a custom rule allowing it does not open it.
fn alibaba_smtp<'a>(layer: &Layer<'a>, group: &str) -> Vec<Finding<'a>> {
    layer
        .rules(Direction::Outbound)
        .iter()
        .filter(|r| {
            *r.origin.group == *group
                && r.action == Action::Accept
                && r.priority.is_some_and(|p| Cloud::Alibaba.custom_priorities().contains(&p))
                && matches!(
                    &r.service,
                    Service::Ports { protocol: Protocol::Tcp | Protocol::All, ports, .. } if ports.contains(25)
                )
        })
        .map(|rule| Finding {
            severity: Severity::Low,
            check: "alibaba-tcp-25",
            group: group.to_string(),
            direction: Direction::Outbound,
            rule: Some(rule),
            message: "allows outbound TCP 25, which Alibaba Cloud restricts by default whatever the rules say: send mail over 465".to_string(),
        })
        .collect()
}

fn is_world(peer: &Peer) -> bool {
    match peer {
        Peer::All => true,
        Peer::Cidr(net) => net.prefix_len() == 0,
        _ => false,
    }
}

/// Inbound accept rules opening every port of TCP or UDP (or every protocol) to everyone.
fn world_open<'a>(layer: &Layer<'a>, group: &str) -> Vec<Finding<'a>> {
    layer
        .rules(Direction::Inbound)
        .iter()
        .filter(|r| *r.origin.group == *group && r.action == Action::Accept && is_world(&r.peer))
        .filter(|r| {
            matches!(
                &r.service,
                Service::Ports {
                    protocol: Protocol::All | Protocol::Tcp | Protocol::Udp,
                    ports: Ports::All,
                    ..
                }
            )
        })
        .map(|rule| {
            let what = match &rule.service {
                Service::Ports {
                    protocol: Protocol::Tcp,
                    ..
                } => "every TCP port",
                Service::Ports {
                    protocol: Protocol::Udp,
                    ..
                } => "every UDP port",
                _ => "every protocol and port",
            };
            Finding {
                severity: Severity::Critical,
                check: "all-ports-open",
                group: group.to_string(),
                direction: Direction::Inbound,
                rule: Some(rule),
                message: format!("opens {what} to {}", world_name(&rule.peer)),
            }
        })
        .collect()
}

/// How a finding names the world a rule opens to.
fn world_name(peer: &Peer) -> String {
    match peer {
        Peer::All => "every address".to_string(),
        other => other.to_string(),
    }
}

/// Whether a rule opens every port of TCP (or every protocol): `all-ports-open` says so.
fn opens_every_tcp_port(rule: &Rule) -> bool {
    matches!(
        &rule.service,
        Service::Ports {
            protocol: Protocol::All | Protocol::Tcp,
            ports: Ports::All,
            ..
        }
    )
}

/// Remote logins (critical) and administration and data-store ports (high) open to
/// 0.0.0.0/0 or ::/0, as AWS Security Hub, Prowler and ScoutSuite report them: one finding
/// per deciding rule and severity, naming the ports. A rule opening every port is reported
/// once, by `all-ports-open`; the carriers' high-risk ports by `high-risk-open`.
fn exposed<'a>(inv: &'a Inventory, layers: &[Layer<'a>], group: &str) -> Vec<Finding<'a>> {
    let mut exposures = Exposures::default();
    let ports = EXPOSED_TCP
        .iter()
        .filter(|p| !HIGH_RISK_TCP.contains(&p.port));
    for exposed in ports {
        for (world, rule) in world_deciders(inv, layers, FlowProtocol::Tcp, exposed.port) {
            if !opens_every_tcp_port(rule) {
                let named = format!("{} ({})", exposed.port, exposed.service);
                exposures.add(rule, exposed.exposure, world, named);
            }
        }
    }
    exposures
        .0
        .into_iter()
        .map(|(rule, exposure, worlds, names)| {
            let (severity, check, what) = match exposure {
                Exposure::RemoteLogin => (Severity::Critical, "remote-login-open", "remote login"),
                Exposure::Sensitive => (
                    Severity::High,
                    "sensitive-port-open",
                    "administration or data-store",
                ),
            };
            let ports = if names.len() == 1 { "port" } else { "ports" };
            Finding {
                severity,
                check,
                group: group.to_string(),
                direction: Direction::Inbound,
                rule: Some(rule),
                message: format!(
                    "{what} {ports} open to {}: {}",
                    worlds.join(" and "),
                    names.join(", ")
                ),
            }
        })
        .collect()
}

/// What rules expose, gathered into one finding per rule and kind: the worlds it opens to
/// and the ports it opens, each named once, in the order found.
struct Exposures<'a, K>(Vec<(&'a Rule, K, Vec<&'static str>, Vec<String>)>);

impl<K> Default for Exposures<'_, K> {
    fn default() -> Self {
        Exposures(Vec::new())
    }
}

impl<'a, K: PartialEq> Exposures<'a, K> {
    fn add(&mut self, rule: &'a Rule, kind: K, world: &'static str, port: String) {
        let at = match self
            .0
            .iter()
            .position(|(r, k, _, _)| std::ptr::eq(*r, rule) && *k == kind)
        {
            Some(at) => at,
            None => {
                self.0.push((rule, kind, Vec::new(), Vec::new()));
                self.0.len() - 1
            }
        };
        let (_, _, worlds, ports) = &mut self.0[at];
        if !worlds.contains(&world) {
            worlds.push(world);
        }
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
}

/// For a port, the rules that open it to 0.0.0.0/0 or to ::/0 (or to all but some
/// carve-outs) and name the world. Whoever reaches it picks the source port: each port a
/// rule's source-port condition names is tried, besides the probes' own.
fn world_deciders<'a>(
    inv: &'a Inventory,
    layers: &[Layer<'a>],
    protocol: FlowProtocol,
    port: u16,
) -> Vec<(&'static str, &'a Rule)> {
    let mut source_ports: Vec<Option<u16>> = vec![None];
    for layer in layers {
        for rule in layer.rules(Direction::Inbound) {
            if let Service::Ports {
                source_ports: Ports::Ranges(ranges),
                ..
            } = &rule.service
            {
                source_ports.extend(ranges.iter().map(|r| Some(r.first)));
            }
        }
    }
    let mut found: Vec<(&'static str, &'a Rule)> = Vec::new();
    for (world, address) in [("0.0.0.0/0", "192.0.2.1"), ("::/0", "2001:db8::1")] {
        let address: IpAddr = address.parse().expect("valid literal");
        for peer_port in &source_ports {
            let flow = Flow {
                address,
                direction: Direction::Inbound,
                spec: FlowSpec {
                    protocol,
                    port: Some(port),
                },
                peer: FlowPeer::All,
                peer_port: *peer_port,
            };
            let verdict = evaluate(inv, layers, &flow);
            let exposed = matches!(verdict.predicted, Predicted::Open | Predicted::Partial);
            if let Some(rule) = verdict
                .decider
                .rule
                .filter(|r| exposed && is_world(&r.peer))
                && !found
                    .iter()
                    .any(|(w, r)| *w == world && std::ptr::eq(*r, rule))
            {
                found.push((world, rule));
            }
        }
    }
    found
}

/// The seed's high-risk ports open to 0.0.0.0/0 or ::/0, one finding per deciding rule and
/// world.
fn high_risk<'a>(inv: &'a Inventory, layers: &[Layer<'a>], group: &str) -> Vec<Finding<'a>> {
    let mut exposures = Exposures::default();
    let ports = HIGH_RISK_TCP
        .iter()
        .map(|p| (FlowProtocol::Tcp, *p))
        .chain(HIGH_RISK_UDP.iter().map(|p| (FlowProtocol::Udp, *p)));
    for (protocol, port) in ports {
        for (world, rule) in world_deciders(inv, layers, protocol, port) {
            let spec = FlowSpec {
                protocol,
                port: Some(port),
            };
            exposures.add(rule, world, world, spec.to_string());
        }
    }
    exposures
        .0
        .into_iter()
        .map(|(rule, world, _, specs)| Finding {
            severity: Severity::High,
            check: "high-risk-open",
            group: group.to_string(),
            direction: Direction::Inbound,
            rule: Some(rule),
            message: format!("high-risk ports open to {world}: {}", specs.join(", ")),
        })
        .collect()
}

/// Rules that can never decide: earlier rules (or, for allow-only groups, other rules)
/// always decide first.
fn unreachable<'a>(
    inv: &'a Inventory,
    layer: &Layer<'a>,
    group: &str,
    direction: Direction,
) -> Vec<Finding<'a>> {
    let union = layer.semantics.decision == Decision::AllowUnion;
    layer
        .rules(direction)
        .iter()
        .filter(|rule| !(layer.cloud == Cloud::AwsNacl && rule.origin.id.as_deref() == Some("*")))
        .filter_map(|rule| match reach(inv, layer, direction, rule) {
            Reach::Shadowed(by) => {
                let by = by.rule.map_or("the default".to_string(), |r| {
                    format!(
                        "rule {} ({} {} from {})",
                        r.origin.index, r.action, r.service, r.peer
                    )
                });
                Some(Finding {
                    severity: if union {
                        Severity::Info
                    } else {
                        Severity::Medium
                    },
                    check: if union { "redundant" } else { "shadowed" },
                    group: group.to_string(),
                    direction,
                    rule: Some(*rule),
                    message: if union {
                        format!("never needed: {by} already allows all it allows")
                    } else {
                        format!("never decides: {by} decides first everywhere it matches")
                    },
                })
            }
            Reach::Decides | Reach::Unresolved => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::native;

    fn checks(toml: &str) -> Vec<(&'static str, String)> {
        let inv = native::parse(std::path::Path::new("t.toml"), toml).expect("valid");
        lint(&inv)
            .into_iter()
            .map(|f| (f.check, f.message))
            .collect()
    }

    #[test]
    fn an_acl_that_cuts_a_clients_return_ports_is_named_per_client() {
        // VPC user guide, "Network ACLs" / "Ephemeral ports": replies go to the client's
        // ephemeral port, whose range depends on its OS (the seed catalogue's table).
        let found = checks(
            r#"
[[group]]
id = "acl-1"
cloud = "aws-nacl"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "443"
peer = "0.0.0.0/0"
priority = 100
[[group.egress]]
action = "accept"
protocol = "tcp"
ports = "32768-65535"
peer = "0.0.0.0/0"
priority = 100
"#,
        );
        let returns: Vec<&String> = found
            .iter()
            .filter(|(c, _)| *c == "acl-return-ports")
            .map(|(_, m)| m)
            .collect();
        assert!(
            returns
                .iter()
                .any(|m| m.contains("Windows Server 2003") && m.contains("port 1025")),
            "{found:?}"
        );
        assert!(!returns.iter().any(|m| m.contains("Linux")), "{found:?}");
        let open = checks(
            r#"
[[group]]
id = "acl-2"
cloud = "aws-nacl"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "443"
peer = "0.0.0.0/0"
priority = 100
[[group.egress]]
action = "accept"
protocol = "tcp"
ports = "1024-65535"
peer = "0.0.0.0/0"
priority = 100
[[group.egress]]
action = "accept"
protocol = "tcp"
ports = "1024-65535"
peer = "::/0"
priority = 101
"#,
        );
        assert!(
            !open.iter().any(|(c, _)| *c == "acl-return-ports"),
            "1024-65535 covers every client: {open:?}"
        );
    }

    #[test]
    fn qingcloud_equal_priorities_and_alibaba_smtp_are_flagged() {
        let found = checks(
            r#"
[[group]]
id = "sg-q"
cloud = "qingcloud"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "22"
peer = "10.0.0.0/8"
priority = 5
[[group.ingress]]
action = "drop"
protocol = "tcp"
ports = "20-30"
peer = "10.1.0.0/16"
priority = 5
[[group.ingress]]
action = "drop"
protocol = "udp"
ports = "22"
peer = "10.1.0.0/16"
priority = 5

[[group]]
id = "sg-a"
cloud = "alibaba"
[[group.egress]]
action = "accept"
protocol = "tcp"
ports = "25"
peer = "0.0.0.0/0"
priority = 1
"#,
        );
        let conflicts: Vec<_> = found
            .iter()
            .filter(|(c, _)| *c == "equal-priority-conflict")
            .collect();
        assert_eq!(conflicts.len(), 1, "tcp 22 vs tcp 20-30 only: {found:?}");
        assert!(conflicts[0].1.contains("rule 0 (accept) and rule 1 (drop)"));
        assert!(
            found.iter().any(|(c, _)| *c == "alibaba-tcp-25"),
            "{found:?}"
        );
    }

    #[test]
    fn admin_remote_desktop_and_data_store_ports_open_to_the_world_are_findings_per_rule() {
        // AWS Security Hub EC2.13 (SSH) and EC2.14 (RDP) are critical, EC2.19's high-risk
        // ports high; Prowler reports Redis, MongoDB and the Docker daemon alike.
        let mut toml = String::from("[[group]]\nid = \"sg-open\"\ncloud = \"aws\"\n");
        for port in [22, 3389, 3306, 5432, 6379, 9200, 27017, 2375] {
            toml.push_str(&format!(
                "[[group.ingress]]\naction = \"accept\"\nprotocol = \"tcp\"\nports = \"{port}\"\npeer = \"0.0.0.0/0\"\n"
            ));
        }
        toml.push_str("[[group.ingress]]\naction = \"accept\"\nprotocol = \"tcp\"\nports = \"3306\"\npeer = \"10.0.0.0/8\"\n");
        let inv = native::parse(std::path::Path::new("t.toml"), &toml).expect("valid");
        let found: Vec<(Severity, &str, String)> = lint(&inv)
            .into_iter()
            .filter(|f| f.check != "redundant")
            .map(|f| (f.severity, f.check, f.message))
            .collect();
        let expected = [
            (
                Severity::Critical,
                "remote-login-open",
                "remote login port open to 0.0.0.0/0: 22 (SSH)",
            ),
            (
                Severity::Critical,
                "remote-login-open",
                "remote login port open to 0.0.0.0/0: 3389 (Remote Desktop)",
            ),
            (
                Severity::High,
                "sensitive-port-open",
                "administration or data-store port open to 0.0.0.0/0: 2375 (Docker daemon)",
            ),
            (
                Severity::High,
                "sensitive-port-open",
                "administration or data-store port open to 0.0.0.0/0: 3306 (MySQL)",
            ),
            (
                Severity::High,
                "sensitive-port-open",
                "administration or data-store port open to 0.0.0.0/0: 5432 (PostgreSQL)",
            ),
            (
                Severity::High,
                "sensitive-port-open",
                "administration or data-store port open to 0.0.0.0/0: 6379 (Redis)",
            ),
            (
                Severity::High,
                "sensitive-port-open",
                "administration or data-store port open to 0.0.0.0/0: 9200 (Elasticsearch)",
            ),
            (
                Severity::High,
                "sensitive-port-open",
                "administration or data-store port open to 0.0.0.0/0: 27017 (MongoDB)",
            ),
        ];
        let mut found = found;
        found.sort();
        let mut expected: Vec<(Severity, &str, String)> = expected
            .into_iter()
            .map(|(s, c, m)| (s, c, m.to_string()))
            .collect();
        expected.sort();
        assert_eq!(
            found, expected,
            "one finding per rule; the private 3306 rule is none"
        );
    }

    #[test]
    fn one_rule_opening_several_sensitive_ports_is_one_finding_naming_them_and_wide_rules_say_so_in_english()
     {
        let found = checks(
            r#"
[[group]]
id = "sg-range"
cloud = "aws"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "5432-6379"
peer = "::/0"
[[group.ingress]]
action = "accept"
protocol = "all"
peer = "0.0.0.0/0"
"#,
        );
        assert!(
            found.contains(&(
                "sensitive-port-open",
                "administration or data-store ports open to ::/0: 5432 (PostgreSQL), 5500 (fcp-addr-srvr1), 5601 (Kibana), 5985 (WinRM), 5986 (WinRM (TLS)), 6379 (Redis)".to_string()
            )),
            "{found:?}"
        );
        assert!(
            found.contains(&(
                "all-ports-open",
                "opens every protocol and port to 0.0.0.0/0".to_string()
            )),
            "{found:?}"
        );
        assert!(
            !found
                .iter()
                .any(|(c, m)| *c == "remote-login-open" && m.contains("0.0.0.0/0")),
            "a rule opening every port is reported once, as all-ports-open: {found:?}"
        );
    }

    #[test]
    fn a_port_open_to_the_world_only_from_some_client_ports_is_still_exposed() {
        // Whoever connects picks the source port: a quintuple rule on SSH from 0.0.0.0/0 and
        // client ports 1-1024 opens SSH to the world. A rule on every address of both
        // families is one finding naming both.
        let found = checks(
            r#"
[[group]]
id = "sg-q"
cloud = "alibaba"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "22"
source_ports = "1-1024"
peer = "0.0.0.0/0"
priority = 1
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "3306"
peer = "all"
priority = 1
"#,
        );
        for expected in [
            (
                "remote-login-open",
                "remote login port open to 0.0.0.0/0: 22 (SSH)",
            ),
            (
                "sensitive-port-open",
                "administration or data-store port open to 0.0.0.0/0 and ::/0: 3306 (MySQL)",
            ),
        ] {
            assert!(
                found.contains(&(expected.0, expected.1.to_string())),
                "{expected:?} in {found:?}"
            );
        }
    }
}
