//! The rule to add so a flow that is not opened opens: in the cloud's own terms and as native
//! TOML. Pure: builds text, runs nothing.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::json;

use super::evaluate::{Predicted, Verdict};
use super::link::Layer;
use crate::model::{
    Action, Cloud, Decision, Direction, Flow, FlowPeer, FlowProtocol, Origin, Peer, Ports,
    Protocol, Rule, Service,
};
use crate::sources::native::render_rule;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remedy {
    /// The group to change.
    pub group: String,
    /// Where the rule goes, in words.
    pub placement: String,
    /// The cloud CLI command that adds it.
    pub command: String,
    /// The same rule as native TOML, for a native source.
    pub native: String,
}

/// The rule that would open a closed `flow`, placed so it decides before the rule that closes
/// it; `None` for any other verdict.
pub fn remedy(layers: &[Layer], flow: &Flow, verdict: &Verdict) -> Option<Remedy> {
    let layer = layers.get(verdict.decider.layer)?;
    // Partially opened flows are left alone: the accept rule is deliberate, and opening it to
    // everyone is not a fix anyone should copy by default.
    if verdict.predicted != Predicted::Closed {
        return None;
    }
    let decider = verdict.decider.rule;
    let group = decider
        .map_or(layer.groups[0], |r| r.origin.group.as_str())
        .to_string();
    let peer = match flow.peer {
        FlowPeer::Addr(addr) => IpNet::from(addr),
        FlowPeer::All => super::regions::space_of(flow.address),
    };
    let (protocol, ports) = match flow.spec.protocol {
        FlowProtocol::Tcp => (
            Protocol::Tcp,
            Ports::Ranges(vec![crate::model::PortRange::single(flow.spec.port?)]),
        ),
        FlowProtocol::Udp => (
            Protocol::Udp,
            Ports::Ranges(vec![crate::model::PortRange::single(flow.spec.port?)]),
        ),
        FlowProtocol::Icmp if flow.address.is_ipv6() => (Protocol::Icmpv6, Ports::All),
        FlowProtocol::Icmp => (Protocol::Icmp, Ports::All),
        FlowProtocol::All => (Protocol::All, Ports::All),
    };
    let (index, priority, placement) = match (layer.semantics.decision, decider) {
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
                .rules(flow.direction)
                .iter()
                .filter(|r| r.origin.group == group)
                .count();
            (count, None, format!("at the end of {group}"))
        }
        (Decision::Priority(_), Some(rule)) => {
            let p = rule.priority.unwrap_or(1);
            let note = if p <= 1 {
                format!(
                    " (rule {} already has priority {p}: raise its number first)",
                    rule.origin.index
                )
            } else {
                String::new()
            };
            (
                0,
                Some((p - 1).max(1)),
                format!(
                    "in {group} with priority {}, ahead of the {} rule at priority {p}{note}",
                    (p - 1).max(1),
                    rule.action
                ),
            )
        }
        (Decision::Priority(_), None) => (0, Some(1), format!("in {group} with any priority")),
        (Decision::AllowUnion, _) => (0, None, format!("in {group}")),
    };
    let rule = Rule {
        action: Action::Accept,
        service: Service::ports(protocol, ports),
        peer: Peer::Cidr(peer),
        priority,
        origin: Origin {
            group: group.clone(),
            index,
            id: None,
            description: Some(format!("sgprobe: open {}", flow.spec)),
        },
    };
    let command = command(
        layer.cloud,
        &group,
        flow.direction,
        &rule,
        flow.spec.port,
        peer,
    );
    Some(Remedy {
        group,
        placement,
        command,
        native: render_rule(&rule),
    })
}

fn command(
    cloud: Cloud,
    group: &str,
    direction: Direction,
    rule: &Rule,
    port: Option<u16>,
    peer: IpNet,
) -> String {
    let inbound = direction == Direction::Inbound;
    let Service::Ports { protocol, .. } = &rule.service else {
        return String::new();
    };
    let port_text = port.map_or("ALL".to_string(), |p| p.to_string());
    let v6 = matches!(peer.addr(), IpAddr::V6(_));
    let description = rule.origin.description.clone().unwrap_or_default();
    match cloud {
        Cloud::Tencent => {
            let mut policy = json!({
                "PolicyIndex": rule.origin.index,
                "Protocol": protocol.to_string().to_uppercase().replace("ICMPV6", "ICMPv6"),
                "Port": port_text,
                "Action": "ACCEPT",
                "PolicyDescription": description,
            });
            policy[if v6 { "Ipv6CidrBlock" } else { "CidrBlock" }] = json!(peer.to_string());
            let set = json!({ if inbound { "Ingress" } else { "Egress" }: [policy] });
            format!(
                "tccli vpc CreateSecurityGroupPolicies --SecurityGroupId {group} --SecurityGroupPolicySet '{set}'"
            )
        }
        Cloud::QingCloud => {
            let mut entry = json!({
                "protocol": protocol.to_string(),
                "priority": rule.priority.unwrap_or(1),
                "action": "accept",
                "direction": if inbound { 0 } else { 1 },
                "val3": peer.to_string(),
            });
            if let Some(port) = port {
                entry["val1"] = json!(port.to_string());
            }
            format!(
                "qingcloud iaas add-security-group-rules -s {group} -r '{}'",
                json!([entry])
            )
        }
        Cloud::OpenStack => {
            let dir = if inbound { "--ingress" } else { "--egress" };
            let port = port.map_or(String::new(), |p| format!(" --dst-port {p}"));
            let proto = if *protocol == Protocol::All {
                "any".to_string()
            } else {
                protocol.to_string()
            };
            format!(
                "openstack security group rule create {dir} --protocol {proto}{port} --remote-ip {peer} {group}"
            )
        }
        Cloud::Aws => {
            let verb = if inbound {
                "authorize-security-group-ingress"
            } else {
                "authorize-security-group-egress"
            };
            let proto = if *protocol == Protocol::All {
                "-1".to_string()
            } else {
                protocol.to_string()
            };
            let (from, to) = port.map_or((-1, -1), |p| (i32::from(p), i32::from(p)));
            let range = if v6 {
                format!("Ipv6Ranges=[{{CidrIpv6={peer}}}]")
            } else {
                format!("IpRanges=[{{CidrIp={peer}}}]")
            };
            format!(
                "aws ec2 {verb} --group-id {group} --ip-permissions 'IpProtocol={proto},FromPort={from},ToPort={to},{range}'"
            )
        }
        Cloud::AwsNacl => {
            let dir = if inbound { "--ingress" } else { "--egress" };
            let proto = if *protocol == Protocol::All {
                "-1".to_string()
            } else {
                protocol.number().map_or("-1".into(), |n| n.to_string())
            };
            let ports = port.map_or(String::new(), |p| format!(" --port-range From={p},To={p}"));
            let cidr = if v6 {
                "--ipv6-cidr-block"
            } else {
                "--cidr-block"
            };
            format!(
                "aws ec2 create-network-acl-entry --network-acl-id {group} {dir} --rule-number {} --protocol {proto}{ports} {cidr} {peer} --rule-action allow",
                rule.priority.unwrap_or(1)
            )
        }
        Cloud::Alibaba => {
            let verb = if inbound {
                "AuthorizeSecurityGroup"
            } else {
                "AuthorizeSecurityGroupEgress"
            };
            let range = port.map_or("-1/-1".to_string(), |p| format!("{p}/{p}"));
            let cidr = match (inbound, v6) {
                (true, false) => "--SourceCidrIp",
                (true, true) => "--Ipv6SourceCidrIp",
                (false, false) => "--DestCidrIp",
                (false, true) => "--Ipv6DestCidrIp",
            };
            format!(
                "aliyun ecs {verb} --SecurityGroupId {group} --IpProtocol {protocol} --PortRange {range} {cidr} {peer} --Policy accept --Priority {}",
                rule.priority.unwrap_or(1)
            )
        }
    }
}
