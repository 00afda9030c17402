//! Whether one rule matches one concrete packet: yes, no, or unknown where a reference
//! the exports lack would decide.

use std::net::IpAddr;

use super::Packet;
use crate::model::catalog::PROBE_SOURCE_PORTS;
use crate::model::{Inventory, Members, Peer, PortRange, Ports, Protocol, Rule, Service};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tri {
    Yes,
    No,
    Maybe,
}

impl Tri {
    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Maybe,
        }
    }
}

pub(super) fn yes_if(condition: bool) -> Tri {
    if condition { Tri::Yes } else { Tri::No }
}

pub(super) fn service_matches(
    protocol: Protocol,
    ports: &Ports,
    icmp: crate::model::IcmpMatch,
    p: &Packet,
) -> bool {
    if !protocol.matches(p.protocol) {
        return false;
    }
    match (p.port, p.icmp) {
        (Some(port), _) => ports.contains(port),
        (None, Some((t, c))) => icmp.matches(t, c),
        (None, None) => true,
    }
}

/// A rule's source-port condition, for a packet that has ports: exact for a known source
/// port; for sgprobe's own probes, which send from any of `PROBE_SOURCE_PORTS`, it matches if
/// it covers them all and not if it covers none; in between the answer depends on the port
/// drawn.
pub(super) fn source_port_matches(ports: &Ports, p: &Packet) -> Tri {
    if p.port.is_none() {
        return Tri::Yes;
    }
    match (ports, p.peer_port) {
        (Ports::All, _) => Tri::Yes,
        (_, Some(port)) => yes_if(ports.contains(port)),
        (Ports::Ranges(ranges), None) => {
            let range = PROBE_SOURCE_PORTS;
            let mut within: Vec<PortRange> = ranges
                .iter()
                .filter_map(|r| PortRange::new(r.first.max(range.first), r.last.min(range.last)))
                .collect();
            within.sort();
            // The union of the ranges within, counted once where they overlap.
            let mut covered = 0;
            let mut next = range.first;
            for r in within {
                let first = r.first.max(next);
                if first <= r.last {
                    covered += usize::from(r.last - first) + 1;
                }
                match r.last.checked_add(1) {
                    Some(after) => next = next.max(after),
                    None => break,
                }
            }
            let all = usize::from(range.last - range.first) + 1;
            match covered {
                0 => Tri::No,
                n if n == all => Tri::Yes,
                _ => Tri::Maybe,
            }
        }
    }
}

/// A known member matching decides; otherwise a missing member may. Likewise for what the
/// set excludes.
pub(super) fn member_matches<T>(members: Members<T>, matches: impl Fn(&T) -> bool) -> Tri {
    let within = |items: &[T], complete: bool| {
        if items.iter().any(&matches) {
            Tri::Yes
        } else if complete {
            Tri::No
        } else {
            Tri::Maybe
        }
    };
    let outside = match within(&members.excluded, members.excluded_complete) {
        Tri::Yes => Tri::No,
        Tri::No => Tri::Yes,
        Tri::Maybe => Tri::Maybe,
    };
    within(&members.known, members.complete).and(outside)
}

pub(super) fn rule_matches(inv: &Inventory, rule: &Rule, p: &Packet) -> Tri {
    let service = match &rule.service {
        Service::Ports {
            protocol,
            ports,
            icmp,
            source_ports,
        } => yes_if(service_matches(*protocol, ports, *icmp, p))
            .and(source_port_matches(source_ports, p)),
        Service::Template(id) => {
            member_matches(inv.service_set_members(id), |(protocol, ports)| {
                service_matches(*protocol, ports, Default::default(), p)
            })
        }
        Service::Unreadable(_) => Tri::Maybe,
    };
    if service == Tri::No {
        return Tri::No;
    }
    // The instance's side is matched as the cloud sees it, after NAT; only a rule for a
    // group's public addresses (Alibaba's classic `internet` NIC) names them as addressed.
    let local = match rule.local {
        Peer::GroupPublic(_) => p.addressed,
        _ => p.local,
    };
    service
        .and(address_matches(inv, &rule.peer, p.remote))
        .and(address_matches(inv, &rule.local, local))
}

pub(super) fn address_matches(inv: &Inventory, peer: &Peer, address: IpAddr) -> Tri {
    match peer {
        Peer::All => Tri::Yes,
        Peer::Cidr(net) => yes_if(net.contains(&address)),
        Peer::AddressSet(id) => {
            member_matches(inv.address_set_members(id), |n| n.contains(&address))
        }
        Peer::Group(id) => match inv.group_members(id) {
            Some(addrs) => yes_if(addrs.contains(&address)),
            None => Tri::Maybe,
        },
        Peer::GroupPublic(id) => match inv.group_public_members(id) {
            Some(addrs) => yes_if(addrs.contains(&address)),
            None => Tri::Maybe,
        },
    }
}
