//! Differential: random security groups are built into a lab, every planned flow is probed
//! with real packets, and what the packets show must be what `policy::evaluate` predicts —
//! except exactly where a host firewall was injected. Then again with 10% packet loss.
//!
//! The clouds drawn cover every way layers decide: first match (Tencent), priorities with
//! drop first on ties (Alibaba), unique priorities and rules on the instance's own address
//! with a NIC and a subnet NSG (Azure), allow-only unions (AWS, OpenStack), and a stateless
//! network ACL behind an AWS group, whose replies to the prober's ports must pass too.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use sgprobe::engine::{ProbeProtocol, Settings, Target};
use sgprobe::lab::{HostEffect, HostRule, LabSpec, Listen};
use sgprobe::model::PortState;
use sgprobe::model::{Direction, Flow, FlowPeer, FlowProtocol, FlowSpec, Protocol};
use sgprobe::policy::{Predicted, evaluate, layers};
use sgprobe::sources::native;

/// SplitMix64: a seeded generator, so a failure names the seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const INSTANCES: usize = 4;

/// How an instance's layers are drawn: its groups' cloud, and a second layer for two.
const KINDS: [&str; 6] = ["tencent", "aws", "alibaba", "openstack", "azure", "aws+acl"];

struct World {
    spec: LabSpec,
    kinds: Vec<&'static str>,
    ports: Vec<u16>,
    tcp_listening: BTreeSet<(usize, u16)>,
    udp_listening: BTreeSet<(usize, u16)>,
    host: Vec<(usize, Protocol, Option<u16>, HostEffect)>,
}

/// A random peer for instance `i`'s rules: everyone, the prober's own address, its
/// neighbour's, or networks that hold neither.
fn peer(rng: &mut Rng, i: usize) -> String {
    let own = format!("10.76.{i}.1/32");
    let other = format!("10.76.{}.1/32", (i + 1) % INSTANCES);
    rng.pick(&[
        "all",
        "0.0.0.0/0",
        "10.76.0.0/16",
        own.as_str(),
        other.as_str(),
        "10.99.0.0/16",
        "::/0",
        "fd76::/16",
        "fd99::/16",
    ])
    .to_string()
}

/// One group's random ingress rules, as `cloud` allows them: allow-only for AWS and
/// OpenStack; unique priorities for Azure and network ACLs, which number every rule; ties
/// for Alibaba. Azure rules sometimes name the instance's own address.
fn group(toml: &mut String, rng: &mut Rng, id: &str, cloud: &str, i: usize, ports: &[u16]) {
    let _ = writeln!(toml, "[[group]]\nid = \"{id}\"\ncloud = \"{cloud}\"");
    for k in 0..(2 + rng.below(5)) {
        let allow_only = matches!(cloud, "aws" | "openstack");
        let action = if allow_only || rng.chance(65) {
            "accept"
        } else {
            "drop"
        };
        let protocol = *rng.pick(&["tcp", "udp", "icmp", "all"]);
        let _ = writeln!(
            toml,
            "[[group.ingress]]\naction = \"{action}\"\nprotocol = \"{protocol}\"\npeer = \"{}\"",
            peer(rng, i)
        );
        if matches!(protocol, "tcp" | "udp") {
            let first = rng.below(ports.len());
            let last = (first + rng.below(3)).min(ports.len() - 1);
            let _ = writeln!(toml, "ports = \"{}-{}\"", ports[first], ports[last]);
        }
        match cloud {
            "alibaba" => {
                let _ = writeln!(toml, "priority = {}", 1 + rng.below(3));
            }
            "azure" | "aws-nacl" => {
                let _ = writeln!(toml, "priority = {}", 100 + 10 * k + rng.below(10));
            }
            _ => {}
        }
        if cloud == "azure" && rng.chance(25) {
            let local = rng
                .pick(&[
                    format!("10.77.{i}.10/32"),
                    format!("fd77:{i}::10/128"),
                    "10.99.0.0/16".to_string(),
                ])
                .clone();
            let _ = writeln!(toml, "local = \"{local}\"");
        }
    }
}

/// A network ACL's outbound entries, which the replies meet. ICMP and UDP always pass: a UDP
/// probe of a closed port is answered by an ICMP error, not by UDP, so a UDP verdict that
/// hangs on the reply's path is no verdict packets can check. TCP replies (SYN-ACK and RST
/// alike) to the prober's ports (61001-65535) pass only as the random entries say.
fn acl_egress(toml: &mut String, rng: &mut Rng, ports: &[u16]) {
    for (k, protocol) in ["icmp", "icmpv6", "udp"].into_iter().enumerate() {
        let _ = writeln!(
            toml,
            "[[group.egress]]\naction = \"accept\"\nprotocol = \"{protocol}\"\npeer = \"all\"\npriority = {}",
            k + 1
        );
    }
    let listed = format!("{}-{}", ports[0], ports[ports.len() - 1]);
    for k in 0..(1 + rng.below(3)) {
        let action = if rng.chance(70) { "accept" } else { "drop" };
        let range = *rng.pick(&["1024-65535", "61001-65535", "32768-61000", listed.as_str()]);
        let _ = writeln!(
            toml,
            "[[group.egress]]\naction = \"{action}\"\nprotocol = \"tcp\"\nports = \"{range}\"\npeer = \"all\"\npriority = {}",
            10 + 10 * k
        );
    }
}

/// Random groups of a random cloud per instance, random listeners, and a few host-firewall
/// rules. Each instance gets its own namespace: its own kernel, its own ICMP rate limit.
fn world(seed: u64, ports: &[u16], with_host_rules: bool) -> World {
    let mut rng = Rng(seed);
    let mut toml = String::new();
    let mut world = World {
        spec: LabSpec::default(),
        kinds: Vec::new(),
        ports: ports.to_vec(),
        tcp_listening: BTreeSet::new(),
        udp_listening: BTreeSet::new(),
        host: Vec::new(),
    };
    for i in 0..INSTANCES {
        let kind = *rng.pick(&KINDS);
        world.kinds.push(kind);
        let cloud = kind.split('+').next().expect("a cloud");
        // Azure binds one NSG to a NIC.
        let groups = if cloud == "azure" {
            1
        } else {
            1 + rng.below(2)
        };
        let mut ids = Vec::new();
        for g in 0..groups {
            let id = format!("sg-{i}-{g}");
            group(&mut toml, &mut rng, &id, cloud, i, ports);
            let _ = writeln!(
                toml,
                "[[group.egress]]\naction = \"accept\"\npeer = \"all\""
            );
            ids.push(format!("\"{id}\""));
        }
        // A second layer: the subnet's NSG, or a network ACL.
        let outer = match kind {
            "azure" => {
                let id = format!("nsg-subnet-{i}");
                group(&mut toml, &mut rng, &id, "azure", i, ports);
                let _ = writeln!(
                    toml,
                    "[[group.egress]]\naction = \"accept\"\npeer = \"all\"\npriority = 4000"
                );
                format!("\nsubnet_layers = [\"{id}\"]")
            }
            "aws+acl" => {
                let id = format!("acl-{i}");
                group(&mut toml, &mut rng, &id, "aws-nacl", i, ports);
                acl_egress(&mut toml, &mut rng, ports);
                format!("\nsubnet_layers = [\"{id}\"]")
            }
            _ => String::new(),
        };
        let _ = writeln!(
            toml,
            "[[instance]]\nname = \"i{i}\"\naddresses = [\"10.77.{i}.10\", \"fd77:{i}::10\"]\nsecurity_groups = [{}]{outer}",
            ids.join(", ")
        );
        for port in ports {
            if rng.chance(50) {
                world.tcp_listening.insert((i, *port));
            }
            if rng.chance(50) {
                world.udp_listening.insert((i, *port));
            }
        }
        let listen = |protocol, set: &BTreeSet<(usize, u16)>| Listen {
            instance: format!("i{i}"),
            protocol,
            ports: set
                .iter()
                .filter(|(n, _)| *n == i)
                .map(|(_, p)| *p)
                .collect(),
        };
        world
            .spec
            .listen
            .push(listen(Protocol::Tcp, &world.tcp_listening));
        world
            .spec
            .listen
            .push(listen(Protocol::Udp, &world.udp_listening));
    }
    if with_host_rules {
        for _ in 0..4 {
            let i = rng.below(INSTANCES);
            let (protocol, port) = match rng.below(3) {
                0 => (Protocol::Tcp, Some(*rng.pick(ports))),
                1 => (Protocol::Udp, Some(*rng.pick(ports))),
                _ => (Protocol::Icmp, None),
            };
            let effect = *rng.pick(&[
                HostEffect::Drop,
                HostEffect::AdminProhibited,
                HostEffect::TcpReset,
            ]);
            let effect = if protocol != Protocol::Tcp && effect == HostEffect::TcpReset {
                HostEffect::Drop
            } else {
                effect
            };
            world.host.push((i, protocol, port, effect));
            world.spec.host.push(HostRule {
                instance: format!("i{i}"),
                protocol,
                port,
                effect,
            });
        }
    }
    world.spec.inventory = native::parse(Path::new("random.toml"), &toml)
        .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{toml}"));
    world.spec.namespace_per_instance = true;
    world
}

/// What packets must show for a flow the groups decide `open`, with or without a host rule.
fn expected(
    world: &World,
    i: usize,
    protocol: ProbeProtocol,
    port: Option<u16>,
    predicted_open: bool,
    with_host: bool,
) -> PortState {
    let host_protocol = match protocol {
        ProbeProtocol::Tcp => Protocol::Tcp,
        ProbeProtocol::Udp => Protocol::Udp,
        ProbeProtocol::Icmp => Protocol::Icmp,
    };
    let silent = if protocol == ProbeProtocol::Udp {
        PortState::OpenFiltered
    } else {
        PortState::Filtered
    };
    if !predicted_open {
        return silent;
    }
    let host = world.host.iter().find(|(n, p, pt, _)| {
        *n == i && *p == host_protocol && (*pt == port || *p == Protocol::Icmp)
    });
    if let (true, Some((_, _, _, effect))) = (with_host, host) {
        return match effect {
            HostEffect::Drop => silent,
            HostEffect::TcpReset => PortState::Closed,
            _ => PortState::Filtered,
        };
    }
    let listening = |set: &BTreeSet<(usize, u16)>| port.is_some_and(|p| set.contains(&(i, p)));
    match protocol {
        ProbeProtocol::Tcp if listening(&world.tcp_listening) => PortState::Open,
        ProbeProtocol::Udp if listening(&world.udp_listening) => PortState::Open,
        ProbeProtocol::Icmp => PortState::Open,
        _ => PortState::Closed,
    }
}

/// Probes every planned flow and returns (flow, predicted, observed, expected-with-host,
/// expected-without-host) for each.
fn run(
    seed: u64,
    ports: &[u16],
    loss: u8,
    settings: Settings,
) -> Vec<(Target, Predicted, PortState, PortState, PortState)> {
    let mut world = world(seed, ports, loss == 0);
    eprintln!("seed {seed}: instances of kinds {:?}", world.kinds);
    world.spec.loss_percent = loss;
    let Some(lab) = common::lab(&world.spec) else {
        return Vec::new();
    };
    let inv = &world.spec.inventory;
    let mut planned = Vec::new();
    for (i, instance) in inv.instances.iter().enumerate() {
        let layers = layers(inv, instance).expect("links");
        for address in &instance.addresses {
            // The prober's own source address toward this instance: the verdict is for it.
            let peer: IpAddr = if address.is_ipv6() {
                format!("fd76:{i:x}::1")
            } else {
                format!("10.76.{i}.1")
            }
            .parse()
            .expect("address");
            let mut specs: Vec<(ProbeProtocol, Option<u16>, FlowSpec)> = Vec::new();
            for port in &world.ports {
                specs.push((
                    ProbeProtocol::Tcp,
                    Some(*port),
                    FlowSpec {
                        protocol: FlowProtocol::Tcp,
                        port: Some(*port),
                    },
                ));
                specs.push((
                    ProbeProtocol::Udp,
                    Some(*port),
                    FlowSpec {
                        protocol: FlowProtocol::Udp,
                        port: Some(*port),
                    },
                ));
            }
            specs.push((
                ProbeProtocol::Icmp,
                None,
                FlowSpec {
                    protocol: FlowProtocol::Icmp,
                    port: None,
                },
            ));
            for (protocol, port, spec) in specs {
                let flow = Flow {
                    address: *address,
                    direction: Direction::Inbound,
                    spec,
                    peer: FlowPeer::Addr(peer),
                    peer_port: None,
                };
                let predicted = evaluate(inv, &layers, &flow).predicted;
                assert!(
                    matches!(predicted, Predicted::Open | Predicted::Closed),
                    "seed {seed}: {flow:?} is {predicted:?}"
                );
                planned.push((
                    i,
                    Target {
                        addr: *address,
                        protocol,
                        port,
                    },
                    predicted,
                ));
            }
        }
    }
    let report = common::probe_in(&lab, settings, planned.iter().map(|p| p.1).collect());
    planned
        .iter()
        .zip(&report.observations)
        .map(|((i, target, predicted), seen)| {
            let open = *predicted == Predicted::Open;
            (
                *target,
                *predicted,
                seen.state,
                expected(&world, *i, target.protocol, target.port, open, true),
                expected(&world, *i, target.protocol, target.port, open, false),
            )
        })
        .collect()
}

#[test]
fn packets_agree_with_the_evaluator_and_host_rules_show_exactly_where_injected() {
    let settings = Settings {
        rate: 5000,
        timeout: Duration::from_millis(300),
        retries: 1,
        ..Settings::default()
    };
    let seeds = [1, 2, 3, 4];
    let ports = [22, 80, 443, 1000, 1001];
    let drawn: BTreeSet<&str> = seeds
        .iter()
        .flat_map(|seed| world(*seed, &ports, true).kinds)
        .collect();
    assert_eq!(
        drawn,
        KINDS.into_iter().collect(),
        "the seeds must draw every kind of layer, or the test covers less than it says"
    );
    for seed in seeds {
        let results = run(seed, &ports, 0, settings.clone());
        let mut drifted = 0;
        for (target, predicted, seen, with_host, without_host) in &results {
            assert_eq!(
                seen, with_host,
                "seed {seed}: {target:?} predicted {predicted:?}"
            );
            drifted += usize::from(with_host != without_host);
        }
        if !results.is_empty() {
            assert!(
                drifted > 0,
                "seed {seed}: no injected host rule landed on a flow, so the test shows nothing"
            );
            eprintln!(
                "seed {seed}: {} flows agree; {drifted} differ from the groups' prediction, each where a host rule was injected",
                results.len()
            );
        }
    }
}

#[test]
fn ten_percent_random_loss_changes_no_answer() {
    let settings = Settings {
        rate: 5000,
        timeout: Duration::from_millis(250),
        retries: 6,
        ..Settings::default()
    };
    let results = run(7, &[22, 80, 1000], 10, settings);
    for (target, predicted, seen, expected, _) in &results {
        assert_eq!(
            seen, expected,
            "seed 7, 10% loss: {target:?} predicted {predicted:?}"
        );
    }
}
