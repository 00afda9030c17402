//! Tencent Cloud exports, as tccli prints them or as the raw API returns them
//! (`{"Response": ...}`): DescribeSecurityGroupPolicies, DescribeInstances, address templates
//! and template groups, service templates and template groups.

/// The exports this module reads, for `sgprobe import --help`.
pub(crate) const READS: &str = "DescribeSecurityGroupPolicies (needs --id), DescribeInstances, DescribeAddressTemplates, DescribeAddressTemplateGroups, DescribeServiceTemplates, DescribeServiceTemplateGroups";

use super::json::Node;
use super::unreadable::{self, Known};
use super::{SourceError, address_members, group_id, known_shape, service_entry};
use crate::model::{
    Action, AddressSet, Cloud, Direction, Instance, Inventory, Located, Origin, Peer, Ports,
    Protocol, Rule, SecurityGroup, Service, ServiceSet, parse_net,
};

pub fn import(root: &Node, id: Option<&str>) -> Result<Inventory, SourceError> {
    let mut inv = Inventory::default();
    let mut recognised = false;
    if root.has("SecurityGroupPolicySet") {
        recognised = true;
        let group = policies(root, &group_id(root, id, "SecurityGroupPolicySet")?)?;
        inv.insert_group(group);
    }
    if root.has("InstanceSet") {
        recognised = true;
        for item in root.get("InstanceSet").elements()? {
            let item = item.node();
            super::add_instance(&mut inv, root.file(), instance(&item)?)?;
        }
    }
    for (key, id_key, members_key, extra_key, include_key) in [
        (
            "AddressTemplateSet",
            "AddressTemplateId",
            "AddressSet",
            "AddressExtraSet",
            None,
        ),
        (
            "AddressTemplateGroupSet",
            "AddressTemplateGroupId",
            "",
            "",
            Some("AddressTemplateIdSet"),
        ),
    ] {
        for item in root.get(key).elements()? {
            let item = item.node();
            recognised = true;
            let mut set = AddressSet {
                id: item.get(id_key).required_text()?,
                name: item.get(&key.replace("Set", "Name")).text()?,
                ..AddressSet::default()
            };
            if !members_key.is_empty() {
                set.members = address_members(&item.get(members_key))?;
                for extra in item.get(extra_key).items()? {
                    set.members.extend(address_members(&extra.get("Address"))?);
                }
            }
            if let Some(include_key) = include_key {
                set.includes = item.get(include_key).texts()?;
            }
            inv.address_sets.insert(set.id.clone(), set);
        }
    }
    for item in root.get("ServiceTemplateSet").elements()? {
        let item = item.node();
        recognised = true;
        let mut set = ServiceSet {
            id: item.get("ServiceTemplateId").required_text()?,
            name: item.get("ServiceTemplateName").text()?,
            ..ServiceSet::default()
        };
        let mut entries: Vec<Node> = item.get("ServiceSet").items()?;
        for extra in item.get("ServiceExtraSet").items()? {
            entries.push(extra.get("Service"));
        }
        for entry in entries {
            set.services.extend(entry.parsed(
                "a service such as tcp:80 or udp:53-54 or icmp",
                service_entry,
            )?);
        }
        inv.service_sets.insert(set.id.clone(), set);
    }
    for item in root.get("ServiceTemplateGroupSet").elements()? {
        let item = item.node();
        recognised = true;
        let set = ServiceSet {
            id: item.get("ServiceTemplateGroupId").required_text()?,
            name: item.get("ServiceTemplateGroupName").text()?,
            includes: item.get("ServiceTemplateIdSet").texts()?,
            ..ServiceSet::default()
        };
        inv.service_sets.insert(set.id.clone(), set);
    }
    known_shape(
        root,
        recognised,
        "a Tencent export: SecurityGroupPolicySet, InstanceSet, AddressTemplateSet, AddressTemplateGroupSet, ServiceTemplateSet or ServiceTemplateGroupSet",
    )?;
    Ok(inv)
}

fn policies(root: &Node, id: &str) -> Result<SecurityGroup, SourceError> {
    let set = root.get("SecurityGroupPolicySet");
    let mut group = SecurityGroup::new(id, Cloud::Tencent);
    for (direction, key) in [
        (Direction::Inbound, "Ingress"),
        (Direction::Outbound, "Egress"),
    ] {
        let listed = match set.get(key).items() {
            Ok(listed) => listed,
            Err(error) => {
                unreadable::add(&mut group, Ok(direction), 0, Known::default(), |_| {
                    Err(error)
                });
                continue;
            }
        };
        let mut items = Vec::new();
        for (position, item) in listed.into_iter().enumerate() {
            // Tencent decides in PolicyIndex order: one that does not read leaves the rule's
            // place unknown, and the rule stands as unreadable at its place in the list.
            let node = item.get("PolicyIndex");
            let index = match node.int() {
                Ok(None) => Ok(position),
                Ok(Some(i)) => usize::try_from(i).map_err(|_| node.error("an index 0 or more")),
                Err(error) => Err(error),
            };
            items.push((index.as_ref().map_or(position, |i| *i), index.err(), item));
        }
        items.sort_by_key(|(index, _, _)| *index);
        for (index, unplaced, item) in items {
            let known = Known::read(&item, ["Action", "", "PolicyId", "PolicyDescription"]);
            unreadable::add(
                &mut group,
                Ok(direction),
                index,
                known,
                |_| match unplaced {
                    Some(error) => Err(error),
                    None => policy(&item, id, index).map(|rule| vec![rule]),
                },
            );
        }
    }
    Ok(group)
}

fn policy(item: &Node, group: &str, index: usize) -> Result<Rule, SourceError> {
    let action = item
        .get("Action")
        .required("ACCEPT or DROP", Action::parse)?;
    let template = item.get("ServiceTemplate");
    let service = match (
        template.get("ServiceId").text()?,
        template.get("ServiceGroupId").text()?,
    ) {
        (Some(id), _) | (None, Some(id)) => Service::Template(id),
        (None, None) => {
            let port = item.get("Port");
            let protocol = match item.get("Protocol").parsed(
                "TCP, UDP, ICMP, ICMPv6, ALL or a protocol number",
                Protocol::parse,
            )? {
                Some(protocol) => protocol,
                // A port without a protocol is a malformed rule, not "all protocols".
                None if port.text()?.is_some_and(|t| !t.eq_ignore_ascii_case("all")) => {
                    return Err(item
                        .get("Protocol")
                        .error("a protocol (TCP or UDP) for the port given"));
                }
                None => Protocol::All,
            };
            // The API documents ALL, a port, a list and a range; "-1" is none of them (other
            // clouds' "all" is not Tencent's).
            let ports = port.required("ALL, a port, a list or a range such as 3306-20000", |t| {
                (t.trim() != "-1").then(|| Ports::parse(t)).flatten()
            });
            let ports = if protocol.has_ports() {
                ports?
            } else {
                Ports::All
            };
            Service::ports(protocol, ports)
        }
    };
    let address = item.get("AddressTemplate");
    let peer = if let Some(cidr) = item.get("CidrBlock").parsed("an IPv4 CIDR", cidr_block)? {
        Peer::Cidr(cidr)
    } else if let Some(cidr) = item
        .get("Ipv6CidrBlock")
        .parsed("an IPv6 CIDR", parse_net)?
    {
        Peer::Cidr(cidr)
    } else if let Some(sg) = item.get("SecurityGroupId").text()? {
        Peer::Group(sg)
    } else if let Some(set) = address
        .get("AddressId")
        .text()?
        .or(address.get("AddressGroupId").text()?)
    {
        Peer::AddressSet(set)
    } else {
        return Err(item.error(
            "a source or destination: CidrBlock, Ipv6CidrBlock, SecurityGroupId or AddressTemplate",
        ));
    };
    Ok(Rule {
        action,
        service,
        peer,
        local: Peer::All,
        priority: None,
        origin: Origin {
            group: group.into(),
            index,
            id: item.get("PolicyId").text()?,
            description: item.get("PolicyDescription").text()?,
        },
    })
}

/// An IPv4 CidrBlock as Tencent reads it: its API model documents that any `0.0.0.0/n` is
/// treated as `0.0.0.0/0`.
fn cidr_block(text: &str) -> Option<ipnet::IpNet> {
    let net = parse_net(text)?;
    Some(match net {
        ipnet::IpNet::V4(v4) if v4.network().is_unspecified() => {
            ipnet::IpNet::V4(ipnet::Ipv4Net::default())
        }
        other => other,
    })
}

fn instance(item: &Node) -> Result<Instance, SourceError> {
    let id = item.get("InstanceId").required_text()?;
    let name = item
        .get("InstanceName")
        .text()?
        .unwrap_or_else(|| id.clone());
    let mut instance = Instance::new(name, item.place());
    instance.id = Some(id);
    // IPv6 addresses sit on the interface; public IPv4 addresses are NAT'd to it, and a
    // group reference covers "all private IPs of all CVMs under the security group" only.
    for (key, public) in [
        ("PrivateIpAddresses", false),
        ("IPv6Addresses", false),
        ("PublicIpAddresses", true),
    ] {
        for address in item.get(key).items()? {
            let into = if public {
                &mut instance.public_addresses
            } else {
                &mut instance.addresses
            };
            into.extend(address.address()?);
        }
    }
    instance.vpc = item.get("VirtualPrivateCloud").get("VpcId").text()?;
    for group in item.get("SecurityGroupIds").items()? {
        instance.security_groups.push(Located {
            value: group.required_text()?,
            at: group.place(),
        });
    }
    instance
        .labels
        .extend(item.get("Tags").pairs("Key", "Value")?);
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{Peer, Rule};
    use crate::sources::{Format, parse};

    fn ingress(policy: &str) -> Result<Vec<Rule>, String> {
        let text = format!("{{\"SecurityGroupPolicySet\": {{\"Ingress\": [{policy}]}}}}");
        parse(Format::Tencent, Path::new("t.json"), &text, Some("sg-1"))
            .map(|inv| inv.groups["sg-1"].ingress.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn any_0_0_0_0_slash_n_is_read_as_0_0_0_0_slash_0() {
        // Tencent Cloud API 3.0, data structure SecurityGroupPolicy, field CidrBlock: any
        // 0.0.0.0/n is treated as 0.0.0.0/0 (the field's description as quoted to us; the
        // stored copies of the page show only its general text).
        let rules = ingress(
            r#"{"Protocol": "TCP", "Port": "22", "CidrBlock": "0.0.0.0/8", "Action": "DROP"}"#,
        )
        .expect("valid");
        assert_eq!(rules[0].peer, Peer::Cidr("0.0.0.0/0".parse().expect("net")));
        let rules = ingress(
            r#"{"Protocol": "TCP", "Port": "22", "CidrBlock": "10.0.0.0/8", "Action": "DROP"}"#,
        )
        .expect("valid");
        assert_eq!(
            rules[0].peer,
            Peer::Cidr("10.0.0.0/8".parse().expect("net"))
        );
    }

    #[test]
    fn malformed_ports_and_protocols_are_errors_not_all() {
        // Tencent Cloud API 3.0, CreateSecurityGroupPolicies (api/215/15807): Protocol is one of
        // TCP, UDP, ICMP, ICMPV6, GRE and ALL; Port a single port ("80") or a range
        // ("8000-8010"), only with TCP or UDP; ALL or lists as DescribeSecurityGroupPolicies
        // prints them.
        let error = ingress(
            r#"{"Protocol": "TCP", "Port": "-1", "CidrBlock": "10.0.0.0/8", "Action": "ACCEPT"}"#,
        )
        .expect_err("-1 is not a Tencent port");
        assert!(
            error.contains("$.SecurityGroupPolicySet.Ingress[0].Port"),
            "{error}"
        );
        let error = ingress(r#"{"Port": "22", "CidrBlock": "10.0.0.0/8", "Action": "ACCEPT"}"#)
            .expect_err("a port without a protocol");
        assert!(
            error.contains("Ingress[0].Protocol: expected a protocol"),
            "{error}"
        );
        assert!(
            ingress(r#"{"Port": "ALL", "CidrBlock": "10.0.0.0/8", "Action": "ACCEPT"}"#).is_ok(),
            "no protocol and all ports: all traffic"
        );
    }
}
