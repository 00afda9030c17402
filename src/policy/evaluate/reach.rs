//! Reach and drops: whether a rule ever decides, and where a layer alone drops.

use std::net::IpAddr;

use ipnet::IpNet;

use super::layer::{State, alone};
use super::matching::{Tri, rule_matches};
use super::points::{peer_cidrs, service_points};
use super::{Decider, Packet};
use crate::model::{Direction, Flow, FlowPeer, FlowProtocol, Inventory, Rule};
use crate::policy::link::Layer;
use crate::policy::regions::{regions, space_of};

/// Whether a rule decides some packet of its layer (`Decides`), or other rules always decide
/// first (`Shadowed`, naming the one deciding where the rule would), or unresolved references
/// make it impossible to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach<'a> {
    Decides,
    Shadowed(Decider<'a>),
    Unresolved,
}

/// Walks every region of peer and service space the rule matches and asks who decides there.
pub fn reach<'a>(
    inv: &'a Inventory,
    layer: &Layer<'a>,
    direction: Direction,
    rule: &Rule,
) -> Reach<'a> {
    let rules = layer.rules(direction);
    let mut shadowed_by = None;
    for family in ["0.0.0.0", "::"] {
        let address: IpAddr = family.parse().expect("valid literal");
        let flow = Flow {
            address,
            direction,
            spec: crate::model::FlowSpec {
                protocol: FlowProtocol::All,
                port: None,
            },
            peer: FlowPeer::All,
            peer_port: None,
        };
        let cidrs: Vec<IpNet> = peer_cidrs(rules, inv)
            .into_iter()
            .filter(|c| c.addr().is_ipv6() == address.is_ipv6())
            .collect();
        for region in regions(space_of(address), &cidrs) {
            for (protocol, port, icmp) in service_points(&flow, rules, inv) {
                let packet = Packet {
                    direction,
                    protocol,
                    port,
                    icmp,
                    remote: region.network(),
                    local: address,
                    addressed: address,
                    peer_port: None,
                };
                match rule_matches(inv, rule, &packet) {
                    Tri::No => continue,
                    Tri::Maybe => return Reach::Unresolved,
                    Tri::Yes => {}
                }
                let (state, decider) = alone(inv, layer, &packet);
                if decider.rule.is_some_and(|r| std::ptr::eq(r, rule)) {
                    return Reach::Decides;
                }
                if matches!(state, State::Unknown | State::Ambiguous) {
                    return Reach::Unresolved;
                }
                shadowed_by.get_or_insert(decider);
            }
        }
    }
    // A rule that matches nothing at all (say, an IPv6 CIDR on ICMP) is shadowed by nothing.
    shadowed_by.map_or(Reach::Decides, Reach::Shadowed)
}

/// Where one layer, alone, drops a packet of `protocol` to `port` in `direction`: the peer
/// regions of the family that the layer's rules (or its default) drop, each with what
/// decided. Regions whose verdict depends on references the exports lack are left out.
pub fn layer_drops<'a>(
    inv: &'a Inventory,
    layer: &Layer<'a>,
    direction: Direction,
    protocol: u8,
    port: u16,
    v6: bool,
) -> Vec<(IpNet, Decider<'a>)> {
    let local: IpAddr = if v6 { "::" } else { "0.0.0.0" }
        .parse()
        .expect("valid literal");
    let cidrs: Vec<IpNet> = peer_cidrs(layer.rules(direction), inv)
        .into_iter()
        .filter(|c| c.addr().is_ipv6() == v6)
        .collect();
    let mut drops = Vec::new();
    for region in regions(space_of(local), &cidrs) {
        let packet = Packet {
            direction,
            protocol,
            port: Some(port),
            icmp: None,
            remote: region.network(),
            local,
            addressed: local,
            peer_port: None,
        };
        let (state, decider) = alone(inv, layer, &packet);
        if state == State::Closed {
            drops.push((region, decider));
        }
    }
    drops
}
