//! OpenStack exports: what the Networking API returns (`{"security_group": ...}`,
//! `{"security_groups": [...]}`, `{"security_group_rules": [...]}`, `{"port": ...}`,
//! `{"ports": [...]}`, as `curl` and openstacksdk give them) and what the `openstack` CLI
//! prints with `-f json`: `security group show`, `port show`, `address group show` (one
//! object, or an array of them) and `security group rule list` (its column names as keys). A
//! port is an instance: its fixed IPs are its addresses.
//!
//! Neutron security groups allow only, and the groups of a port form a union. A rule has a
//! direction, an ethertype (IPv4 or IPv6), a protocol (null, `any` or `0` for any; a name or
//! number), `port_range_min`/`port_range_max` (null for all; ports for TCP, UDP, SCTP, DCCP
//! and UDP-Lite, the ICMP type and code for ICMP), and at most one peer: `remote_ip_prefix`,
//! `remote_group_id` (the fixed IPs of the ports in that group) or `remote_address_group_id`;
//! none is any peer of the ethertype.

/// The exports this module reads, for `sgprobe import --help`.
pub(crate) const READS: &str = "the Networking API's security_group(s), security_group_rules and port(s) JSON; the CLI's security group show, security group rule list, port show, address group show (-f json)";

use ipnet::IpNet;

use super::json::Node;
use super::unreadable::{self, Known};
use super::{SourceError, address_members, group_id, known_shape};
use crate::model::{
    Action, AddressSet, Cloud, Direction, Instance, Inventory, Located, Origin, Peer, PortRange,
    Ports, Protocol, Rule, SecurityGroup, Service, parse_net,
};

/// The group standing for a port whose port security is off: Neutron filters nothing there.
const UNFILTERED: &str = "port-security-disabled";

/// Protocol names Neutron accepts beyond those every cloud uses, with their numbers.
/// Source: Networking API v2.0 reference, security group rules, `protocol`.
const NEUTRON_PROTOCOLS: [(&str, u8); 10] = [
    ("egp", 8),
    ("igmp", 2),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
];

/// Where a rule's fields are: the API's (and `security group show`'s) keys, or the columns of
/// `openstack security group rule list -f json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Api,
    Columns,
}

impl Form {
    fn key(self, api: &'static str) -> &'static str {
        if self == Form::Api {
            return api;
        }
        match api {
            "id" => "ID",
            "direction" => "Direction",
            "ethertype" => "Ethertype",
            "protocol" => "IP Protocol",
            "remote_ip_prefix" => "IP Range",
            "remote_group_id" => "Remote Security Group",
            "remote_address_group_id" => "Remote Address Group",
            "security_group_id" => "Security Group",
            other => other,
        }
    }
}

pub fn import(root: &Node, id: Option<&str>) -> Result<Inventory, SourceError> {
    let mut inv = Inventory::default();
    let mut recognised = false;
    // The API wraps one object, or a list, in a key naming its kind.
    let mut objects = Vec::new();
    for key in ["security_group", "port", "address_group"] {
        if root.get(key).has("id") {
            objects.push(root.get(key));
        }
    }
    // A list wrapped the same way; a lone object with an `id` is itself the export (a port's
    // own `security_groups` lists ids).
    for key in ["security_groups", "ports", "address_groups"] {
        if root.get(key).is_array() && !root.has("id") {
            objects.extend(root.get(key).items()?);
        }
    }
    if root.get("security_group_rules").is_array() && !root.has("id") {
        recognised = true;
        for item in root.get("security_group_rules").items()? {
            flat_rule(&item, id, Form::Api, &mut inv);
        }
    }
    if objects.is_empty() && !recognised {
        objects = if root.is_array() {
            root.items()?
        } else {
            vec![root.clone()]
        };
    }
    for object in &objects {
        if object.has("rules") || object.has("security_group_rules") {
            recognised = true;
            let group = security_group(object);
            inv.insert_group(group);
        } else if object.has("fixed_ips") {
            recognised = true;
            let instance = port(object, &mut inv)?;
            super::add_instance(&mut inv, root.file(), instance)?;
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
        } else if object.has("ID") && (object.has("IP Protocol") || object.has("Port Range")) {
            recognised = true;
            flat_rule(object, id, Form::Columns, &mut inv);
        }
    }
    known_shape(
        root,
        recognised,
        "an OpenStack export: the Networking API's security_group(s), security_group_rules, port(s), or the CLI's (-f json) security group show, security group rule list, port show or address group show",
    )?;
    Ok(inv)
}

/// A rule listed on its own, naming its group (or, where `rule list` was given one group and
/// leaves the column out, the source's `id`).
fn flat_rule(item: &Node, id: Option<&str>, form: Form, inv: &mut Inventory) {
    let group_key = item.get(form.key("security_group_id"));
    let group = match group_key.text() {
        Ok(Some(group)) => Ok(group),
        Ok(None) => group_id(item, id, "the rule"),
        Err(error) => Err(error),
    };
    let group = match group {
        Ok(group) => group,
        Err(error) => {
            let group = unreadable::group(Cloud::OpenStack, None, item, error);
            inv.insert_group(group);
            return;
        }
    };
    let held = inv
        .groups
        .entry(group.as_str().into())
        .or_insert_with(|| SecurityGroup::new(&group, Cloud::OpenStack).into());
    add_rule(std::sync::Arc::make_mut(held), item, form);
}

fn security_group(item: &Node) -> SecurityGroup {
    let id = match item.get("id").required_text() {
        Ok(id) => id,
        Err(error) => return unreadable::group(Cloud::OpenStack, None, item, error),
    };
    let mut group = SecurityGroup::new(&id, Cloud::OpenStack);
    group.name = item.get("name").text().ok().flatten();
    let stateful = item.get("stateful");
    let flag = stateful.text().map(|t| t.map(|t| t.to_ascii_lowercase()));
    if !matches!(flag.as_ref().map(Option::as_deref), Ok(None | Some("true"))) {
        let error = stateful.error(
            "a stateful group (sgprobe does not model stateless Neutron groups yet: their replies need rules of their own)",
        );
        return unreadable::group(Cloud::OpenStack, Some(id), item, error);
    }
    let rules = if item.has("rules") {
        item.get("rules")
    } else {
        item.get("security_group_rules")
    };
    if rules.text().is_ok() && !rules.is_unset() {
        let error = rules.error(
            "a JSON list of rules (this client prints them as text: use a newer python-openstackclient, or `openstack security group rule list --long -f json`, as older clients print a rule's direction and ethertype only with --long)",
        );
        return unreadable::group(Cloud::OpenStack, Some(id), item, error);
    }
    match rules.items() {
        Ok(rules) => {
            for item in rules {
                add_rule(&mut group, &item, Form::Api);
            }
        }
        Err(error) => return unreadable::group(Cloud::OpenStack, Some(id), item, error),
    }
    group
}

/// Reads one rule into its group, or what stands for it; its index is its place among its
/// group's rules of its direction.
fn add_rule(group: &mut SecurityGroup, item: &Node, form: Form) {
    let direction = item
        .get(form.key("direction"))
        .required("ingress or egress", Direction::parse);
    let index = group
        .rules(*direction.as_ref().unwrap_or(&Direction::Inbound))
        .len();
    let known = Known::read(item, ["", "", form.key("id"), "description"]);
    let id = group.id.clone();
    unreadable::add(group, direction, index, known, |_| {
        rule(item, &id, index, form).map(|rule| vec![rule])
    });
}

/// `null`, `any` and `0` are every protocol; a name Neutron knows, or a number.
fn protocol(text: &str) -> Option<Protocol> {
    let lower = text.trim().to_ascii_lowercase();
    if lower == "0" {
        return Some(Protocol::All);
    }
    NEUTRON_PROTOCOLS
        .iter()
        .find(|(name, _)| *name == lower)
        .map(|(_, number)| Protocol::Other(*number))
        .or_else(|| Protocol::parse(&lower))
}

/// The port range (or ICMP type and code) as two optional bounds: the API's
/// `port_range_min`/`port_range_max`, or the CLI's `Port Range` column (`22:22`, `""`,
/// `type=3:code=0`).
fn port_bounds(item: &Node, form: Form) -> Result<(Option<i64>, Option<i64>), SourceError> {
    if form == Form::Api {
        return Ok((
            item.get("port_range_min").int()?,
            item.get("port_range_max").int()?,
        ));
    }
    let column = item.get("Port Range");
    let Some(text) = column.text()? else {
        return Ok((None, None));
    };
    let number = |t: &str| t.trim().parse::<i64>().ok();
    let parsed = if let Some(rest) = text.strip_prefix("type=") {
        match rest.split_once(":code=") {
            Some((t, c)) => number(t).zip(number(c)).map(|(t, c)| (Some(t), Some(c))),
            None => number(rest).map(|t| (Some(t), None)),
        }
    } else {
        text.split_once(':')
            .and_then(|(a, b)| number(a).zip(number(b)))
            .map(|(a, b)| (Some(a), Some(b)))
    };
    parsed.ok_or_else(|| {
        column.error("a port range such as 22:22, type=3 or type=3:code=0, or empty")
    })
}

fn rule(item: &Node, group: &str, index: usize, form: Form) -> Result<Rule, SourceError> {
    let ethertype = item.get(form.key("ethertype"));
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
    let protocol_node = item.get(form.key("protocol"));
    let protocol = match protocol_node.text()? {
        None => Protocol::All,
        Some(_) => protocol_node.required(
            "a protocol name (tcp, udp, icmp, ipv6-icmp, sctp, ...), a number 0-255, or any",
            protocol,
        )?,
    };
    let (min, max) = port_bounds(item, form)?;
    let max_key = match form {
        Form::Api => "port_range_max",
        Form::Columns => "Port Range",
    };
    let bound = |value: Option<i64>, max: i64| -> Result<Option<i64>, SourceError> {
        match value {
            Some(v) if (0..=max).contains(&v) => Ok(Some(v)),
            Some(_) => Err(item.get(max_key).error(&format!("0-{max} or null"))),
            None => Ok(None),
        }
    };
    let service = match protocol {
        protocol if protocol.has_ports() => {
            let ports = match (bound(min, 65535)?, bound(max, 65535)?) {
                (None, None) => Ports::All,
                (Some(first), Some(last)) => Ports::from_ranges(vec![
                    PortRange::from_wire(first as u16, last as u16).ok_or_else(|| {
                        item.get(max_key)
                            .error("a port no lower than port_range_min")
                    })?,
                ]),
                _ => {
                    return Err(item
                        .get(max_key)
                        .error("both port_range_min and port_range_max, or neither"));
                }
            };
            Service::ports(protocol, ports)
        }
        Protocol::Icmp | Protocol::Icmpv6 => Service::icmp(
            protocol,
            bound(min, 255)?.map(|t| t as u8),
            bound(max, 255)?.map(|c| c as u8),
        ),
        // Neutron refuses ports on any other protocol: a rule that has them is malformed.
        _ if min.is_some() || max.is_some() => {
            return Err(item.get(max_key).error(&format!(
                "no port range: ports are only for tcp, udp, sctp, dccp and udplite, not {protocol}"
            )));
        }
        _ => Service::ports(protocol, Ports::All),
    };
    // A group or address-group remote first: the CLI prints a family-wide IP Range beside it.
    let prefix = item.get(form.key("remote_ip_prefix"));
    let (peer, local) = if let Some(remote) = item.get(form.key("remote_group_id")).text()? {
        // The ethertype still holds: only the members' addresses of that family.
        (Peer::Group(remote), Peer::Cidr(family))
    } else if let Some(set) = item.get(form.key("remote_address_group_id")).text()? {
        (Peer::AddressSet(set), Peer::Cidr(family))
    } else if let Some(net) = prefix.parsed("a CIDR", parse_net)? {
        if net.addr().is_ipv6() != v6 {
            return Err(prefix.error("a CIDR of the rule's ethertype"));
        }
        (Peer::Cidr(net), Peer::All)
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
            group: group.into(),
            index,
            id: item.get(form.key("id")).text()?,
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
            .entry(UNFILTERED.into())
            .or_insert_with(|| unfiltered().into());
        instance.security_groups.push(Located {
            value: UNFILTERED.to_string(),
            at: item.get("port_security_enabled").place(),
        });
        return Ok(instance);
    }
    // `port show` prints `security_group_ids`; the API names the same list `security_groups`.
    let groups = if item.has("security_group_ids") {
        item.get("security_group_ids")
    } else {
        item.get("security_groups")
    };
    for group in groups.items()? {
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
