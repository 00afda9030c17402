//! OpenStack exports, as the `openstack` CLI prints them with `-f json`: `security group
//! show`, `port show` and `address group show` (one object, or an array of objects of these
//! shapes). A port is an instance: its fixed IPs are its addresses.
//!
//! Neutron security groups allow only, and the groups of a port form a union. A rule has a
//! direction, an ethertype (IPv4 or IPv6), a protocol (null for any; a name or number),
//! `port_range_min`/`port_range_max` (null for all; the ICMP type and code for ICMP), and at
//! most one peer: `remote_ip_prefix`, `remote_group_id` (the fixed IPs of the ports in that
//! group) or `remote_address_group_id`; none is any peer of the ethertype.

use ipnet::IpNet;

use super::json::Node;
use super::{SourceError, address_members, known_shape};
use crate::model::{
    Action, AddressSet, Cloud, Direction, Instance, Inventory, Located, Origin, Peer, PortRange,
    Ports, Protocol, Rule, SecurityGroup, Service, parse_net,
};

/// The group standing for a port whose port security is off: Neutron filters nothing there.
const UNFILTERED: &str = "port-security-disabled";

pub fn import(root: &Node, _id: Option<&str>) -> Result<Inventory, SourceError> {
    let mut inv = Inventory::default();
    let mut recognised = false;
    let objects = if root.is_array() {
        root.items()?
    } else {
        vec![root.clone()]
    };
    for object in &objects {
        if object.has("rules") || object.has("security_group_rules") {
            recognised = true;
            let group = security_group(object)?;
            inv.groups.insert(group.id.clone(), group);
        } else if object.has("fixed_ips") {
            recognised = true;
            let instance = port(object, &mut inv)?;
            inv.add_instance(instance);
        } else if object.has("addresses") && object.has("id") {
            recognised = true;
            let set = AddressSet {
                id: object.get("id").required_text()?,
                name: object.get("name").text()?,
                members: address_members(&object.get("addresses"))?,
                includes: Vec::new(),
                excludes: Vec::new(),
            };
            inv.address_sets.insert(set.id.clone(), set);
        }
    }
    known_shape(
        root,
        recognised,
        "an OpenStack CLI output (-f json): security group show, port show or address group show",
    )?;
    Ok(inv)
}

fn security_group(item: &Node) -> Result<SecurityGroup, SourceError> {
    let id = item.get("id").required_text()?;
    let mut group = SecurityGroup::new(&id, Cloud::OpenStack);
    group.name = item.get("name").text()?;
    let stateful = item.get("stateful");
    if stateful.text()?.as_deref() == Some("false") {
        return Err(stateful.error(
            "a stateful group (sgprobe does not model stateless Neutron groups yet: their replies need rules of their own)",
        ));
    }
    let rules = if item.has("rules") {
        item.get("rules")
    } else {
        item.get("security_group_rules")
    };
    if rules.text().is_ok() && !rules.is_unset() {
        return Err(rules.error(
            "a JSON list of rules (this client prints them as text: use a newer python-openstackclient, or `openstack security group rule list --long -f json`)",
        ));
    }
    let mut counted = [0, 0];
    for item in rules.items()? {
        let direction = item
            .get("direction")
            .required("ingress or egress", Direction::parse)?;
        let index = &mut counted[usize::from(direction == Direction::Outbound)];
        group.rules_mut(direction).push(rule(&item, &id, *index)?);
        *index += 1;
    }
    Ok(group)
}

fn rule(item: &Node, group: &str, index: usize) -> Result<Rule, SourceError> {
    let ethertype = item.get("ethertype");
    let v6 = match ethertype.text()?.as_deref() {
        None | Some("IPv4") => false,
        Some("IPv6") => true,
        Some(_) => return Err(ethertype.error("IPv4 or IPv6")),
    };
    let family: IpNet = if v6 {
        "::/0".parse().expect("literal")
    } else {
        "0.0.0.0/0".parse().expect("literal")
    };
    let protocol = match item.get("protocol").text()? {
        None => Protocol::All,
        Some(_) => item.get("protocol").required(
            "a protocol name (tcp, udp, icmp, ipv6-icmp, ...) or number",
            Protocol::parse,
        )?,
    };
    let bound = |key: &str, max: i64| -> Result<Option<i64>, SourceError> {
        let node = item.get(key);
        match node.int()? {
            Some(v) if (0..=max).contains(&v) => Ok(Some(v)),
            Some(_) => Err(node.error(&format!("0-{max} or null"))),
            None => Ok(None),
        }
    };
    let service = match protocol {
        Protocol::Tcp | Protocol::Udp => {
            let ports =
                match (
                    bound("port_range_min", 65535)?,
                    bound("port_range_max", 65535)?,
                ) {
                    (None, None) => Ports::All,
                    (Some(first), Some(last)) => Ports::from_ranges(vec![
                        PortRange::new(first as u16, last as u16).ok_or_else(|| {
                            item.get("port_range_max")
                                .error("a port no lower than port_range_min")
                        })?,
                    ]),
                    _ => {
                        return Err(item
                            .get("port_range_max")
                            .error("both port_range_min and port_range_max, or neither"));
                    }
                };
            Service::ports(protocol, ports)
        }
        Protocol::Icmp | Protocol::Icmpv6 => Service::icmp(
            protocol,
            bound("port_range_min", 255)?.map(|t| t as u8),
            bound("port_range_max", 255)?.map(|c| c as u8),
        ),
        _ => Service::ports(protocol, Ports::All),
    };
    let prefix = item.get("remote_ip_prefix");
    let (peer, local) = if let Some(net) = prefix.parsed("a CIDR", parse_net)? {
        if net.addr().is_ipv6() != v6 {
            return Err(prefix.error("a CIDR of the rule's ethertype"));
        }
        (Peer::Cidr(net), Peer::All)
    } else if let Some(remote) = item.get("remote_group_id").text()? {
        // The ethertype still holds: only the members' addresses of that family.
        (Peer::Group(remote), Peer::Cidr(family))
    } else if let Some(set) = item.get("remote_address_group_id").text()? {
        (Peer::AddressSet(set), Peer::Cidr(family))
    } else {
        (Peer::Cidr(family), Peer::All)
    };
    Ok(Rule {
        action: Action::Accept,
        service,
        peer,
        local,
        priority: None,
        origin: Origin {
            group: group.to_string(),
            index,
            id: item.get("id").text()?,
            description: item.get("description").text()?,
        },
    })
}

/// A port as an instance: its fixed IPs and groups (a port with port security off is
/// bound to a group that lets everything through).
fn port(item: &Node, inv: &mut Inventory) -> Result<Instance, SourceError> {
    let id = item.get("id").required_text()?;
    let name = item.get("name").text()?.unwrap_or_else(|| id.clone());
    let mut instance = Instance::new(name, item.place());
    instance.id = Some(id);
    let fixed = item.get("fixed_ips");
    let mut subnet = None;
    if fixed.is_array() {
        for entry in fixed.items()? {
            instance
                .addresses
                .extend(entry.get("ip_address").address()?);
            subnet = subnet.or(entry.get("subnet_id").text()?);
        }
    } else {
        // Older clients print `ip_address='10.0.0.5', subnet_id='...'`, one line per IP.
        for (key, value) in fixed
            .text()?
            .unwrap_or_default()
            .split([',', '\n'])
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((
                    k.trim().to_string(),
                    v.trim().trim_matches('\'').to_string(),
                ))
            })
        {
            match key.as_str() {
                "ip_address" => instance.addresses.push(
                    value
                        .parse()
                        .map_err(|_| fixed.error("ip_address='<an IP address>'"))?,
                ),
                "subnet_id" => subnet = subnet.or(Some(value)),
                _ => {}
            }
        }
    }
    instance.subnet = subnet.map(|value| Located {
        value,
        at: fixed.place(),
    });
    if item.get("port_security_enabled").text()?.as_deref() == Some("false") {
        inv.groups
            .entry(UNFILTERED.to_string())
            .or_insert_with(unfiltered);
        instance.security_groups.push(Located {
            value: UNFILTERED.to_string(),
            at: item.get("port_security_enabled").place(),
        });
        return Ok(instance);
    }
    for group in item.get("security_group_ids").items()? {
        instance.security_groups.push(Located {
            value: group.required_text()?,
            at: group.place(),
        });
    }
    Ok(instance)
}

fn unfiltered() -> SecurityGroup {
    SecurityGroup::allow_all(
        UNFILTERED,
        Cloud::OpenStack,
        "port security disabled: Neutron filters nothing",
        "port_security_enabled: false",
    )
}
