//! AWS CLI output: describe-security-groups, describe-security-group-rules,
//! describe-instances, get-managed-prefix-list-entries, describe-network-acls,
//! describe-subnets.
//!
//! Security groups allow only; ports are FromPort..ToPort, with -1 (or absent) for all; for
//! ICMP, FromPort is the type and ToPort the code, -1 any. Network ACLs are ordered lists of
//! allow and deny entries by RuleNumber (32767 is the `*` entry that denies the rest), one
//! list per direction, associated with subnets.

use super::json::Node;
use super::{FlatRules, SourceError, address_members, group_id, known_shape};
use crate::model::{
    Action, AddressSet, Cloud, Direction, Instance, Inventory, Located, Origin, Peer, PortRange,
    Ports, Protocol, Rule, SecurityGroup, Service, Subnet, parse_net,
};

pub fn import(root: &Node, id: Option<&str>) -> Result<Inventory, SourceError> {
    let mut inv = Inventory::default();
    let mut recognised = false;
    if root.has("SecurityGroups") {
        recognised = true;
        for item in root.get("SecurityGroups").elements()? {
            let item = item.node();
            let group = security_group(&item)?;
            inv.groups.insert(group.id.clone(), group);
        }
    }
    if root.has("SecurityGroupRules") {
        recognised = true;
        let mut flat = FlatRules::new(Cloud::Aws);
        for item in root.get("SecurityGroupRules").elements()? {
            let item = item.node();
            let group_id = item.get("GroupId").required_text()?;
            let direction = egress_flag(&item.get("IsEgress"))?;
            let origin = Origin {
                group: group_id.clone(),
                index: flat.next_index(&group_id, direction),
                id: item.get("SecurityGroupRuleId").text()?,
                description: item.get("Description").text()?,
            };
            let peer = if let Some(net) = item.get("CidrIpv4").parsed("an IPv4 CIDR", parse_net)? {
                Peer::Cidr(net)
            } else if let Some(net) = item.get("CidrIpv6").parsed("an IPv6 CIDR", parse_net)? {
                Peer::Cidr(net)
            } else if let Some(list) = item.get("PrefixListId").text()? {
                Peer::AddressSet(list)
            } else if let Some(group) = item.get("ReferencedGroupInfo").get("GroupId").text()? {
                Peer::Group(group)
            } else {
                return Err(
                    item.error("a peer: CidrIpv4, CidrIpv6, PrefixListId or ReferencedGroupInfo")
                );
            };
            let rule = Rule {
                action: Action::Accept,
                service: service(&item)?,
                peer,
                local: Peer::All,
                priority: None,
                origin,
            };
            flat.add(&mut inv, direction, rule);
        }
    }
    if root.has("Reservations") {
        recognised = true;
        for reservation in root.get("Reservations").elements()? {
            let reservation = reservation.node();
            for item in reservation.get("Instances").items()? {
                inv.add_instance(instance(&item)?);
            }
        }
    }
    if root.has("NetworkAcls") {
        recognised = true;
        for item in root.get("NetworkAcls").elements()? {
            let item = item.node();
            let acl = network_acl(&item)?;
            for association in item.get("Associations").items()? {
                inv.add_subnet(Subnet {
                    id: association.get("SubnetId").required_text()?,
                    cidrs: Vec::new(),
                    layers: vec![acl.id.clone()],
                });
            }
            inv.groups.insert(acl.id.clone(), acl);
        }
    }
    if root.has("Subnets") {
        recognised = true;
        for item in root.get("Subnets").elements()? {
            let item = item.node();
            let mut cidrs: Vec<_> = item
                .get("CidrBlock")
                .parsed("a CIDR", parse_net)?
                .into_iter()
                .collect();
            for block in item.get("Ipv6CidrBlockAssociationSet").items()? {
                cidrs.extend(
                    block
                        .get("Ipv6CidrBlock")
                        .parsed("an IPv6 CIDR", parse_net)?,
                );
            }
            inv.add_subnet(Subnet {
                id: item.get("SubnetId").required_text()?,
                cidrs,
                layers: Vec::new(),
            });
        }
    }
    if root.has("Entries") {
        recognised = true;
        let set = AddressSet {
            id: group_id(root, id, "a prefix list's entries")?,
            members: root
                .get("Entries")
                .elements()?
                .map(|e| address_members(&e.node().get("Cidr")))
                .collect::<Result<Vec<_>, _>>()?
                .concat(),
            ..AddressSet::default()
        };
        inv.address_sets.insert(set.id.clone(), set);
    }
    known_shape(
        root,
        recognised,
        "an AWS CLI output: SecurityGroups, SecurityGroupRules, Reservations, Entries, NetworkAcls or Subnets",
    )?;
    Ok(inv)
}

fn service(item: &Node) -> Result<Service, SourceError> {
    let protocol = item.get("IpProtocol").required(
        "tcp, udp, icmp, icmpv6, -1 or a protocol number",
        Protocol::parse,
    )?;
    let bound = |key: &str| -> Result<Option<u16>, SourceError> {
        let node = item.get(key);
        match node.int()? {
            None | Some(-1) => Ok(None),
            Some(v) => u16::try_from(v)
                .map(Some)
                .map_err(|_| node.error("a port 0-65535 or -1")),
        }
    };
    let (from, to) = (bound("FromPort")?, bound("ToPort")?);
    // AWS lists FromPort and ToPort for every TCP or UDP permission: one without them is
    // malformed, not "all ports".
    if matches!(protocol, Protocol::Tcp | Protocol::Udp)
        && item.get("FromPort").is_unset()
        && item.get("ToPort").is_unset()
    {
        return Err(item
            .get("FromPort")
            .error("a port: FromPort and ToPort for tcp or udp"));
    }
    Ok(match protocol {
        Protocol::Tcp | Protocol::Udp => {
            let ports = match (from, to) {
                (Some(first), Some(last)) => {
                    Ports::from_ranges(vec![PortRange::new(first, last).ok_or_else(|| {
                        item.get("ToPort").error("a port no lower than FromPort")
                    })?])
                }
                _ => Ports::All,
            };
            Service::ports(protocol, ports)
        }
        Protocol::Icmp | Protocol::Icmpv6 => {
            let byte = |v: Option<u16>, key| {
                v.map(|v| {
                    u8::try_from(v)
                        .map_err(|_| item.get(key).error("an ICMP type or code 0-255 or -1"))
                })
                .transpose()
            };
            Service::icmp(protocol, byte(from, "FromPort")?, byte(to, "ToPort")?)
        }
        _ => Service::ports(protocol, Ports::All),
    })
}

/// `IsEgress` / `Egress`: true for the outbound list.
fn egress_flag(node: &Node) -> Result<Direction, SourceError> {
    let egress = node.required("true or false", |t| {
        t.to_ascii_lowercase().parse::<bool>().ok()
    })?;
    Ok(if egress {
        Direction::Outbound
    } else {
        Direction::Inbound
    })
}

/// A network ACL as one stateless layer: entries by RuleNumber, lowest first.
fn network_acl(item: &Node) -> Result<SecurityGroup, SourceError> {
    let id = item.get("NetworkAclId").required_text()?;
    let mut acl = SecurityGroup::new(&id, Cloud::AwsNacl);
    let mut counted = [0, 0];
    for entry in item.get("Entries").items()? {
        let direction = egress_flag(&entry.get("Egress"))?;
        let egress = direction == Direction::Outbound;
        let number = entry.get("RuleNumber");
        let priority = number.required("a rule number 1-32767", |t| {
            t.parse::<i64>().ok().filter(|n| (1..=32767).contains(n))
        })?;
        let action = entry
            .get("RuleAction")
            .required("allow or deny", Action::parse)?;
        let peer = match (
            entry.get("CidrBlock").parsed("an IPv4 CIDR", parse_net)?,
            entry
                .get("Ipv6CidrBlock")
                .parsed("an IPv6 CIDR", parse_net)?,
        ) {
            (Some(net), None) | (None, Some(net)) => Peer::Cidr(net),
            _ => return Err(entry.error("one of CidrBlock or Ipv6CidrBlock")),
        };
        let index = &mut counted[usize::from(egress)];
        acl.rules_mut(direction).push(Rule {
            action,
            service: acl_service(&entry)?,
            peer,
            local: Peer::All,
            priority: Some(priority),
            origin: Origin {
                group: id.clone(),
                index: *index,
                id: Some(if priority == 32767 {
                    "*".to_string()
                } else {
                    priority.to_string()
                }),
                description: None,
            },
        });
        *index += 1;
    }
    Ok(acl)
}

/// An ACL entry's protocol (a number as text, -1 all) with its PortRange or IcmpTypeCode,
/// which EC2 requires for TCP and UDP, and for ICMP.
fn acl_service(entry: &Node) -> Result<Service, SourceError> {
    let protocol = entry
        .get("Protocol")
        .required("a protocol number or -1", Protocol::parse)?;
    let bound = |node: Node| -> Result<Option<i64>, SourceError> {
        match node.int()? {
            None | Some(-1) => Ok(None),
            Some(v) if (0..=65535).contains(&v) => Ok(Some(v)),
            Some(_) => Err(node.error("0-65535 or -1")),
        }
    };
    Ok(match protocol {
        Protocol::Tcp | Protocol::Udp => {
            let range = entry.get("PortRange");
            if range.is_unset() {
                return Err(range.error("a PortRange {From, To}, required for TCP and UDP"));
            }
            let (from, to) = (bound(range.get("From"))?, bound(range.get("To"))?);
            let (Some(from), Some(to)) = (from, to) else {
                return Err(range.error("From and To ports"));
            };
            let ports = PortRange::new(from as u16, to as u16)
                .ok_or_else(|| range.get("To").error("a port no lower than From"))?;
            Service::ports(protocol, Ports::from_ranges(vec![ports]))
        }
        Protocol::Icmp | Protocol::Icmpv6 => {
            let codes = entry.get("IcmpTypeCode");
            if protocol == Protocol::Icmp && codes.is_unset() {
                return Err(codes.error("an IcmpTypeCode {Type, Code}, required for ICMP"));
            }
            let byte = |node: Node| -> Result<Option<u8>, SourceError> {
                bound(node.clone())?
                    .map(|v| u8::try_from(v).map_err(|_| node.error("0-255 or -1")))
                    .transpose()
            };
            Service::icmp(protocol, byte(codes.get("Type"))?, byte(codes.get("Code"))?)
        }
        _ => Service::ports(protocol, Ports::All),
    })
}

fn security_group(item: &Node) -> Result<SecurityGroup, SourceError> {
    let id = item.get("GroupId").required_text()?;
    let mut group = SecurityGroup::new(&id, Cloud::Aws);
    group.name = item.get("GroupName").text()?;
    for (direction, key) in [
        (Direction::Inbound, "IpPermissions"),
        (Direction::Outbound, "IpPermissionsEgress"),
    ] {
        for (index, permission) in item.get(key).items()?.into_iter().enumerate() {
            let service = service(&permission)?;
            // One permission lists many peers; each becomes a rule with the permission's index.
            let mut peers = Vec::new();
            for (list, field, peer) in [
                ("IpRanges", "CidrIp", None),
                ("Ipv6Ranges", "CidrIpv6", None),
                (
                    "PrefixListIds",
                    "PrefixListId",
                    Some(Peer::AddressSet as fn(String) -> Peer),
                ),
                (
                    "UserIdGroupPairs",
                    "GroupId",
                    Some(Peer::Group as fn(String) -> Peer),
                ),
            ] {
                for entry in permission.get(list).items()? {
                    let value = entry.get(field);
                    let parsed = match peer {
                        None => Peer::Cidr(value.required("a CIDR", parse_net)?),
                        Some(make) => make(value.required_text()?),
                    };
                    peers.push((parsed, entry.get("Description").text()?));
                }
            }
            for (peer, description) in peers {
                group.rules_mut(direction).push(Rule {
                    action: Action::Accept,
                    service: service.clone(),
                    peer,
                    local: Peer::All,
                    priority: None,
                    origin: Origin {
                        group: id.clone(),
                        index,
                        id: None,
                        description,
                    },
                });
            }
        }
    }
    Ok(group)
}

fn instance(item: &Node) -> Result<Instance, SourceError> {
    let id = item.get("InstanceId").required_text()?;
    let mut name = None;
    let mut instance = Instance::new(&id, item.place());
    for (key, value) in item.get("Tags").pairs("Key", "Value")? {
        if key == "Name" && !value.is_empty() {
            name = Some(value.clone());
        }
        instance.labels.insert(key, value);
    }
    if let Some(name) = name {
        instance.name = name;
    }
    instance.id = Some(id);
    let mut addresses = Vec::new();
    for key in ["PrivateIpAddress", "Ipv6Address"] {
        addresses.extend(item.get(key).address()?);
    }
    // A public or Elastic IP is NAT'd to the instance: a group reference never matches it.
    instance
        .public_addresses
        .extend(item.get("PublicIpAddress").address()?);
    for interface in item.get("NetworkInterfaces").items()? {
        for private in interface.get("PrivateIpAddresses").items()? {
            addresses.extend(private.get("PrivateIpAddress").address()?);
            let public = private.get("Association").get("PublicIp").address()?;
            if let Some(public) = public.filter(|p| !instance.public_addresses.contains(p)) {
                instance.public_addresses.push(public);
            }
        }
        for v6 in interface.get("Ipv6Addresses").items()? {
            addresses.extend(v6.get("Ipv6Address").address()?);
        }
    }
    for address in addresses {
        if !instance.addresses.contains(&address) {
            instance.addresses.push(address);
        }
    }
    instance.vpc = item.get("VpcId").text()?;
    let subnet = item.get("SubnetId");
    if let Some(value) = subnet.text()? {
        instance.subnet = Some(Located {
            value,
            at: subnet.place(),
        });
    }
    for group in item.get("SecurityGroups").items()? {
        let node = group.get("GroupId");
        instance.security_groups.push(Located {
            value: node.required_text()?,
            at: node.place(),
        });
    }
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::sources::{Format, parse};

    #[test]
    fn a_tcp_permission_without_ports_is_an_error_not_all_ports() {
        // EC2 API, IpPermission: FromPort/ToPort give the port range of a tcp or udp
        // permission; describe-security-groups prints them for every such permission.
        let text = r#"{"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [{"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}], "IpPermissionsEgress": []}]}"#;
        let error = parse(Format::Aws, Path::new("a.json"), text, None)
            .expect_err("malformed")
            .to_string();
        assert!(
            error.contains("IpPermissions[0].FromPort: expected a port"),
            "{error}"
        );
        let all = r#"{"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}], "IpPermissionsEgress": []}]}"#;
        assert!(
            parse(Format::Aws, Path::new("a.json"), all, None).is_ok(),
            "-1: all traffic"
        );
    }
}
