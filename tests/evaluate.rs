//! Per-cloud evaluator tests on realistic exports (tests/fixtures/<cloud>). Every expectation
//! was worked out by hand from the cloud's documented semantics.

use std::path::Path;

use sgprobe::config::Config;
use sgprobe::model::{Direction, Flow, FlowPeer, parse_port_spec};
use sgprobe::policy::{Predicted, evaluate, layers};
use sgprobe::sources::Reading;

fn load(cloud: &str) -> Config {
    load_file(cloud, "sgprobe.toml")
}

fn load_file(cloud: &str, file: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(cloud)
        .join(file);
    Config::load(&path, Reading::Strict).unwrap_or_else(|e| panic!("{cloud} fixture loads: {e}"))
}

/// What decided: `(group, index)` of the rule, or `None` for a default.
type Decided = Option<(String, usize)>;

fn verdict(
    config: &Config,
    instance: &str,
    address: &str,
    direction: Direction,
    spec: &str,
    peer: &str,
) -> (Predicted, Decided, Vec<String>) {
    verdict_from_port(config, instance, address, direction, spec, peer, None)
}

fn verdict_from_port(
    config: &Config,
    instance: &str,
    address: &str,
    direction: Direction,
    spec: &str,
    peer: &str,
    peer_port: Option<u16>,
) -> (Predicted, Decided, Vec<String>) {
    let inv = &config.inventory;
    let instance = inv
        .instance(instance)
        .ok()
        .flatten()
        .expect("instance exists");
    let layers = layers(inv, instance).expect("instance links");
    let specs = parse_port_spec(spec).expect("valid spec");
    assert_eq!(specs.len(), 1, "one flow per check");
    let flow = Flow {
        address: address.parse().expect("address"),
        direction,
        spec: specs[0],
        peer: FlowPeer::parse(peer).expect("peer"),
        peer_port,
    };
    let verdict = evaluate(inv, &layers, &flow);
    let decided = verdict
        .decider
        .rule
        .map(|r| (r.origin.group.to_string(), r.origin.index));
    let ids = verdict
        .decider
        .rule
        .and_then(|r| r.origin.id.clone())
        .into_iter()
        .collect();
    (verdict.predicted, decided, ids)
}

fn rule(group: &str, index: usize) -> Decided {
    Some((group.to_string(), index))
}

use Direction::{Inbound, Outbound};
use Predicted::{Ambiguous, Closed, Open, Partial, Unknown};

#[test]
fn tencent_first_match_across_bound_groups() {
    let c = load("tencent");
    let (a, b) = ("sg-aaaaaaaa", "sg-bbbbbbbb");
    let cases: &[(&str, &str, Direction, &str, &str, Predicted, Decided)] = &[
        // A DROP shadows the later ACCEPT for its network only.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:22",
            "198.51.100.5",
            Closed,
            rule(a, 0),
        ),
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:22",
            "203.0.113.9",
            Open,
            rule(a, 1),
        ),
        // Port lists and ranges, both ends and just outside.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:443",
            "203.0.113.9",
            Open,
            rule(a, 1),
        ),
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:8000",
            "10.1.2.3",
            Open,
            rule(a, 2),
        ),
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:8100",
            "10.1.2.3",
            Open,
            rule(a, 2),
        ),
        // Nothing in sg-a matches: the next bound group decides.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:8101",
            "10.1.2.3",
            Closed,
            rule(b, 1),
        ),
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:3389",
            "203.0.113.9",
            Open,
            rule(b, 0),
        ),
        // Group reference: app-1 (10.0.0.20) is bound to sg-b; 10.0.0.99 is no member.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:3306",
            "10.0.0.20",
            Open,
            rule(a, 3),
        ),
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:3306",
            "10.0.0.99",
            Closed,
            rule(b, 1),
        ),
        // A group reference covers "all private IPs of all CVMs under the security group"
        // (Tencent Cloud API 3.0, SecurityGroupPolicy.SecurityGroupId): app-1's public address
        // is no member.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:3306",
            "203.0.113.20",
            Closed,
            rule(b, 1),
        ),
        // Address template group -> templates, one holding a range.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "udp:53",
            "10.53.0.3",
            Open,
            rule(a, 4),
        ),
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "udp:53",
            "10.53.0.4",
            Closed,
            rule(b, 1),
        ),
        // Service template group -> template with tcp:8443 and udp:4500.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:8443",
            "192.0.2.7",
            Open,
            rule(a, 8),
        ),
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "udp:4500",
            "192.0.2.7",
            Open,
            rule(a, 8),
        ),
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:8444",
            "192.0.2.7",
            Closed,
            rule(b, 1),
        ),
        // ICMP and ICMPv6 echo.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "icmp",
            "203.0.113.9",
            Open,
            rule(a, 5),
        ),
        (
            "web-1",
            "2001:db8:1::10",
            Inbound,
            "icmp",
            "2001:db8:ff::1",
            Open,
            rule(a, 6),
        ),
        // IPv6: v4 CIDRs never match; sg-b's DROP is IPv4-only, so the default decides.
        (
            "web-1",
            "2001:db8:1::10",
            Inbound,
            "tcp:22",
            "2001:db8:aa::5",
            Open,
            rule(a, 7),
        ),
        (
            "web-1",
            "2001:db8:1::10",
            Inbound,
            "tcp:22",
            "2001:db8:bb::5",
            Closed,
            None,
        ),
        // A template group one of whose templates is not exported: a present template that
        // matches decides (Tencent API 3.0, AddressTemplateGroup: the group is the union of
        // its templates); a peer in none of the present ones may be in the missing one.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:5353",
            "10.53.0.1",
            Open,
            rule(a, 12),
        ),
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:5353",
            "10.53.0.9",
            Unknown,
            rule(a, 12),
        ),
        // Unresolved template: accept if it matches, sg-b drops if not -> unknown.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:9000",
            "203.0.113.9",
            Unknown,
            rule(a, 9),
        ),
        // Unresolved, but both branches drop: closed, by the rule that decides regardless.
        (
            "web-1",
            "10.0.0.10",
            Inbound,
            "tcp:9100",
            "203.0.113.9",
            Closed,
            rule(a, 11),
        ),
        // Egress.
        (
            "web-1",
            "10.0.0.10",
            Outbound,
            "tcp:25",
            "203.0.113.9",
            Closed,
            rule(a, 0),
        ),
        (
            "web-1",
            "10.0.0.10",
            Outbound,
            "udp:25",
            "203.0.113.9",
            Open,
            rule(a, 1),
        ),
        // Bound order matters: app-1 has sg-b first, whose DROP ALL decides before sg-a.
        (
            "app-1",
            "10.0.0.20",
            Inbound,
            "tcp:22",
            "203.0.113.9",
            Closed,
            rule(b, 1),
        ),
        (
            "app-1",
            "10.0.0.20",
            Inbound,
            "tcp:3389",
            "203.0.113.9",
            Open,
            rule(b, 0),
        ),
    ];
    for (instance, address, direction, spec, peer, predicted, decided) in cases {
        let (got, by, _) = verdict(&c, instance, address, *direction, spec, peer);
        assert_eq!(
            (got, &by),
            (*predicted, decided),
            "{instance} {address} {direction} {spec} from {peer}"
        );
    }
}

#[test]
fn tencent_peer_all_lists_exactly_the_allowed_peers() {
    let c = load("tencent");
    let inv = &c.inventory;
    let instance = inv.instance("web-1").ok().flatten().expect("web-1");
    let layers = layers(inv, instance).expect("links");
    let flow = Flow {
        address: "10.0.0.10".parse().expect("literal"),
        direction: Inbound,
        spec: parse_port_spec("tcp:22").expect("spec")[0],
        peer: FlowPeer::All,
        peer_port: None,
    };
    let v = evaluate(inv, &layers, &flow);
    assert_eq!(v.predicted, Partial);
    // Everything but 198.51.100.0/24 (sg-a #0 drops it before #1 accepts the world).
    let total: u64 = v
        .allowed_peers
        .iter()
        .map(|n| 1u64 << (32 - n.prefix_len()))
        .sum();
    assert_eq!(total, (1u64 << 32) - 256);
    let contains = |a: &str| {
        v.allowed_peers
            .iter()
            .any(|n| n.contains(&a.parse::<std::net::IpAddr>().expect("literal")))
    };
    assert!(contains("203.0.113.9") && contains("198.51.99.255") && contains("198.51.101.0"));
    assert!(!contains("198.51.100.0") && !contains("198.51.100.255"));
    assert_eq!(
        v.decider.rule.map(|r| r.origin.index),
        Some(1),
        "names the accept rule"
    );
}

#[test]
fn qingcloud_priorities_ties_and_outbound_default_allow() {
    let c = load("qingcloud");
    let g = "sg-q1";
    let cases: &[(&str, Direction, &str, &str, Predicted, Decided)] = &[
        // Priority 0 drop beats priority 1 accept though it comes later in the export.
        (
            "172.16.0.5",
            Inbound,
            "tcp:22",
            "198.51.100.9",
            Closed,
            rule(g, 1),
        ),
        (
            "172.16.0.5",
            Inbound,
            "tcp:22",
            "203.0.113.9",
            Open,
            rule(g, 0),
        ),
        // Equal priority, different actions, both matching: ambiguous.
        (
            "172.16.0.5",
            Inbound,
            "tcp:80",
            "203.0.113.9",
            Ambiguous,
            rule(g, 2),
        ),
        ("172.16.0.5", Inbound, "tcp:80", "8.8.8.8", Open, rule(g, 2)),
        // Equal priority, same action: no ambiguity.
        (
            "172.16.0.5",
            Inbound,
            "tcp:443",
            "10.1.1.1",
            Open,
            rule(g, 4),
        ),
        // ICMP type 8 code 0 only.
        ("172.16.0.5", Inbound, "icmp", "8.8.8.8", Open, rule(g, 6)),
        // IP set peers.
        (
            "172.16.0.5",
            Inbound,
            "udp:1500",
            "10.9.3.3",
            Open,
            rule(g, 7),
        ),
        (
            "172.16.0.5",
            Inbound,
            "udp:1500",
            "10.10.0.1",
            Open,
            rule(g, 7),
        ),
        ("172.16.0.5", Inbound, "udp:2001", "10.9.3.3", Closed, None),
        ("172.16.0.5", Inbound, "udp:1500", "10.11.0.1", Closed, None),
        // A disabled rule does not count.
        ("172.16.0.5", Inbound, "tcp:3306", "8.8.8.8", Closed, None),
        // Outbound: unmatched traffic is allowed.
        (
            "192.0.2.50",
            Outbound,
            "tcp:25",
            "8.8.8.8",
            Closed,
            rule(g, 0),
        ),
        ("192.0.2.50", Outbound, "tcp:443", "8.8.8.8", Open, None),
        ("192.0.2.50", Outbound, "all", "all", Partial, None),
    ];
    for (address, direction, spec, peer, predicted, decided) in cases {
        let (got, by, _) = verdict(&c, "q-web", address, *direction, spec, peer);
        assert_eq!(
            (got, &by),
            (*predicted, decided),
            "{address} {direction} {spec} from {peer}"
        );
    }
    let (_, _, ids) = verdict(&c, "q-web", "172.16.0.5", Inbound, "tcp:22", "198.51.100.9");
    assert_eq!(ids, ["sgr-q0000002"], "the cloud's rule id is named");
}

#[test]
fn aws_allow_union_references_and_prefix_lists() {
    let c = load("aws");
    let cases: &[(&str, &str, Direction, &str, &str, Predicted, Decided)] = &[
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "tcp:80",
            "1.2.3.4",
            Open,
            rule("sg-0a", 0),
        ),
        (
            "aws-web",
            "2001:db8:2::10",
            Inbound,
            "tcp:80",
            "2001:db8:9::1",
            Open,
            rule("sg-0a", 0),
        ),
        // Members of sg-0c (the load balancer) only.
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "tcp:8085",
            "10.1.0.5",
            Open,
            rule("sg-0a", 1),
        ),
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "tcp:8085",
            "10.1.0.6",
            Closed,
            None,
        ),
        // A referenced group's members are matched by private address, "not the public IP or
        // Elastic IP" (EC2 User Guide, security group rules: security group referencing).
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "tcp:8085",
            "198.51.100.5",
            Closed,
            None,
        ),
        // ICMP type 8, any code, from 10/8.
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "icmp",
            "10.2.3.4",
            Open,
            rule("sg-0a", 2),
        ),
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "icmp",
            "11.0.0.1",
            Closed,
            None,
        ),
        (
            "aws-web",
            "2001:db8:2::10",
            Inbound,
            "icmp",
            "2001:db8:5::5",
            Open,
            rule("sg-0b", 2),
        ),
        // Prefix list entries.
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "udp:53",
            "10.53.0.9",
            Open,
            rule("sg-0a", 3),
        ),
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "udp:53",
            "10.54.0.9",
            Closed,
            None,
        ),
        // Union over the instance's groups: sg-0b admits SSH from its two ranges.
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "tcp:22",
            "198.51.100.7",
            Open,
            rule("sg-0b", 0),
        ),
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "tcp:22",
            "198.51.100.8",
            Closed,
            None,
        ),
        // A prefix list the exports lack: accept if it matches, default drop if not.
        (
            "aws-web",
            "10.1.0.10",
            Inbound,
            "tcp:2222",
            "1.2.3.4",
            Unknown,
            rule("sg-0b", 1),
        ),
        (
            "aws-web",
            "10.1.0.10",
            Outbound,
            "all",
            "all",
            Open,
            rule("sg-0a", 0),
        ),
        (
            "aws-lb",
            "10.1.0.5",
            Inbound,
            "tcp:443",
            "1.2.3.4",
            Open,
            rule("sg-0c", 0),
        ),
        // The second ingress rule of sg-0c (index counts per direction): members of sg-0a.
        (
            "aws-lb",
            "10.1.0.5",
            Inbound,
            "tcp:8443",
            "10.1.0.10",
            Open,
            rule("sg-0c", 1),
        ),
        (
            "aws-lb",
            "10.1.0.5",
            Inbound,
            "tcp:8443",
            "10.1.0.11",
            Closed,
            None,
        ),
        // sg-0b has no egress rule; sg-0a's allow-all is enough in a union.
        (
            "aws-web",
            "10.1.0.10",
            Outbound,
            "tcp:443",
            "1.2.3.4",
            Open,
            rule("sg-0a", 0),
        ),
    ];
    for (instance, address, direction, spec, peer, predicted, decided) in cases {
        let (got, by, _) = verdict(&c, instance, address, *direction, spec, peer);
        assert_eq!(
            (got, &by),
            (*predicted, decided),
            "{instance} {address} {direction} {spec} from {peer}"
        );
    }
    let (_, _, ids) = verdict(&c, "aws-lb", "10.1.0.5", Inbound, "tcp:443", "1.2.3.4");
    assert_eq!(
        ids,
        ["sgr-0001"],
        "describe-security-group-rules ids are kept"
    );
}

#[test]
fn stateless_layers_need_the_reply_and_alibaba_ties_drop() {
    let c = load("native");
    let cases: &[(&str, &str, &str, &str, Predicted, Decided)] = &[
        // The ACL's outbound side admits replies only to ports up to 60000; probes' source
        // ports are 61001-65535, so the reply is dropped by the ACL's default.
        (
            "behind-strict-acl",
            "10.5.0.10",
            "tcp:22",
            "1.2.3.4",
            Closed,
            None,
        ),
        // Replies to 61001-61010 are dropped: not every probe source port gets its reply.
        (
            "behind-open-acl",
            "10.5.0.11",
            "tcp:22",
            "1.2.3.4",
            Closed,
            rule("acl-open", 0),
        ),
        (
            "behind-open-acl",
            "10.5.0.11",
            "tcp:5000",
            "1.2.3.4",
            Closed,
            rule("acl-open", 0),
        ),
        // The security group has no ICMP rule: closed there, before the ACL is asked.
        (
            "behind-open-acl",
            "10.5.0.11",
            "icmp",
            "1.2.3.4",
            Closed,
            None,
        ),
        (
            "ali",
            "10.6.0.10",
            "tcp:80",
            "203.0.113.5",
            Closed,
            rule("sg-ali", 1),
        ),
        (
            "ali",
            "10.6.0.10",
            "tcp:80",
            "8.8.8.8",
            Open,
            rule("sg-ali", 0),
        ),
    ];
    for (instance, address, spec, peer, predicted, decided) in cases {
        let (got, by, _) = verdict(&c, instance, address, Inbound, spec, peer);
        assert_eq!(
            (got, &by),
            (*predicted, decided),
            "{instance} {spec} from {peer}"
        );
    }
}

/// Instance, address, direction, spec, peer, peer port, verdict, decided by.
type AclCase = (
    &'static str,
    &'static str,
    Direction,
    &'static str,
    &'static str,
    Option<u16>,
    Predicted,
    Decided,
);

#[test]
fn aws_network_acls_are_stateless_first_match_and_skip_traffic_within_the_subnet() {
    // EC2 User Guide / VPC User Guide, "Network ACLs": rules evaluated in order of rule
    // number, lowest first, the first match applies; the `*` rule (32767) denies the rest;
    // stateless: "responses to allowed inbound traffic are subject to the rules for outbound
    // traffic", to the client's ephemeral port; a network ACL controls traffic entering or
    // leaving a subnet, not traffic between instances of one subnet.
    let c = load("aws-nacl");
    let acl = "acl-0app";
    let sg = "sg-0app";
    let cases: &[AclCase] = &[
        (
            "app",
            "10.2.1.10",
            Inbound,
            "tcp:22",
            "1.2.3.4",
            None,
            Open,
            rule(sg, 0),
        ),
        (
            "app",
            "192.0.2.10",
            Inbound,
            "tcp:22",
            "1.2.3.4",
            None,
            Open,
            rule(sg, 0),
        ),
        // Rule 110 denies before 120 allows.
        (
            "app",
            "10.2.1.10",
            Inbound,
            "tcp:8080",
            "203.0.113.5",
            None,
            Closed,
            rule(acl, 1),
        ),
        (
            "app",
            "10.2.1.10",
            Inbound,
            "tcp:8080",
            "1.2.3.4",
            None,
            Open,
            rule(sg, 1),
        ),
        // The reply to a Windows Server 2003 client's port 1025 misses the outbound
        // 32768-65535 allow and meets `*`; sgprobe's own probe ports pass.
        (
            "app",
            "10.2.1.10",
            Inbound,
            "tcp:22",
            "1.2.3.4",
            Some(1025),
            Closed,
            rule(acl, 2),
        ),
        (
            "app",
            "10.2.1.10",
            Inbound,
            "tcp:22",
            "1.2.3.4",
            Some(40000),
            Open,
            rule(sg, 0),
        ),
        // The request passes; the reply meets the outbound deny (rule 90, listed second).
        (
            "app",
            "10.2.1.10",
            Inbound,
            "tcp:22",
            "198.51.100.7",
            None,
            Closed,
            rule(acl, 1),
        ),
        // Within the subnet the ACL is not crossed; from the next subnet it is, and `*` drops.
        (
            "app",
            "10.2.1.10",
            Inbound,
            "tcp:9000",
            "10.2.1.20",
            None,
            Open,
            rule(sg, 2),
        ),
        (
            "app",
            "10.2.1.10",
            Inbound,
            "tcp:9000",
            "10.2.2.10",
            None,
            Closed,
            rule(acl, 4),
        ),
        // The request out to 443 meets the outbound rules first, and only ephemeral ports pass.
        (
            "app",
            "10.2.1.10",
            Outbound,
            "tcp:443",
            "1.2.3.4",
            None,
            Closed,
            rule(acl, 2),
        ),
        // The default ACL allows everything both ways.
        (
            "db",
            "10.2.2.10",
            Inbound,
            "tcp:9000",
            "10.2.1.10",
            None,
            Open,
            rule(sg, 2),
        ),
        (
            "app",
            "10.2.1.10",
            Inbound,
            "tcp:8080",
            "all",
            None,
            Partial,
            rule(sg, 1),
        ),
    ];
    for (instance, address, direction, spec, peer, port, predicted, decided) in cases {
        let (got, by, _) = verdict_from_port(&c, instance, address, *direction, spec, peer, *port);
        assert_eq!(
            (got, &by),
            (*predicted, decided),
            "{instance} {address} {direction} {spec} peer {peer} port {port:?}"
        );
    }
}

/// Instance, direction, spec, peer, verdict, the deciding rule's id.
type ByIdCase = (
    &'static str,
    Direction,
    &'static str,
    &'static str,
    Predicted,
    Option<&'static str>,
);

#[test]
fn alibaba_priorities_drop_first_group_types_and_inner_access() {
    // ECS API DescribeSecurityGroupAttribute: Priority 1-100, a smaller value first; ECS user
    // guide "Security group rules": on equal priority Drop wins; a basic group allows all
    // outbound traffic by default and an enterprise group denies it; a SourceGroupId admits
    // the group's members' private addresses; ModifySecurityGroupPolicy: InnerAccessPolicy
    // Accept lets members reach each other ahead of custom rules.
    let c = load("alibaba");
    let web = "sg-web";
    // (instance, direction, spec, peer, verdict, the deciding rule's id)
    let cases: &[ByIdCase] = &[
        ("web-1", Inbound, "tcp:22", "1.2.3.4", Open, Some("sgr-ssh")),
        (
            "web-1",
            Inbound,
            "tcp:22",
            "198.51.100.9",
            Closed,
            Some("sgr-nossh"),
        ),
        (
            "web-1",
            Inbound,
            "tcp:80",
            "203.0.113.5",
            Closed,
            Some("sgr-noweb"),
        ),
        ("web-1", Inbound, "tcp:80", "1.2.3.4", Open, Some("sgr-web")),
        (
            "web-1",
            Inbound,
            "tcp:3306",
            "172.16.1.10",
            Open,
            Some("sgr-mysql"),
        ),
        // app-1's EIP is no member of sg-app.
        ("web-1", Inbound, "tcp:3306", "47.1.1.20", Closed, None),
        (
            "web-1",
            Inbound,
            "tcp:9999",
            "172.16.0.11",
            Open,
            Some("inner-accept"),
        ),
        (
            "web-1",
            Inbound,
            "tcp:443",
            "1.2.3.4",
            Unknown,
            Some("sgr-tls"),
        ),
        (
            "web-1",
            Outbound,
            "tcp:25",
            "1.2.3.4",
            Closed,
            Some("sgr-nosmtp"),
        ),
        (
            "web-1",
            Outbound,
            "tcp:443",
            "1.2.3.4",
            Open,
            Some("default-outbound"),
        ),
        (
            "app-1",
            Outbound,
            "tcp:443",
            "1.2.3.4",
            Closed,
            Some("default-outbound"),
        ),
        (
            "app-1",
            Inbound,
            "tcp:8080",
            "172.16.0.10",
            Open,
            Some("sgr-app"),
        ),
        // Enterprise: members are isolated from each other unless a rule says otherwise.
        ("app-1", Inbound, "tcp:22", "172.16.1.11", Closed, None),
    ];
    let check = |c: &Config, cases: &[ByIdCase]| {
        for (instance, direction, spec, peer, predicted, id) in cases {
            let address = c
                .inventory
                .instance(instance)
                .ok()
                .flatten()
                .expect("instance")
                .addresses[0]
                .to_string();
            let (got, by, ids) = verdict(c, instance, &address, *direction, spec, peer);
            assert_eq!(
                (got, ids.first().map(String::as_str)),
                (*predicted, *id),
                "{instance} {direction} {spec} peer {peer}: decided by {by:?}"
            );
            if let Some((group, _)) = by {
                assert!(group == web || group == "sg-app", "{group}");
            }
        }
    };
    check(&c, cases);
    // Without DescribeSecurityGroups an enterprise group's type is not known (its
    // InnerAccessPolicy is Drop, as a basic group's may be): outbound is unknown there, and
    // still known for the basic group, whose InnerAccessPolicy Accept shows its type.
    let untyped = load_file("alibaba", "untyped.toml");
    // With the prefix list exported, the rule it feeds decides.
    let listed = load_file("alibaba", "with-prefix-list.toml");
    check(
        &listed,
        &[
            (
                "web-1",
                Inbound,
                "tcp:443",
                "192.0.2.9",
                Open,
                Some("sgr-tls"),
            ),
            ("web-1", Inbound, "tcp:443", "1.2.3.4", Closed, None),
        ],
    );
    check(
        &untyped,
        &[
            (
                "app-1",
                Outbound,
                "tcp:443",
                "1.2.3.4",
                Unknown,
                Some("default-outbound-untyped"),
            ),
            (
                "web-1",
                Outbound,
                "tcp:443",
                "1.2.3.4",
                Open,
                Some("default-outbound"),
            ),
        ],
    );
}

#[test]
fn openstack_allow_union_ethertypes_remote_groups_and_address_groups() {
    // Neutron API reference, security group rules: allow-only; `ethertype` IPv4 or IPv6;
    // null protocol and ports mean any; for ICMP, port_range_min is the type and
    // port_range_max the code; remote_group_id admits the ports of that group (their fixed
    // IPs), remote_address_group_id the addresses of an address group; with no remote, any
    // peer of the ethertype. port_security_enabled false: the port is not filtered.
    let c = load("openstack");
    let cases: &[ByIdCase] = &[
        ("web-1", Inbound, "tcp:22", "10.1.2.3", Open, Some("r-ssh")),
        ("web-1", Inbound, "tcp:22", "1.2.3.4", Closed, None),
        ("web-1", Inbound, "tcp:80", "1.2.3.4", Open, Some("r-http")),
        (
            "web-1",
            Inbound,
            "tcp:8080",
            "10.0.1.7",
            Open,
            Some("r-app"),
        ),
        ("web-1", Inbound, "tcp:8080", "10.0.1.8", Closed, None),
        (
            "web-1",
            Inbound,
            "tcp:9100",
            "10.9.1.5",
            Open,
            Some("r-mon"),
        ),
        ("web-1", Inbound, "tcp:9100", "10.9.2.1", Closed, None),
        ("web-1", Inbound, "icmp", "1.2.3.4", Open, Some("r-ping")),
        ("web-1", Inbound, "udp:53", "192.0.2.9", Open, Some("r-any")),
        (
            "web-1",
            Outbound,
            "tcp:443",
            "1.2.3.4",
            Open,
            Some("r-out4"),
        ),
        ("app-1", Inbound, "tcp:22", "10.0.0.5", Closed, None),
        ("lb-1", Inbound, "tcp:22", "1.2.3.4", Open, None),
    ];
    for (instance, direction, spec, peer, predicted, id) in cases {
        let address = c
            .inventory
            .instance(instance)
            .ok()
            .flatten()
            .expect("instance")
            .addresses[0]
            .to_string();
        let (got, _, ids) = verdict(&c, instance, &address, *direction, spec, peer);
        assert_eq!(
            (got, ids.first().map(String::as_str)),
            (*predicted, *id),
            "{instance} {direction} {spec} peer {peer}"
        );
    }
    // IPv6: the IPv6 rules apply, and an IPv4-only remote-group rule does not, even from a
    // member's IPv6 address.
    let v6: &[(&str, &str, Predicted, Option<&str>)] = &[
        ("tcp:80", "2001:db8::1", Open, Some("r-http6")),
        ("tcp:22", "2001:db8::1", Closed, None),
        ("tcp:8080", "2001:db8:5::7", Closed, None),
    ];
    for (spec, peer, predicted, id) in v6 {
        let (got, _, ids) = verdict(&c, "web-1", "2001:db8:5::5", Inbound, spec, peer);
        assert_eq!(
            (got, ids.first().map(String::as_str)),
            (*predicted, *id),
            "web-1 v6 {spec} peer {peer}"
        );
    }
}

#[test]
fn azure_subnet_and_nic_nsgs_both_decide_with_tags_and_application_security_groups() {
    // Azure documentation, "Network security groups" / "How network security groups filter
    // network traffic": rules by priority, lower first; default rules AllowVnetInBound 65000,
    // AllowAzureLoadBalancerInBound 65001, DenyAllInBound 65500 (and the outbound three);
    // inbound traffic meets the subnet's NSG, then the NIC's, outbound the reverse, and both
    // must allow; service tags VirtualNetwork (the VNet's address space and its peers'),
    // Internet (outside it, publicly routable) and AzureLoadBalancer (168.63.129.16);
    // application security groups match the NICs that list them.
    let c = load("azure");
    let nsg = |name: &str| {
        format!(
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg-web/providers/microsoft.network/networksecuritygroups/{name}"
        )
    };
    // (instance, direction, spec, peer, verdict, deciding NSG, deciding rule)
    let cases: &[(&str, Direction, &str, &str, Predicted, &str, &str)] = &[
        (
            "web-1",
            Inbound,
            "tcp:443",
            "1.2.3.4",
            Open,
            "nsg-nic",
            "AllowHttps",
        ),
        // Not VirtualNetwork, not Internet (a private range outside the VNet): the subnet's
        // DenyAllInBound.
        (
            "web-1",
            Inbound,
            "tcp:443",
            "10.9.9.9",
            Closed,
            "nsg-subnet",
            "DenyAllInBound",
        ),
        // A peered VNet is VirtualNetwork.
        (
            "web-1",
            Inbound,
            "tcp:443",
            "10.2.0.7",
            Open,
            "nsg-nic",
            "AllowHttps",
        ),
        (
            "web-1",
            Inbound,
            "tcp:3389",
            "1.2.3.4",
            Closed,
            "nsg-subnet",
            "DenyRdp",
        ),
        // The subnet allows SSH from the office; the NIC does not.
        (
            "web-1",
            Inbound,
            "tcp:22",
            "203.0.113.9",
            Closed,
            "nsg-nic",
            "DenyAllInBound",
        ),
        (
            "web-1",
            Inbound,
            "tcp:22",
            "10.1.1.10",
            Open,
            "nsg-nic",
            "AllowSshFromBastion",
        ),
        (
            "web-2",
            Inbound,
            "tcp:8080",
            "10.1.1.4",
            Open,
            "nsg-nic",
            "AllowAppFromWeb",
        ),
        // The destination prefix names web-2 only.
        (
            "web-2",
            Inbound,
            "tcp:9100",
            "1.2.3.4",
            Open,
            "nsg-nic",
            "AllowMetricsToWeb2",
        ),
        (
            "web-1",
            Inbound,
            "tcp:9100",
            "1.2.3.4",
            Closed,
            "nsg-nic",
            "DenyAllInBound",
        ),
        (
            "web-1",
            Inbound,
            "tcp:80",
            "168.63.129.16",
            Open,
            "nsg-nic",
            "AllowAzureLoadBalancerInBound",
        ),
        (
            "web-1",
            Outbound,
            "tcp:25",
            "1.2.3.4",
            Closed,
            "nsg-nic",
            "DenySmtpOut",
        ),
        (
            "web-1",
            Outbound,
            "tcp:443",
            "1.2.3.4",
            Open,
            "nsg-nic",
            "AllowInternetOutBound",
        ),
        (
            "web-1",
            Outbound,
            "tcp:443",
            "10.9.9.9",
            Closed,
            "nsg-nic",
            "DenyAllOutBound",
        ),
        (
            "web-1",
            Inbound,
            "icmp",
            "10.1.1.10",
            Open,
            "nsg-nic",
            "AllowVnetInBound",
        ),
    ];
    for (instance, direction, spec, peer, predicted, group, rule) in cases {
        let address = c
            .inventory
            .instance(instance)
            .ok()
            .flatten()
            .expect("instance")
            .addresses[0]
            .to_string();
        let (got, by, ids) = verdict(&c, instance, &address, *direction, spec, peer);
        assert_eq!(
            (got, by.map(|(g, _)| g), ids.first().map(String::as_str)),
            (*predicted, Some(nsg(group)), Some(*rule)),
            "{instance} {direction} {spec} peer {peer}"
        );
    }
    // Without the VNet export, VirtualNetwork is unknown, and so is Internet (defined as
    // outside it): only what neither decides stays known.
    let c = load_file("azure", "no-vnet.toml");
    let (got, _, _) = verdict(&c, "web-1", "10.1.1.4", Inbound, "tcp:443", "10.9.9.9");
    assert_eq!(got, Unknown, "10.9.9.9 may be in the VNet");
    let (got, _, ids) = verdict(&c, "web-1", "10.1.1.4", Inbound, "tcp:3389", "1.2.3.4");
    assert_eq!((got, ids[0].as_str()), (Closed, "DenyRdp"));
}

#[test]
fn icmp_types_and_ip_protocols_are_evaluated_as_flows() {
    // AWS (EC2 API IpPermission: for ICMP, FromPort is the type and ToPort the code, -1 any)
    // and QingCloud (val1 the ICMP type, val2 the code) rules name ICMP types; Tencent names
    // GRE; any cloud's "all traffic" covers ESP.
    let aws = load("aws");
    for (spec, peer, predicted) in [
        // sg-0a allows ICMP type 8 (any code) from 10/8 only.
        ("icmp:8", "10.0.0.1", Open),
        ("icmp:3/4", "10.0.0.1", Closed),
        ("icmp:3", "10.0.0.1", Closed),
        ("esp", "10.0.0.1", Closed),
    ] {
        let (got, _, _) = verdict(&aws, "aws-web", "10.1.0.10", Inbound, spec, peer);
        assert_eq!(got, predicted, "aws {spec} from {peer}");
    }
    let tencent = load("tencent");
    for (spec, predicted) in [("gre", Open), ("proto:50", Open), ("icmp:3/1", Open)] {
        // sg-a's egress allows all traffic after dropping TCP 25.
        let (got, _, _) = verdict(
            &tencent,
            "web-1",
            "10.0.0.10",
            Outbound,
            spec,
            "198.51.100.1",
        );
        assert_eq!(got, predicted, "tencent outbound {spec}");
    }
}
