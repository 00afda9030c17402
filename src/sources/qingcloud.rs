//! QingCloud exports: DescribeSecurityGroupRules, DescribeInstances, DescribeSecurityGroupIPSets.
//!
//! Rule fields: `direction` 0 inbound / 1 outbound; `val1`/`val2` the port range (or ICMP
//! type/code), or in `val1` the id of a port set; `val3` the peer, a CIDR, an address, an IP
//! set id, or empty for all; `disabled` 1 leaves the rule out. IP and port sets have ids such
//! as `sgi-rtyv0968` (the API documentation's example, ModifySecurityGroupIPSetAttributes).

/// The exports this module reads, for `sgprobe import --help`.
pub(crate) const READS: &str = "DescribeSecurityGroups, DescribeSecurityGroupRules, DescribeInstances, DescribeSecurityGroupIPSets";

use super::json::Node;
use super::unreadable::{self, Known};
use super::{FlatRules, SourceError, address_members, known_shape};
use crate::model::{
    Action, AddressSet, Cloud, Direction, Instance, Inventory, Located, Origin, Peer, PortRange,
    Ports, Protocol, Rule, SecurityGroup, Service, ServiceSet, parse_net,
};

pub fn import(root: &Node, id: Option<&str>) -> Result<Inventory, SourceError> {
    let mut inv = Inventory::default();
    let mut recognised = false;
    if root.has("security_group_set") {
        recognised = true;
        // DescribeSecurityGroups: every group, with or without rules.
        for item in root.get("security_group_set").elements()? {
            let item = item.node();
            let mut group = SecurityGroup::new(
                item.get("security_group_id").required_text()?,
                Cloud::QingCloud,
            );
            group.name = item.get("security_group_name").text()?;
            inv.insert_group(group);
        }
    }
    if root.has("security_group_rule_set") {
        recognised = true;
        let mut flat = FlatRules::new(Cloud::QingCloud);
        // A group with no rules is still a group: its (empty) rule list says so, given its id.
        if let Some(id) = id {
            inv.insert_group(SecurityGroup::new(id, Cloud::QingCloud));
        }
        for item in root.get("security_group_rule_set").elements()? {
            let item = item.node();
            let group_id = match item.get("security_group_id").text() {
                Ok(Some(group)) => Ok(group),
                Ok(None) => super::group_id(&item, id, "the rule"),
                Err(error) => Err(error),
            };
            let group_id = match group_id {
                Ok(group) => group,
                Err(error) => {
                    let group = unreadable::group(Cloud::QingCloud, None, &item, error);
                    inv.insert_group(group);
                    continue;
                }
            };
            let direction = item
                .get("direction")
                .required("0 (inbound) or 1 (outbound)", |t| match t {
                    "0" => Some(Direction::Inbound),
                    "1" => Some(Direction::Outbound),
                    other => Direction::parse(other),
                });
            let index = flat.next_index(
                &group_id,
                *direction.as_ref().unwrap_or(&Direction::Inbound),
            );
            // A disabled rule is left out; one whose flag does not read may be in force.
            let disabled = item.get("disabled").int();
            if matches!(disabled, Ok(Some(flag)) if flag != 0) {
                continue;
            }
            let known = Known::read(
                &item,
                [
                    "action",
                    "priority",
                    "security_group_rule_id",
                    "security_group_rule_name",
                ],
            );
            unreadable::add(
                flat.group(&mut inv, &group_id),
                direction,
                index,
                known,
                |_| {
                    disabled?;
                    rule(&item, &group_id, index).map(|rule| vec![rule])
                },
            );
        }
    }
    if root.has("instance_set") {
        recognised = true;
        for item in root.get("instance_set").elements()? {
            let item = item.node();
            super::add_instance(&mut inv, root.file(), instance(&item)?)?;
        }
    }
    if root.has("security_group_ipset_set") {
        recognised = true;
        for item in root.get("security_group_ipset_set").elements()? {
            let item = item.node();
            // ipset_type 0 holds IPv4 addresses and 2 IPv6; 1 is a port set, which a rule's
            // val1 names in place of its ports, for the rule's own protocol.
            let set_id = item.get("security_group_ipset_id").required_text()?;
            if item.get("ipset_type").int()?.unwrap_or(0) == 1 {
                let val = item.get("val");
                let ports = val.required("ports: 80, 8000-9000, comma-separated", |t| {
                    Ports::parse(&t.replace(['\r', '\n'], ","))
                })?;
                for protocol in [Protocol::Tcp, Protocol::Udp] {
                    let set = ServiceSet {
                        id: port_set(&set_id, protocol),
                        name: item.get("security_group_ipset_name").text()?,
                        services: vec![(protocol, ports.clone())],
                        includes: Vec::new(),
                    };
                    inv.service_sets.insert(set.id.clone(), set);
                }
                continue;
            }
            let set = AddressSet {
                id: set_id,
                name: item.get("security_group_ipset_name").text()?,
                members: address_members(&item.get("val"))?,
                includes: Vec::new(),
                excludes: Vec::new(),
            };
            inv.address_sets.insert(set.id.clone(), set);
        }
    }
    known_shape(
        root,
        recognised,
        "a QingCloud export: security_group_set, security_group_rule_set, instance_set or security_group_ipset_set",
    )?;
    Ok(inv)
}

/// The service set standing for a port set used with one protocol.
fn port_set(id: &str, protocol: Protocol) -> String {
    format!("{id}@{protocol}")
}

/// An IP or port set's id, where a rule field may hold one.
fn is_set_id(text: &str) -> bool {
    text.starts_with("sgi-") || text.starts_with("ipset-")
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
        Protocol::Tcp | Protocol::Udp
            if item.get("val1").text()?.is_some_and(|t| is_set_id(&t)) =>
        {
            Service::Template(port_set(&item.get("val1").required_text()?, protocol))
        }
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
        Protocol::Icmp | Protocol::Icmpv6 => Service::icmp(
            protocol,
            number("val1", 255)?.map(|t| t as u8),
            number("val2", 255)?.map(|c| c as u8),
        ),
        _ => Service::ports(protocol, Ports::All),
    };
    let peer_node = item.get("val3");
    let peer = match peer_node.text()? {
        None => Peer::All,
        Some(text) if is_set_id(&text) => Peer::AddressSet(text),
        Some(_) => Peer::Cidr(peer_node.required("a CIDR, an address or an IP set id", parse_net)?),
    };
    Ok(Rule {
        action,
        service,
        peer,
        local: Peer::All,
        priority: Some(item.get("priority").int()?.unwrap_or(0)),
        origin: Origin {
            group: group.into(),
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
        instance.vpc = instance.vpc.or(vxnet.get("vpc_router_id").text()?);
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

    #[test]
    fn empty_groups_and_sets_by_the_id_the_ip_set_api_returns() {
        // QingCloud API: DescribeSecurityGroups lists groups with or without rules;
        // ModifySecurityGroupIPSetAttributes' example returns "security_group_ipset_id":
        // "sgi-rtyv0968"; a rule's val3 names an IP set, its val1 a port set (ipset_type 1).
        use crate::model::{Direction, Flow, FlowPeer, parse_port_spec};
        use crate::policy::{Predicted, evaluate, layers};
        use crate::sources::Merged;
        let files = [
            r#"{"security_group_set": [{"security_group_id": "sg-empty", "security_group_name": "new"}, {"security_group_id": "sg-web"}]}"#,
            r#"{"security_group_rule_set": [{"security_group_id": "sg-web", "priority": 1, "direction": 0, "action": "accept", "protocol": "tcp", "val1": "sgi-ports001", "val3": "sgi-rtyv0968"}]}"#,
            r#"{"security_group_ipset_set": [{"security_group_ipset_id": "sgi-rtyv0968", "ipset_type": 0, "val": "10.0.0.0/24\r10.0.1.5"}, {"security_group_ipset_id": "sgi-ports001", "ipset_type": 1, "val": "22,8000-8080"}]}"#,
            r#"{"instance_set": [{"instance_id": "i-a", "vxnets": [{"private_ip": "172.16.0.2"}], "security_group": {"security_group_id": "sg-empty"}}, {"instance_id": "i-b", "vxnets": [{"private_ip": "172.16.0.3"}], "security_group": {"security_group_id": "sg-web"}}]}"#,
        ];
        let mut merged = Merged::default();
        for (n, text) in files.iter().enumerate() {
            let file = format!("q{n}.json");
            let inv = parse(Format::QingCloud, Path::new(&file), text, None).expect("valid");
            merged.add(Path::new(&file), inv).expect("merges");
        }
        let inv = &merged.inventory;
        let predicted = |instance: &str, spec: &str, peer: &str| {
            let instance = inv.instance(instance).ok().flatten().expect("instance");
            let layers = layers(inv, instance).expect("links, even with no rules");
            let flow = Flow {
                address: instance.addresses[0],
                direction: Direction::Inbound,
                spec: parse_port_spec(spec).expect("spec")[0],
                peer: FlowPeer::parse(peer).expect("peer"),
                peer_port: None,
            };
            evaluate(inv, &layers, &flow).predicted
        };
        assert_eq!(predicted("i-a", "tcp:22", "10.0.0.9"), Predicted::Closed);
        assert_eq!(predicted("i-b", "tcp:22", "10.0.0.9"), Predicted::Open);
        assert_eq!(predicted("i-b", "tcp:8080", "10.0.1.5"), Predicted::Open);
        assert_eq!(predicted("i-b", "tcp:8081", "10.0.1.5"), Predicted::Closed);
        assert_eq!(predicted("i-b", "udp:22", "10.0.0.9"), Predicted::Closed);
        assert_eq!(predicted("i-b", "tcp:22", "10.0.2.1"), Predicted::Closed);
    }
}
