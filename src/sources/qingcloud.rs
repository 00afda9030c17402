//! QingCloud exports: DescribeSecurityGroupRules, DescribeInstances, DescribeSecurityGroupIPSets.
//!
//! Rule fields: `direction` 0 inbound / 1 outbound; `val1`/`val2` the port range (or ICMP
//! type/code); `val3` the peer, a CIDR, an address, an IP set id, or empty for all;
//! `disabled` 1 leaves the rule out.

use super::json::Node;
use super::{FlatRules, SourceError, address_members, known_shape};
use crate::model::{
    Action, AddressSet, Cloud, Direction, IcmpMatch, Instance, Inventory, Located, Origin, Peer,
    PortRange, Ports, Protocol, Rule, Service, parse_net,
};

pub fn import(root: &Node, id: Option<&str>) -> Result<Inventory, SourceError> {
    let mut inv = Inventory::default();
    let mut recognised = false;
    if root.has("security_group_rule_set") {
        recognised = true;
        let mut flat = FlatRules::new(Cloud::QingCloud);
        for item in root.get("security_group_rule_set").elements()? {
            let item = item.node();
            let group_id = match item.get("security_group_id").text()? {
                Some(group) => group,
                None => super::group_id(&item, id, "the rule")?,
            };
            let direction = item
                .get("direction")
                .required("0 (inbound) or 1 (outbound)", |t| match t {
                    "0" => Some(Direction::Inbound),
                    "1" => Some(Direction::Outbound),
                    other => Direction::parse(other),
                })?;
            let index = flat.next_index(&group_id, direction);
            if item.get("disabled").int()?.unwrap_or(0) != 0 {
                continue;
            }
            flat.add(&mut inv, direction, rule(&item, &group_id, index)?);
        }
    }
    if root.has("instance_set") {
        recognised = true;
        for item in root.get("instance_set").elements()? {
            let item = item.node();
            inv.add_instance(instance(&item)?);
        }
    }
    if root.has("security_group_ipset_set") {
        recognised = true;
        for item in root.get("security_group_ipset_set").elements()? {
            let item = item.node();
            // ipset_type 0 holds IPv4 addresses and 2 IPv6; 1 is a port set, which no rule
            // field of the exports we read refers to.
            if item.get("ipset_type").int()?.unwrap_or(0) == 1 {
                continue;
            }
            let set = AddressSet {
                id: item.get("security_group_ipset_id").required_text()?,
                name: item.get("security_group_ipset_name").text()?,
                members: address_members(&item.get("val"))?,
                includes: Vec::new(),
            };
            inv.address_sets.insert(set.id.clone(), set);
        }
    }
    known_shape(
        root,
        recognised,
        "a QingCloud export: security_group_rule_set, instance_set or security_group_ipset_set",
    )?;
    Ok(inv)
}

fn rule(item: &Node, group: &str, index: usize) -> Result<Rule, SourceError> {
    let action = item
        .get("action")
        .required("accept or drop", Action::parse)?;
    let protocol = item.get("protocol").required(
        "tcp, udp, icmp, gre, esp, ah, ipip, ipencap, vrrp or a number",
        Protocol::parse,
    )?;
    let number = |key: &str, max: i64| -> Result<Option<i64>, SourceError> {
        let node = item.get(key);
        match node.int()? {
            Some(v) if (0..=max).contains(&v) => Ok(Some(v)),
            Some(_) => Err(node.error(&format!("a number 0-{max}"))),
            None => Ok(None),
        }
    };
    let service = match protocol {
        Protocol::Tcp | Protocol::Udp => {
            let first = number("val1", 65535)?;
            let end = number("val2", 65535)?;
            // An end port without a start is malformed, not "all ports".
            if first.is_none() && end.is_some() {
                return Err(item
                    .get("val1")
                    .error("a start port, as val2 gives an end port"));
            }
            let last = end.or(first);
            let ports = match (first, last) {
                (Some(first), Some(last)) => {
                    let range = PortRange::new(first as u16, last as u16)
                        .ok_or_else(|| item.get("val2").error("an end port no lower than val1"))?;
                    Ports::from_ranges(vec![range])
                }
                _ => Ports::All,
            };
            Service::ports(protocol, ports)
        }
        Protocol::Icmp | Protocol::Icmpv6 => Service::Ports {
            protocol,
            ports: Ports::All,
            icmp: IcmpMatch {
                icmp_type: number("val1", 255)?.map(|t| t as u8),
                code: number("val2", 255)?.map(|c| c as u8),
            },
        },
        _ => Service::ports(protocol, Ports::All),
    };
    let peer_node = item.get("val3");
    let peer = match peer_node.text()? {
        None => Peer::All,
        Some(text) if text.starts_with("ipset-") => Peer::AddressSet(text),
        Some(_) => Peer::Cidr(peer_node.required("a CIDR, an address or an IP set id", parse_net)?),
    };
    Ok(Rule {
        action,
        service,
        peer,
        priority: Some(item.get("priority").int()?.unwrap_or(0)),
        origin: Origin {
            group: group.to_string(),
            index,
            id: item.get("security_group_rule_id").text()?,
            description: item.get("security_group_rule_name").text()?,
        },
    })
}

fn instance(item: &Node) -> Result<Instance, SourceError> {
    let id = item.get("instance_id").required_text()?;
    let name = item
        .get("instance_name")
        .text()?
        .unwrap_or_else(|| id.clone());
    let mut instance = Instance::new(name, item.place());
    instance.id = Some(id);
    for vxnet in item.get("vxnets").items()? {
        instance
            .addresses
            .extend(vxnet.get("private_ip").address()?);
    }
    // An EIP is NAT'd to the instance: not one of its private addresses.
    instance
        .public_addresses
        .extend(item.get("eip").get("eip_addr").address()?);
    let group = item.get("security_group").get("security_group_id");
    if let Some(value) = group.text()? {
        instance.security_groups.push(Located {
            value,
            at: group.place(),
        });
    }
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{Protocol, Service};
    use crate::sources::{Format, parse};

    fn rule(fields: &str) -> Result<Service, String> {
        let text = format!(
            "{{\"security_group_rule_set\": [{{\"security_group_id\": \"sg-1\", \"priority\": 1, \"direction\": 0, \"action\": \"accept\", \"val3\": \"\", {fields}}}]}}"
        );
        parse(Format::QingCloud, Path::new("q.json"), &text, None)
            .map(|inv| inv.groups["sg-1"].ingress[0].service.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_end_port_without_a_start_is_an_error_and_the_consoles_protocols_read() {
        // QingCloud API, AddSecurityGroupRules: val1 the start port (empty: all ports), val2 the
        // end port; protocols as the console offers them, VRRP and IPENCAP among them.
        let error = rule(r#""protocol": "tcp", "val1": "", "val2": "80""#).expect_err("malformed");
        assert!(
            error.contains("security_group_rule_set[0].val1: expected a start port"),
            "{error}"
        );
        assert!(
            rule(r#""protocol": "tcp", "val1": "", "val2": """#).is_ok(),
            "no ports: all"
        );
        for (name, number) in [("vrrp", 112), ("ipencap", 4)] {
            let service =
                rule(&format!(r#""protocol": "{name}", "val1": "", "val2": """#)).expect(name);
            assert!(
                matches!(service, Service::Ports { protocol: Protocol::Other(n), .. } if n == number),
                "{name}: {service:?}"
            );
        }
    }
}
