//! The concrete packets that stand for a flow: ports, services and peers where some rule
//! changes its answer.

use std::collections::BTreeSet;

use ipnet::IpNet;

use crate::model::{
    Direction, Flow, FlowProtocol, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
    Inventory, Peer, Ports, Protocol, Rule, Service,
};
use crate::policy::link::Layer;

/// Ports where some rule's port set for this protocol starts or stops: between two of them,
/// every rule treats every port alike.
pub(super) fn port_points<'a>(
    rules: impl Iterator<Item = &'a Rule>,
    inv: &Inventory,
    protocol: u8,
) -> BTreeSet<u16> {
    let mut points = BTreeSet::from([1]);
    for rule in rules {
        for (p, ports) in services_of(rule, inv) {
            if p.matches(protocol) {
                for range in ports.ranges() {
                    points.insert(range.first);
                    if let Some(next) = range.last.checked_add(1) {
                        points.insert(next);
                    }
                }
            }
        }
    }
    points
}

pub(super) fn services_of(rule: &Rule, inv: &Inventory) -> Vec<(Protocol, Ports)> {
    match &rule.service {
        Service::Ports {
            protocol, ports, ..
        } => vec![(*protocol, ports.clone())],
        Service::Template(id) => inv.service_set_members(id).known,
        Service::Unreadable(_) => Vec::new(),
    }
}

/// IP protocol, port (TCP/UDP) and ICMP type/code of a concrete packet.
pub(super) type ServicePoint = (u8, Option<u16>, Option<(u8, u8)>);

/// The concrete packets that stand for a flow's protocol: one for TCP, UDP or ICMP echo; for
/// "all traffic", one per region of protocol, port and ICMP type every rule treats alike.
pub(super) fn service_points(flow: &Flow, rules: &[&Rule], inv: &Inventory) -> Vec<ServicePoint> {
    let v6 = flow.address.is_ipv6();
    let icmp_number = if v6 { IPPROTO_ICMPV6 } else { IPPROTO_ICMP };
    let echo = if v6 { (128, 0) } else { (8, 0) };
    match flow.spec.protocol {
        FlowProtocol::Tcp => vec![(IPPROTO_TCP, flow.spec.port, None)],
        FlowProtocol::Udp => vec![(IPPROTO_UDP, flow.spec.port, None)],
        FlowProtocol::Icmp => vec![(icmp_number, None, Some(echo))],
        FlowProtocol::IcmpMessage {
            icmp_type, code, ..
        } => {
            // Every code of the type, where the spec names none: each code a rule names,
            // and one no rule names.
            let codes = match code {
                Some(code) => BTreeSet::from([code]),
                None => {
                    let mut codes: BTreeSet<u8> = rules
                        .iter()
                        .filter_map(|r| match &r.service {
                            Service::Ports { icmp, .. } if icmp.icmp_type == Some(icmp_type) => {
                                icmp.code
                            }
                            _ => None,
                        })
                        .collect();
                    codes.insert(first_missing(&codes));
                    codes
                }
            };
            codes
                .into_iter()
                .map(|code| (icmp_number, None, Some((icmp_type, code))))
                .collect()
        }
        // A transport with ports (SCTP, DCCP, UDP-Lite): one packet per stretch of ports every
        // rule treats alike, so a rule on some of its ports opens part of it, not all.
        FlowProtocol::Ip(number) if Protocol::from_number(number).has_ports() => {
            port_points(rules.iter().copied(), inv, number)
                .into_iter()
                .map(|port| (number, Some(port), None))
                .collect()
        }
        FlowProtocol::Ip(number) => vec![(number, None, None)],
        FlowProtocol::All => {
            let mut points = Vec::new();
            let mut transports = BTreeSet::from([IPPROTO_TCP, IPPROTO_UDP]);
            for rule in rules {
                for (protocol, _) in services_of(rule, inv) {
                    transports.extend(protocol.number().filter(|_| protocol.has_ports()));
                }
            }
            for &protocol in &transports {
                let ports = port_points(rules.iter().copied(), inv, protocol);
                points.extend(ports.into_iter().map(|port| (protocol, Some(port), None)));
            }
            let mut types = BTreeSet::from([echo.0]);
            let mut codes = BTreeSet::from([0]);
            let mut numbers = BTreeSet::new();
            for rule in rules {
                if let Service::Ports { protocol, icmp, .. } = &rule.service {
                    types.extend(icmp.icmp_type);
                    codes.extend(icmp.code);
                    numbers.extend(protocol.number());
                }
                for (protocol, _) in services_of(rule, inv) {
                    numbers.extend(protocol.number());
                }
            }
            types.insert(first_missing(&types));
            codes.insert(first_missing(&codes));
            for t in &types {
                points.extend(codes.iter().map(|c| (icmp_number, None, Some((*t, *c)))));
            }
            numbers.insert(first_missing(&numbers));
            points.extend(
                numbers
                    .into_iter()
                    .filter(|n| {
                        !transports.contains(n) && ![IPPROTO_ICMP, IPPROTO_ICMPV6].contains(n)
                    })
                    .map(|n| (n, None, None)),
            );
            points
        }
    }
}

pub(super) fn first_missing(set: &BTreeSet<u8>) -> u8 {
    (0..=u8::MAX).find(|n| !set.contains(n)).unwrap_or(u8::MAX)
}

/// The CIDRs the rules name (resolved sets and group members included), for partitioning
/// the peer space.
pub(super) fn peer_cidrs(rules: &[&Rule], inv: &Inventory) -> Vec<IpNet> {
    let mut cidrs = Vec::new();
    for rule in rules {
        match &rule.peer {
            Peer::All => {}
            Peer::Cidr(net) => cidrs.push(*net),
            Peer::AddressSet(id) => {
                let members = inv.address_set_members(id);
                cidrs.extend(members.known.into_iter().chain(members.excluded));
            }
            Peer::Group(id) => cidrs.extend(
                inv.group_members(id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(IpNet::from),
            ),
            Peer::GroupPublic(id) => cidrs.extend(
                inv.group_public_members(id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(IpNet::from),
            ),
        }
    }
    cidrs
}

/// Ports where a layer's rules for `protocol` change: checking these and one inside each
/// stretch between them covers every port.
pub fn layer_port_points(
    inv: &Inventory,
    layer: &Layer,
    direction: Direction,
    protocol: u8,
) -> BTreeSet<u16> {
    port_points(layer.rules(direction).iter().copied(), inv, protocol)
}
