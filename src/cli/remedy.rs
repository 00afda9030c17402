//! A remedy in the cloud's own terms: the CLI command that adds the rule. Builds text, runs
//! nothing.

use ipnet::IpNet;
use serde_json::json;

use crate::model::{Cloud, Direction, Peer, Ports, Protocol, Service};
use crate::policy::Remedy;

/// The cloud CLI command that adds the remedy's rule.
pub fn command(remedy: &Remedy) -> String {
    let rule = &remedy.rule;
    let group = &remedy.group;
    let inbound = remedy.direction == Direction::Inbound;
    let (
        Service::Ports {
            protocol,
            ports,
            icmp,
            ..
        },
        Peer::Cidr(peer),
    ) = (&rule.service, &rule.peer)
    else {
        return String::new();
    };
    let (icmp_type, icmp_code) = (icmp.icmp_type, icmp.code);
    let typed = icmp_type.is_some();
    let (protocol, peer) = (*protocol, *peer);
    let range = match ports {
        Ports::Ranges(ranges) if protocol.has_ports() => ranges.first().copied(),
        _ => None,
    };
    let v6 = matches!(peer, IpNet::V6(_));
    let description = rule.origin.description.clone().unwrap_or_default();
    let priority = rule.priority.unwrap_or(1);
    let command = match remedy.cloud {
        Cloud::Tencent => {
            let mut policy = json!({
                "PolicyIndex": rule.origin.index,
                "Protocol": protocol.to_string().to_uppercase().replace("ICMPV6", "ICMPv6"),
                "Port": range.map_or("ALL".to_string(), |r| r.to_string()),
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
                "priority": priority,
                "action": "accept",
                "direction": if inbound { 0 } else { 1 },
                "val3": peer.to_string(),
            });
            if let Some(range) = range {
                entry["val1"] = json!(range.first.to_string());
                entry["val2"] = json!(range.last.to_string());
            }
            if let Some(t) = icmp_type {
                entry["val1"] = json!(t.to_string());
                entry["val2"] = json!(icmp_code.map(|c| c.to_string()).unwrap_or_default());
            }
            format!(
                "qingcloud iaas add-security-group-rules -s {group} -r '{}'",
                json!([entry])
            )
        }
        Cloud::OpenStack => {
            let dir = if inbound { "--ingress" } else { "--egress" };
            let port = match (range, icmp_type) {
                (Some(r), _) => format!(" --dst-port {}", colon(r)),
                (None, Some(t)) => {
                    let code = icmp_code.map_or(String::new(), |c| format!(" --icmp-code {c}"));
                    format!(" --icmp-type {t}{code}")
                }
                (None, None) => String::new(),
            };
            let proto = if protocol == Protocol::All {
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
            let proto = if protocol == Protocol::All {
                "-1".to_string()
            } else {
                protocol.to_string()
            };
            let (from, to) = match range {
                Some(r) => (i32::from(r.first), i32::from(r.last)),
                // For ICMP, FromPort is the type and ToPort the code.
                None => (
                    icmp_type.map_or(-1, i32::from),
                    icmp_code.map_or(-1, i32::from),
                ),
            };
            let cidrs = if v6 {
                format!("Ipv6Ranges=[{{CidrIpv6={peer}}}]")
            } else {
                format!("IpRanges=[{{CidrIp={peer}}}]")
            };
            format!(
                "aws ec2 {verb} --group-id {group} --ip-permissions 'IpProtocol={proto},FromPort={from},ToPort={to},{cidrs}'"
            )
        }
        Cloud::AwsNacl => {
            let dir = if inbound { "--ingress" } else { "--egress" };
            let proto = protocol.number().map_or("-1".into(), |n| n.to_string());
            let ports = match (range, icmp_type) {
                (Some(r), _) => format!(" --port-range From={},To={}", r.first, r.last),
                (None, Some(t)) => format!(
                    " --icmp-type-code Type={t},Code={}",
                    icmp_code.map_or(-1, i32::from)
                ),
                (None, None) => String::new(),
            };
            let cidr = if v6 {
                "--ipv6-cidr-block"
            } else {
                "--cidr-block"
            };
            format!(
                "aws ec2 create-network-acl-entry --network-acl-id {group} {dir} --rule-number {priority} --protocol {proto}{ports} {cidr} {peer} --rule-action allow"
            )
        }
        Cloud::Azure => {
            // An NSG's id: /subscriptions/S/resourceGroups/RG/providers/.../networkSecurityGroups/NAME
            let parts: Vec<&str> = group.split('/').collect();
            let after = |key: &str| {
                parts
                    .iter()
                    .position(|p| p.eq_ignore_ascii_case(key))
                    .and_then(|i| parts.get(i + 1))
                    .copied()
            };
            let name = after("networkSecurityGroups").unwrap_or(group);
            let resource_group = after("resourceGroups").unwrap_or("<resource-group>");
            let proto = match protocol {
                Protocol::All => "*".to_string(),
                Protocol::Icmpv6 => "Icmp".to_string(),
                other => {
                    let name = other.to_string();
                    name[..1].to_uppercase() + &name[1..]
                }
            };
            let ports = range.map_or("*".to_string(), |r| r.to_string());
            let (address, direction) = if inbound {
                ("--source-address-prefixes", "Inbound")
            } else {
                ("--destination-address-prefixes", "Outbound")
            };
            format!(
                "az network nsg rule create --resource-group {resource_group} --nsg-name {name} --name sgprobe-{priority} --priority {priority} --direction {direction} --access Allow --protocol {proto} --destination-port-ranges {ports} {address} {peer}"
            )
        }
        Cloud::Alibaba => {
            let verb = if inbound {
                "AuthorizeSecurityGroup"
            } else {
                "AuthorizeSecurityGroupEgress"
            };
            let ports = range.map_or("-1/-1".to_string(), |r| format!("{}/{}", r.first, r.last));
            let cidr = match (inbound, v6) {
                (true, false) => "--SourceCidrIp",
                (true, true) => "--Ipv6SourceCidrIp",
                (false, false) => "--DestCidrIp",
                (false, true) => "--Ipv6DestCidrIp",
            };
            format!(
                "aliyun ecs {verb} --SecurityGroupId {group} --IpProtocol {protocol} --PortRange {ports} {cidr} {peer} --Policy accept --Priority {priority}"
            )
        }
    };
    let names_types = matches!(
        remedy.cloud,
        Cloud::Aws | Cloud::AwsNacl | Cloud::QingCloud | Cloud::OpenStack
    );
    if typed && !names_types {
        format!(
            "{command}  # opens every ICMP type: {} rules do not name one",
            remedy.cloud
        )
    } else {
        command
    }
}

/// OpenStack's spelling of a port range.
fn colon(range: crate::model::PortRange) -> String {
    if range.first == range.last {
        range.first.to_string()
    } else {
        format!("{}:{}", range.first, range.last)
    }
}
