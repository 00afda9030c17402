//! Security groups compiled to an nftables ruleset that decides as the cloud would. Pure.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{
    Action, Decision, Direction, Instance, Inventory, Peer, Ports, Protocol, Rule, Service, Tie,
};
use crate::policy::{Layer, LinkError, layers};

pub const TABLE: &str = "sgprobe_lab";

/// What a host firewall on an instance does to a port, after the security groups: drift made
/// on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostEffect {
    Drop,
    TcpReset,
    AdminProhibited,
    PortUnreachable,
    HostUnreachable,
}

/// One host-firewall rule: `protocol` is tcp, udp or icmp (echo; port ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    pub instance: String,
    pub protocol: Protocol,
    pub port: Option<u16>,
    pub effect: HostEffect,
}

/// The ruleset of one target namespace holding `instances`.
pub fn ruleset(
    inv: &Inventory,
    instances: &[&Instance],
    host: &[HostRule],
    loss_percent: u8,
) -> Result<String, LinkError> {
    let mut out = format!("table inet {TABLE} {{\n");
    if loss_percent > 0 {
        // Loss on the probe path only: neighbour discovery is spared, as ARP (another family)
        // is for IPv4, or a lost solicitation would silence an address for the second IPv6
        // takes to ask again, longer than adaptive timeouts wait.
        let _ = writeln!(
            out,
            "  chain loss {{\n    type filter hook prerouting priority -300; policy accept;\n    icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept\n    numgen random mod 100 < {loss_percent} drop\n  }}"
        );
    }
    // Per direction, per family: address -> the instance's chain. A verdict map, not a rule
    // per address: a namespace holding hundreds of instances must cost every packet one
    // lookup, as a cloud's per-instance evaluation does, not a scan.
    let mut dispatch: [[Vec<String>; 2]; 2] = Default::default();
    for (n, instance) in instances.iter().enumerate() {
        let layers = layers(inv, instance)?;
        for (d, direction) in [Direction::Inbound, Direction::Outbound]
            .into_iter()
            .enumerate()
        {
            let chain = match direction {
                Direction::Inbound => format!("i{n}_in"),
                Direction::Outbound => format!("i{n}_out"),
            };
            for address in instance.all_addresses() {
                dispatch[d][usize::from(address.is_ipv6())]
                    .push(format!("{address} : jump {chain}"));
            }
            let _ = writeln!(out, "  chain {chain}_manual {{\n  }}");
            let _ = writeln!(out, "  chain {chain} {{\n    jump {chain}_manual");
            // Each layer in turn: a layer's accept moves on to the next layer, its drop ends.
            for l in 0..layers.len() {
                let _ = writeln!(out, "    jump {chain}_l{l}");
            }
            let _ = writeln!(out, "    accept\n  }}");
            for (l, layer) in layers.iter().enumerate() {
                let _ = writeln!(out, "  chain {chain}_l{l} {{");
                out.push_str(&layer_rules(inv, layer, direction));
                let _ = writeln!(out, "  }}");
            }
        }
    }
    for ((hook, key), by_family) in [("input", "daddr"), ("output", "saddr")]
        .into_iter()
        .zip(&dispatch)
    {
        let _ = writeln!(
            out,
            "  chain {hook} {{\n    type filter hook {hook} priority 0; policy accept;"
        );
        for (family, entries) in ["ip", "ip6"].into_iter().zip(by_family) {
            if !entries.is_empty() {
                let _ = writeln!(out, "    {family} {key} vmap {{ {} }}", entries.join(", "));
            }
        }
        let _ = writeln!(out, "  }}");
    }
    let mut host_rules = String::new();
    for rule in host {
        let Some(instance) = instances.iter().find(|i| i.name == rule.instance) else {
            continue;
        };
        for address in instance.all_addresses() {
            host_rules.push_str(&host_rule(*address, rule));
        }
    }
    let _ = writeln!(
        out,
        "  chain host {{\n    type filter hook input priority 10; policy accept;\n{host_rules}  }}\n}}"
    );
    Ok(out)
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv6() { "ip6" } else { "ip" }
}

/// A layer's chain body: its rules in decision order, ending in `return` (accept: go on to the
/// next layer) or `drop`. A stateful layer first lets replies of tracked connections through.
fn layer_rules(inv: &Inventory, layer: &Layer, direction: Direction) -> String {
    let mut out = String::new();
    if layer.semantics.stateful {
        out.push_str("    ct state established,related return\n");
    }
    // Traffic within the subnet does not cross a subnet ACL.
    let (key, _) = peer_keys(direction);
    for net in &layer.bypass {
        let _ = writeln!(out, "    {} {key} {net} return", family(net.addr()));
    }
    let mut rules: Vec<&Rule> = layer.rules(direction).to_vec();
    if layer.semantics.decision == Decision::Priority(Tie::DropFirst) {
        // Stable: list order stays within a priority; drops come first on ties.
        rules.sort_by_key(|r| (r.priority.unwrap_or(i64::MAX), r.action == Action::Accept));
    }
    for rule in rules {
        let verdict = match rule.action {
            Action::Accept => "return",
            Action::Drop => "drop",
        };
        for statement in matches(inv, rule, direction) {
            let _ = writeln!(out, "    {statement}{verdict}");
        }
    }
    let default = match layer.semantics.default_action(direction) {
        Action::Accept => "return",
        Action::Drop => "drop",
    };
    let _ = writeln!(out, "    {default}");
    out
}

/// The address keys of the peer and of the instance, for a packet crossing a layer.
fn peer_keys(direction: Direction) -> (&'static str, &'static str) {
    match direction {
        Direction::Inbound => ("saddr", "daddr"),
        Direction::Outbound => ("daddr", "saddr"),
    }
}

/// The networks an address match stands for (`None`: any); unresolved references, none.
fn nets(inv: &Inventory, peer: &Peer) -> Vec<Option<IpNet>> {
    match peer {
        Peer::All => vec![None],
        Peer::Cidr(net) => vec![Some(*net)],
        Peer::AddressSet(id) => inv
            .address_set_members(id)
            .known
            .into_iter()
            .map(Some)
            .collect(),
        Peer::Group(id) => inv
            .group_members(id)
            .unwrap_or_default()
            .into_iter()
            .map(|a| Some(IpNet::from(a)))
            .collect(),
        Peer::GroupPublic(id) => inv
            .group_public_members(id)
            .unwrap_or_default()
            .into_iter()
            .map(|a| Some(IpNet::from(a)))
            .collect(),
    }
}

/// The match expressions of one rule: one per (peer network family, service) it covers.
/// Unresolvable references match nothing here.
fn matches(inv: &Inventory, rule: &Rule, direction: Direction) -> Vec<String> {
    let (key, local_key) = peer_keys(direction);
    // Each (peer, local) pair of one family; `None` is any address.
    let peers: Vec<(Option<IpNet>, Option<IpNet>)> = nets(inv, &rule.peer)
        .into_iter()
        .flat_map(|peer| {
            nets(inv, &rule.local)
                .into_iter()
                .map(move |local| (peer, local))
        })
        .filter(|(peer, local)| match (peer, local) {
            (Some(p), Some(l)) => p.addr().is_ipv6() == l.addr().is_ipv6(),
            _ => true,
        })
        .collect();
    // A template's members, as the plain services they are; an unreadable rule matches
    // nothing here.
    let services: Vec<Service> = match &rule.service {
        Service::Ports { .. } => vec![rule.service.clone()],
        Service::Template(id) => inv
            .service_set_members(id)
            .known
            .into_iter()
            .map(|(p, ports)| Service::ports(p, ports))
            .collect(),
        Service::Unreadable(_) => Vec::new(),
    };
    // What a named set excludes (Azure's Internet tag) is carved out of each match.
    let excluded = |peer: &Peer| match peer {
        Peer::AddressSet(id) => inv.address_set_members(id).excluded,
        _ => Vec::new(),
    };
    let (peer_out, local_out) = (excluded(&rule.peer), excluded(&rule.local));
    let carve = |text: &mut String, net: &IpNet, key: &str, out: &[IpNet]| {
        let same: Vec<String> = out
            .iter()
            .filter(|o| o.addr().is_ipv6() == net.addr().is_ipv6())
            .map(ToString::to_string)
            .collect();
        if !same.is_empty() {
            let _ = write!(
                text,
                "{} {key} != {{ {} }} ",
                family(net.addr()),
                same.join(", ")
            );
        }
    };
    let mut out = Vec::new();
    for (peer, local) in &peers {
        for service in &services {
            let Service::Ports {
                protocol,
                ports,
                icmp,
                source_ports,
            } = service
            else {
                continue;
            };
            let (icmp_type, code) = (&icmp.icmp_type, &icmp.code);
            let mut text = String::new();
            if let Some(net) = peer {
                let _ = write!(text, "{} {key} {net} ", family(net.addr()));
                carve(&mut text, net, key, &peer_out);
            }
            if let Some(net) = local {
                let _ = write!(text, "{} {local_key} {net} ", family(net.addr()));
                carve(&mut text, net, local_key, &local_out);
            }
            let peer = peer.or(*local);
            let icmp_family = match (protocol, peer) {
                (Protocol::Icmp, Some(net)) | (Protocol::Icmpv6, Some(net))
                    if net.addr().is_ipv6() != (*protocol == Protocol::Icmpv6) =>
                {
                    continue;
                }
                (Protocol::Icmp, _) => Some("icmp"),
                (Protocol::Icmpv6, _) => Some("icmpv6"),
                _ => None,
            };
            match protocol {
                Protocol::All => {}
                Protocol::Icmp => text.push_str("meta l4proto icmp "),
                Protocol::Icmpv6 => text.push_str("meta l4proto ipv6-icmp "),
                Protocol::Tcp | Protocol::Udp => {
                    let _ = write!(text, "meta l4proto {protocol} ");
                }
                Protocol::Other(n) => {
                    let _ = write!(text, "meta l4proto {n} ");
                }
            }
            if protocol.has_ports() {
                for (field, ports) in [("dport", ports), ("sport", source_ports)] {
                    if let Ports::Ranges(ranges) = ports {
                        let list: Vec<String> = ranges.iter().map(ToString::to_string).collect();
                        let _ = write!(text, "th {field} {{ {} }} ", list.join(", "));
                    }
                }
            }
            if let Some(name) = icmp_family {
                if let Some(t) = icmp_type {
                    let _ = write!(text, "{name} type {t} ");
                }
                if let Some(c) = code {
                    let _ = write!(text, "{name} code {c} ");
                }
            }
            out.push(text);
        }
    }
    out
}

fn host_rule(address: IpAddr, rule: &HostRule) -> String {
    let v6 = address.is_ipv6();
    let mut text = format!("    {} daddr {address} ", family(address));
    match rule.protocol {
        Protocol::Icmp | Protocol::Icmpv6 if v6 => text.push_str("icmpv6 type echo-request "),
        Protocol::Icmp | Protocol::Icmpv6 => text.push_str("icmp type echo-request "),
        protocol => {
            let _ = write!(text, "meta l4proto {protocol} ");
            if let Some(port) = rule.port {
                let _ = write!(text, "th dport {port} ");
            }
        }
    }
    let icmp = if v6 { "icmpv6" } else { "icmp" };
    let effect = match (rule.effect, v6) {
        (HostEffect::Drop, _) => "drop".to_string(),
        (HostEffect::TcpReset, _) => "reject with tcp reset".to_string(),
        (HostEffect::AdminProhibited, _) => format!("reject with {icmp} type admin-prohibited"),
        (HostEffect::PortUnreachable, _) => format!("reject with {icmp} type port-unreachable"),
        (HostEffect::HostUnreachable, false) => {
            "reject with icmp type host-unreachable".to_string()
        }
        (HostEffect::HostUnreachable, true) => {
            "reject with icmpv6 type addr-unreachable".to_string()
        }
    };
    format!("{text}{effect}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::native;

    const GROUPS: &str = r#"
[[group]]
id = "sg-1"
cloud = "tencent"
[[group.ingress]]
action = "drop"
protocol = "tcp"
ports = "22"
peer = "198.51.100.0/24"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "22,8000-8100"
peer = "all"
[[group.ingress]]
action = "accept"
protocol = "icmpv6"
peer = "::/0"
[[instance]]
name = "web"
addresses = ["10.77.1.5", "fd77:1::5"]
security_groups = ["sg-1"]
"#;

    #[test]
    fn first_match_rules_compile_in_order_with_default_drop_and_conntrack() {
        let inv = native::parse(std::path::Path::new("t.toml"), GROUPS).expect("valid");
        let instance = &inv.instances[0];
        let host = [HostRule {
            instance: "web".into(),
            protocol: Protocol::Tcp,
            port: Some(80),
            effect: HostEffect::AdminProhibited,
        }];
        let text = ruleset(&inv, &[instance], &host, 10).expect("links");
        let body = text
            .split("chain i0_in_l0 {")
            .nth(1)
            .expect("layer chain")
            .split("\n  }")
            .next()
            .expect("end");
        let lines: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            lines,
            [
                "ct state established,related return",
                "ip saddr 198.51.100.0/24 meta l4proto tcp th dport { 22 } drop",
                "meta l4proto tcp th dport { 22, 8000-8100 } return",
                "ip6 saddr ::/0 meta l4proto ipv6-icmp return",
                "drop",
            ]
        );
        assert!(text.contains("ip daddr vmap { 10.77.1.5 : jump i0_in }"));
        assert!(text.contains("ip6 daddr vmap { fd77:1::5 : jump i0_in }"));
        assert!(text.contains("ip saddr vmap { 10.77.1.5 : jump i0_out }"));
        assert!(text.contains(
            "ip daddr 10.77.1.5 meta l4proto tcp th dport 80 reject with icmp type admin-prohibited"
        ));
        assert!(text.contains("ip6 daddr fd77:1::5 meta l4proto tcp th dport 80 reject with icmpv6 type admin-prohibited"));
        assert!(text.contains("numgen random mod 100 < 10 drop"));
    }
}
