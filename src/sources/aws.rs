//! AWS CLI output: describe-security-groups, describe-security-group-rules,
//! describe-instances, get-managed-prefix-list-entries, describe-network-acls,
//! describe-subnets.
//!
//! Security groups allow only; a TCP or UDP permission's ports are FromPort..ToPort, both
//! given; for ICMP, FromPort is the type and ToPort the code, -1 any; protocol -1 (all) has
//! no ports, or -1. Network ACLs are ordered lists of allow and deny entries by RuleNumber
//! (1-32766; the `*` entries that deny the rest are 32767 for IPv4 and 32768 for IPv6), one
//! list per direction, associated with subnets.
//!
//! A permission, rule or entry that does not read stands as an unreadable rule of its group
//! (see `unreadable`); a group whose GroupId does not read, as a group of its own.

/// The exports this module reads, for `sgprobe import --help`.
pub(crate) const READS: &str = "describe-security-groups, describe-security-group-rules, describe-instances, get-managed-prefix-list-entries (needs --id), describe-network-acls, describe-subnets";

use super::json::Node;
use super::unreadable::{self, Known};
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
            let group = security_group(&item);
            inv.insert_group(group);
        }
    }
    if root.has("SecurityGroupRules") {
        recognised = true;
        let mut flat = FlatRules::new(Cloud::Aws);
        for item in root.get("SecurityGroupRules").elements()? {
            let item = item.node();
            let group_id = match item.get("GroupId").required_text() {
                Ok(id) => id,
                Err(error) => {
                    let group = unreadable::group(Cloud::Aws, None, &item, error);
                    inv.insert_group(group);
                    continue;
                }
            };
            let direction = egress_flag(&item.get("IsEgress"));
            let index = match &direction {
                Ok(direction) => flat.next_index(&group_id, *direction),
                Err(_) => flat.next_index(&group_id, Direction::Inbound),
            };
            let known = Known::read(&item, ["", "", "SecurityGroupRuleId", "Description"]);
            let group = flat.group(&mut inv, &group_id);
            unreadable::add(group, direction, index, known, |_| {
                security_group_rule(&item, &group_id, index).map(|rule| vec![rule])
            });
        }
    }
    if root.has("Reservations") {
        recognised = true;
        for reservation in root.get("Reservations").elements()? {
            let reservation = reservation.node();
            for item in reservation.get("Instances").items()? {
                super::add_instance(&mut inv, root.file(), instance(&item)?)?;
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
            inv.insert_group(acl);
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

/// One rule of describe-security-group-rules.
fn security_group_rule(item: &Node, group: &str, index: usize) -> Result<Rule, SourceError> {
    let peer = if let Some(net) = item.get("CidrIpv4").parsed("an IPv4 CIDR", parse_net)? {
        Peer::Cidr(net)
    } else if let Some(net) = item.get("CidrIpv6").parsed("an IPv6 CIDR", parse_net)? {
        Peer::Cidr(net)
    } else if let Some(list) = item.get("PrefixListId").text()? {
        Peer::AddressSet(list)
    } else if let Some(group) = item.get("ReferencedGroupInfo").get("GroupId").text()? {
        Peer::Group(group)
    } else {
        return Err(item.error("a peer: CidrIpv4, CidrIpv6, PrefixListId or ReferencedGroupInfo"));
    };
    let origin = Origin {
        group: group.into(),
        index,
        id: item.get("SecurityGroupRuleId").text()?,
        description: item.get("Description").text()?,
    };
    Ok(allow(service(item)?, peer, origin))
}

/// A security group's rule: it allows, and names only the peer.
fn allow(service: Service, peer: Peer, origin: Origin) -> Rule {
    Rule {
        action: Action::Accept,
        service,
        peer,
        local: Peer::All,
        priority: None,
        origin,
    }
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
    Ok(match protocol {
        // EC2 API, IpPermission: for TCP and UDP, FromPort and ToPort are the start and end
        // of the port range; -1 is a value only for ICMP types and codes. One missing, or
        // -1, is malformed, not "all ports".
        Protocol::Tcp | Protocol::Udp => {
            let port = |key: &str, value: Option<u16>| {
                value.ok_or_else(|| {
                    item.get(key).error(
                        "a port 0-65535 (for tcp or udp, FromPort and ToPort are both ports)",
                    )
                })
            };
            let (first, last) = (port("FromPort", from)?, port("ToPort", to)?);
            let range = PortRange::from_wire(first, last).ok_or_else(|| {
                item.get("ToPort")
                    .error("a port no lower than FromPort (and a range beyond port 0)")
            })?;
            Service::ports(protocol, Ports::from_ranges(vec![range]))
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
    let entries = match item.get("Entries").items() {
        Ok(entries) => entries,
        Err(error) => return Ok(unreadable::group(Cloud::AwsNacl, Some(id), item, error)),
    };
    for entry in entries {
        let direction = egress_flag(&entry.get("Egress"));
        let index = unreadable::next_index(&mut counted, &direction);
        let known = Known::read(&entry, ["RuleAction", "RuleNumber", "", ""]);
        unreadable::add(&mut acl, direction, index, known, |_| {
            acl_entry(&entry, &id, index).map(|rule| vec![rule])
        });
    }
    Ok(acl)
}

fn acl_entry(entry: &Node, acl: &str, index: usize) -> Result<Rule, SourceError> {
    let number = entry.get("RuleNumber");
    // 1-32766 for rules; 32767 (IPv4) and 32768 (IPv6) are the `*` rules every ACL ends
    // with (VPC User Guide, "Network ACL rules"; describe-network-acls prints both).
    let priority = number.required("a rule number 1-32766, or 32767 or 32768 for *", |t| {
        t.parse::<i64>().ok().filter(|n| (1..=32768).contains(n))
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
    Ok(Rule {
        action,
        service: acl_service(entry)?,
        peer,
        local: Peer::All,
        priority: Some(priority),
        origin: Origin {
            group: acl.into(),
            index,
            id: Some(if priority >= 32767 {
                "*".to_string()
            } else {
                priority.to_string()
            }),
            description: None,
        },
    })
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

fn security_group(item: &Node) -> SecurityGroup {
    let id = match item.get("GroupId").required_text() {
        Ok(id) => id,
        Err(error) => return unreadable::group(Cloud::Aws, None, item, error),
    };
    let mut group = SecurityGroup::new(&id, Cloud::Aws);
    group.name = item.get("GroupName").text().ok().flatten();
    for (direction, key) in [
        (Direction::Inbound, "IpPermissions"),
        (Direction::Outbound, "IpPermissionsEgress"),
    ] {
        let permissions = match item.get(key).items() {
            Ok(permissions) => permissions,
            Err(error) => {
                unreadable::add(&mut group, Ok(direction), 0, Known::default(), |_| {
                    Err(error)
                });
                continue;
            }
        };
        for (index, permission) in permissions.into_iter().enumerate() {
            unreadable::add(&mut group, Ok(direction), index, Known::default(), |_| {
                ip_permission(&permission, &id, index)
            });
        }
    }
    group
}

/// One permission lists many peers; each becomes a rule with the permission's index.
fn ip_permission(permission: &Node, group: &str, index: usize) -> Result<Vec<Rule>, SourceError> {
    let service = service(permission)?;
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
    Ok(peers
        .into_iter()
        .map(|(peer, description)| {
            let origin = Origin {
                group: group.into(),
                index,
                id: None,
                description,
            };
            allow(service.clone(), peer, origin)
        })
        .collect())
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
