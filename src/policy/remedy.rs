//! The rule to add so a flow that is not opened opens, and where it goes. Pure: the CLI
//! renders it in the cloud's own terms.

use ipnet::IpNet;

use super::evaluate::{Predicted, Verdict};
use super::link::Layer;
use crate::model::{
    Action, Cloud, Decision, Direction, Flow, FlowPeer, FlowProtocol, Origin, Peer, PortRange,
    Ports, Protocol, Rule, Service,
};

/// The return range the AWS VPC documentation recommends opening for replies: every
/// client's ephemeral ports.
const RETURN_PORTS: PortRange = PortRange {
    first: 1024,
    last: 65535,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remedy {
    pub cloud: Cloud,
    /// The group (layer object) to change.
    pub group: String,
    /// The list the rule joins: the flow's own direction, or the reverse for a reply.
    pub direction: Direction,
    /// The rule, with the index or priority that places it.
    pub rule: Rule,
    /// Where the rule goes, in words.
    pub placement: String,
}

/// A deny of everything from everywhere: a layer's default written as a rule.
fn catch_all(rule: &Rule) -> bool {
    let everywhere = match rule.peer {
        Peer::All => true,
        Peer::Cidr(net) => net.prefix_len() == 0,
        _ => false,
    };
    everywhere
        && matches!(
            &rule.service,
            Service::Ports {
                protocol: Protocol::All,
                ports: Ports::All,
                ..
            }
        )
}

/// The rule that would open a closed `flow`, placed so it decides before the rule that closes
/// it (on the reply's list, where a stateless layer dropped the reply); `None` for any other
/// verdict.
pub fn remedy(layers: &[Layer], flow: &Flow, verdict: &Verdict) -> Option<Remedy> {
    let layer = layers.get(verdict.decider.layer)?;
    // Partially opened flows are left alone: the accept rule is deliberate, and opening it to
    // everyone is not a fix anyone should copy by default.
    if verdict.predicted != Predicted::Closed {
        return None;
    }
    // A deny someone wrote closes the flow on purpose: only a flow no rule allows, closed by
    // a default (or a catch-all deny such as a network ACL's `*`), gets a rule to add.
    if verdict
        .decider
        .rule
        .is_some_and(|r| r.action == Action::Drop && !catch_all(r))
    {
        return None;
    }
    // No rule opens what the cloud never carries.
    let number = flow.spec.protocol.number(flow.address);
    if layers.iter().any(|l| {
        l.cloud
            .never_carried()
            .iter()
            .any(|(_, n)| Some(*n) == number)
    }) {
        return None;
    }
    let reply = verdict.decider.reply;
    let direction = if reply {
        flow.direction.reverse()
    } else {
        flow.direction
    };
    let decider = verdict.decider.rule;
    let group = decider
        .map_or(layer.groups[0], |r| &*r.origin.group)
        .to_string();
    let peer = match flow.peer {
        FlowPeer::Addr(addr) => IpNet::from(addr),
        FlowPeer::All => super::regions::space_of(flow.address),
    };
    let port = |port: Option<u16>| -> Option<Ports> {
        let range = if reply {
            flow.peer_port.map_or(RETURN_PORTS, PortRange::single)
        } else {
            PortRange::single(port?)
        };
        Some(Ports::Ranges(vec![range]))
    };
    let icmp = |v6: bool, icmp_type, code| {
        let protocol = if v6 { Protocol::Icmpv6 } else { Protocol::Icmp };
        Service::icmp(protocol, Some(icmp_type), code)
    };
    let service = match flow.spec.protocol {
        FlowProtocol::Tcp => Service::ports(Protocol::Tcp, port(flow.spec.port)?),
        FlowProtocol::Udp => Service::ports(Protocol::Udp, port(flow.spec.port)?),
        // The reply to an echo request is an echo reply (0, ICMPv6 129).
        FlowProtocol::Icmp if reply => {
            let v6 = flow.address.is_ipv6();
            icmp(v6, if v6 { 129 } else { 0 }, None)
        }
        FlowProtocol::Icmp if flow.address.is_ipv6() => {
            Service::ports(Protocol::Icmpv6, Ports::All)
        }
        FlowProtocol::Icmp => Service::ports(Protocol::Icmp, Ports::All),
        FlowProtocol::IcmpMessage {
            v6,
            icmp_type,
            code,
        } => icmp(v6, icmp_type, code),
        FlowProtocol::Ip(number) => Service::ports(Protocol::from_number(number), Ports::All),
        FlowProtocol::All => Service::ports(Protocol::All, Ports::All),
    };
    let (index, priority, mut placement) = match (layer.semantics.decision, decider) {
        (Decision::FirstMatch, Some(rule)) => (
            rule.origin.index,
            None,
            format!(
                "at index {} of {group}, before the {} rule there",
                rule.origin.index, rule.action
            ),
        ),
        (Decision::FirstMatch, None) => {
            let count = layer
                .rules(direction)
                .iter()
                .filter(|r| *r.origin.group == *group)
                .count();
            (count, None, format!("at the end of {group}"))
        }
        (Decision::Priority(_), Some(rule)) => {
            let p = rule.priority.unwrap_or(1);
            let allowed = layer.cloud.custom_priorities();
            let target = (p - 1).clamp(*allowed.start(), *allowed.end());
            let note = if target >= p {
                format!(
                    " (rule {} already has priority {p}: raise its number first)",
                    rule.origin.index
                )
            } else {
                String::new()
            };
            (
                0,
                Some(target),
                format!(
                    "in {group} with priority {target}, ahead of the {} rule at priority {p}{note}",
                    rule.action
                ),
            )
        }
        (Decision::Priority(_), None) => (
            0,
            Some(*layer.cloud.custom_priorities().end()),
            format!("in {group} with any priority"),
        ),
        (Decision::AllowUnion, _) => (0, None, format!("in {group}")),
    };
    if reply {
        placement = format!(
            "for the reply ({} is stateless), {direction}, {placement}",
            layer.cloud
        );
    }
    let rule = Rule {
        action: Action::Accept,
        service,
        peer: Peer::Cidr(peer),
        local: Peer::All,
        priority,
        origin: Origin {
            group: group.as_str().into(),
            index,
            id: None,
            description: Some(format!("sgprobe: open {}", flow.spec)),
        },
    };
    Some(Remedy {
        cloud: layer.cloud,
        group,
        direction,
        rule,
        placement,
    })
}
