//! Azure exports: a network security group as ARM/REST returns it (`properties` nested) or
//! as `az network nsg show` prints it (flattened); `az network nic list-effective-nsg`;
//! `az network nic show`; `az network vnet show`; `az network list-service-tags`.
//!
//! An NSG decides by priority (100-4096, then the default rules at 65000 and up; lower
//! first). A rule matches a source and a destination: inbound the source is the peer and the
//! destination the instance, outbound the reverse. Address prefixes are CIDRs, `*`, service
//! tags (named address sets `tag:NAME`, unknown until exported) and application security
//! groups (members: the NICs that list them). A NIC's NSG and its subnet's NSG must both
//! allow. Ids are ARM resource ids, which Azure compares without case: they are lowercased
//! (`canonical_id`). NSGs see the private address a public IP is translated to, and
//! GRE and IP-in-IP never cross a VNet (Azure Virtual Network FAQ), whatever the rules say.
//!
//! A rule that does not read (or breaks the documented limits: priority 100-4096, unique per
//! direction; protocol Tcp, Udp, Icmp, Esp, Ah or `*`) stands as an unreadable rule.

/// The exports this module reads, for `sgprobe import --help`.
pub(crate) const READS: &str = "az network nsg show (or the ARM resource), nic list-effective-nsg, nic show/list, vnet show, list-service-tags";

use ipnet::IpNet;

use super::json::Node;
use super::unreadable::{self, Known};
use super::{SourceError, known_shape};
use crate::model::{
    Action, AddressSet, Cloud, Direction, IcmpMatch, Instance, Inventory, Located, Origin, Peer,
    PortRange, Ports, Protocol, Rule, SecurityGroup, Service, Subnet, canonical_id, parse_net,
};

/// The group standing for a NIC with no NSG of its own: only its subnet's NSG filters.
const NO_NIC_NSG: &str = "nic-without-nsg";

/// Azure's documentation: the AzureLoadBalancer tag is the host's virtual IP.
const AZURE_LOAD_BALANCER: &str = "168.63.129.16/32";

/// Special-use ranges, never "reachable by the public internet" (the Internet tag).
const NOT_INTERNET: [&str; 12] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/3",
    "::/8",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

pub fn import(root: &Node, _id: Option<&str>) -> Result<Inventory, SourceError> {
    let mut inv = Inventory::default();
    let mut recognised = false;
    // `az ... list` prints an array; the REST API a `value` array.
    let objects = if root.is_array() {
        root.items()?
    } else if root.get("value").is_array() {
        root.get("value").items()?
    } else {
        vec![root.clone()]
    };
    let effective_entries: Vec<&Node> = objects
        .iter()
        .filter(|o| o.has("effectiveSecurityRules"))
        .collect();
    if !effective_entries.is_empty() {
        recognised = true;
        effective(&effective_entries, &mut inv)?;
    }
    for object in &objects {
        let fields = properties(object);
        if fields.has("securityRules") || fields.has("defaultSecurityRules") {
            recognised = true;
            nsg(object, &mut inv)?;
        } else if object.has("effectiveSecurityRules") {
            // Read above, all entries together: one NIC's NSG and its subnet's.
        } else if fields.has("ipConfigurations") {
            recognised = true;
            let nic = nic(object, &mut inv)?;
            super::add_instance(&mut inv, root.file(), nic)?;
        } else if fields.has("addressSpace") {
            recognised = true;
            vnet(object, &mut inv)?;
        } else if fields.has("addressPrefixes") && object.has("name") {
            recognised = true;
            let set = AddressSet {
                id: tag(&object.get("name").required_text()?),
                members: prefixes(&fields.get("addressPrefixes"))?,
                ..AddressSet::default()
            };
            inv.address_sets.insert(set.id.clone(), set);
        }
    }
    if recognised {
        builtin_tags(&mut inv);
    }
    known_shape(
        root,
        recognised,
        "an Azure export: an NSG (securityRules), list-effective-nsg (effectiveSecurityRules), a NIC (ipConfigurations), a VNet (addressSpace) or service tags (addressPrefixes)",
    )?;
    Ok(inv)
}

/// ARM nests a resource's fields under `properties`; the az CLI flattens them.
fn properties<'a>(node: &Node<'a>) -> Node<'a> {
    if node.has("properties") {
        node.get("properties")
    } else {
        node.clone()
    }
}

fn id_of(node: &Node) -> Result<String, SourceError> {
    Ok(canonical_id(&node.required_text()?))
}

fn tag(name: &str) -> String {
    format!("tag:{name}")
}

/// The tags the documentation defines: AzureLoadBalancer's address, and Internet as every
/// address outside the virtual network and the special-use ranges.
fn builtin_tags(inv: &mut Inventory) {
    let parse = |text: &str| text.parse::<IpNet>().expect("literal CIDR");
    let sets = [
        AddressSet {
            id: tag("AzureLoadBalancer"),
            members: vec![parse(AZURE_LOAD_BALANCER)],
            ..AddressSet::default()
        },
        AddressSet {
            id: "azure:special-use".to_string(),
            members: NOT_INTERNET.iter().map(|t| parse(t)).collect(),
            ..AddressSet::default()
        },
        AddressSet {
            id: tag("Internet"),
            members: vec![parse("0.0.0.0/0"), parse("::/0")],
            excludes: vec![tag("VirtualNetwork"), "azure:special-use".to_string()],
            ..AddressSet::default()
        },
    ];
    for set in sets {
        inv.address_sets.entry(set.id.clone()).or_insert(set);
    }
}

fn nsg(object: &Node, inv: &mut Inventory) -> Result<(), SourceError> {
    let id = id_of(&object.get("id"))?;
    let fields = properties(object);
    let mut group = SecurityGroup::new(&id, Cloud::Azure);
    group.name = object.get("name").text()?;
    let mut counted = [0, 0];
    let mut taken: Vec<(Direction, i64)> = Vec::new();
    for (key, limits) in [
        ("securityRules", Some(Cloud::Azure.custom_priorities())),
        ("defaultSecurityRules", None),
    ] {
        let items = match fields.get(key).items() {
            Ok(items) => items,
            Err(error) => {
                unreadable::add(&mut group, Err(error), 0, Known::default(), |_| {
                    Ok(Vec::new())
                });
                continue;
            }
        };
        for item in items {
            read_rule(
                &mut group,
                &item,
                &mut counted,
                Written::Nsg {
                    limits: limits.clone(),
                    taken: &mut taken,
                },
            );
        }
    }
    if !fields.has("defaultSecurityRules") {
        for (direction, rule) in default_rules(&id, &mut counted) {
            group.rules_mut(direction).push(rule);
        }
    }
    blocked_in_vnets(&mut group);
    for subnet in fields.get("subnets").items()? {
        inv.add_subnet(Subnet {
            id: id_of(&subnet.get("id"))?,
            cidrs: Vec::new(),
            layers: vec![id.clone()],
        });
    }
    inv.insert_group(group);
    Ok(())
}

/// How an export wrote a rule: in the NSG itself (with the documented limits checked), or
/// expanded, as list-effective-nsg lists it.
#[derive(Debug)]
enum Written<'t> {
    Nsg {
        limits: Option<std::ops::RangeInclusive<i64>>,
        /// The priorities already held, per direction.
        taken: &'t mut Vec<(Direction, i64)>,
    },
    Effective,
}

/// Reads one rule into its NSG, or what stands for it.
fn read_rule(group: &mut SecurityGroup, item: &Node, counted: &mut [usize; 2], written: Written) {
    let fields = properties(item);
    let direction = fields
        .get("direction")
        .required("Inbound or Outbound", Direction::parse);
    let index = unreadable::next_index(counted, &direction);
    let known = Known {
        id: item.get("name").text().ok().flatten(),
        ..Known::read(&fields, ["access", "priority", "", "description"])
    };
    let id = group.id.clone();
    unreadable::add(group, direction, index, known, |direction| {
        rules(item, &id, index, direction, written)
    });
}

/// What no VNet carries, whatever an NSG allows: a rule ahead of every other in each
/// direction, so that the verdict names why.
fn blocked_in_vnets(group: &mut SecurityGroup) {
    let id = group.id.clone();
    for direction in [Direction::Inbound, Direction::Outbound] {
        for (name, number) in Cloud::Azure.never_carried() {
            let rules = group.rules_mut(direction);
            let index = rules.len();
            rules.push(Rule {
                action: Action::Drop,
                service: Service::ports(Protocol::Other(*number), Ports::All),
                peer: Peer::All,
                local: Peer::All,
                priority: Some(0),
                origin: Origin {
                    group: id.as_str().into(),
                    index,
                    id: Some(format!("vnet-blocks-{}", name.to_ascii_lowercase())),
                    description: Some(format!("{name} packets are blocked within VNets")),
                },
            });
        }
    }
}

/// The default rules every NSG has (Azure documentation, "Network security groups: default
/// security rules"), for exports that leave them out.
fn default_rules(group: &str, counted: &mut [usize; 2]) -> Vec<(Direction, Rule)> {
    let rows = [
        (
            "AllowVnetInBound",
            65000,
            Direction::Inbound,
            Action::Accept,
            tag("VirtualNetwork"),
            tag("VirtualNetwork"),
        ),
        (
            "AllowAzureLoadBalancerInBound",
            65001,
            Direction::Inbound,
            Action::Accept,
            tag("AzureLoadBalancer"),
            String::new(),
        ),
        (
            "DenyAllInBound",
            65500,
            Direction::Inbound,
            Action::Drop,
            String::new(),
            String::new(),
        ),
        (
            "AllowVnetOutBound",
            65000,
            Direction::Outbound,
            Action::Accept,
            tag("VirtualNetwork"),
            tag("VirtualNetwork"),
        ),
        (
            "AllowInternetOutBound",
            65001,
            Direction::Outbound,
            Action::Accept,
            tag("Internet"),
            String::new(),
        ),
        (
            "DenyAllOutBound",
            65500,
            Direction::Outbound,
            Action::Drop,
            String::new(),
            String::new(),
        ),
    ];
    let set = |id: String| {
        if id.is_empty() {
            Peer::All
        } else {
            Peer::AddressSet(id)
        }
    };
    rows.into_iter()
        .map(|(name, priority, direction, action, peer, local)| {
            let index = &mut counted[usize::from(direction == Direction::Outbound)];
            *index += 1;
            let rule = Rule {
                action,
                service: Service::ports(Protocol::All, Ports::All),
                peer: set(peer),
                local: set(local),
                priority: Some(priority),
                origin: Origin {
                    group: group.into(),
                    index: *index - 1,
                    id: Some(name.to_string()),
                    description: Some("default rule".to_string()),
                },
            };
            (direction, rule)
        })
        .collect()
}

/// One security rule as sgprobe rules: one per (source, destination) address pair it names.
/// `Written::Effective`: list-effective-nsg's rules, whose tags come with their prefixes.
fn rules(
    item: &Node,
    group: &str,
    index: usize,
    direction: Direction,
    written: Written,
) -> Result<Vec<Rule>, SourceError> {
    let fields = properties(item);
    let expanded = matches!(written, Written::Effective);
    let action = fields
        .get("access")
        .required("Allow or Deny", Action::parse)?;
    let priority_node = fields.get("priority");
    let priority = priority_node.required("a priority", |t| t.parse::<i64>().ok())?;
    if let Written::Nsg { limits, taken } = written {
        if let Some(limits) = limits
            && !limits.contains(&priority)
        {
            return Err(priority_node.error(&format!(
                "a priority {}-{}",
                limits.start(),
                limits.end()
            )));
        }
        if taken.contains(&(direction, priority)) {
            return Err(priority_node.error(&format!(
                "a priority no other {direction} rule of the NSG has (each is unique per direction)"
            )));
        }
        taken.push((direction, priority));
    }
    // An NSG rule's protocols are Tcp, Udp, Icmp, Esp, Ah or * (Any); effective rules say All.
    let protocol = fields
        .get("protocol")
        .required("Tcp, Udp, Icmp, Esp, Ah or *", |t| {
            match t.to_ascii_lowercase().as_str() {
                "*" | "any" | "all" => Some(Protocol::All),
                "tcp" | "udp" | "icmp" | "esp" | "ah" => Protocol::parse(t),
                _ => None,
            }
        })?;
    let (ports, source_ports) = if protocol.has_ports() || protocol == Protocol::All {
        (
            ranges(&fields, "destinationPortRange")?,
            ranges(&fields, "sourcePortRange")?,
        )
    } else {
        (Ports::All, Ports::All)
    };
    let source = addresses(&fields, "source", expanded)?;
    let destination = addresses(&fields, "destination", expanded)?;
    let (peers, locals) = match direction {
        Direction::Inbound => (source, destination),
        Direction::Outbound => (destination, source),
    };
    let origin = Origin {
        group: group.into(),
        index,
        id: item.get("name").text()?,
        description: fields.get("description").text()?,
    };
    // Azure's one ICMP protocol covers ICMP over IPv4 and ICMPv6 alike.
    let protocols: &[Protocol] = if protocol == Protocol::Icmp {
        &[Protocol::Icmp, Protocol::Icmpv6]
    } else {
        std::slice::from_ref(&protocol)
    };
    let mut out = Vec::new();
    for peer in &peers {
        for local in &locals {
            for protocol in protocols {
                out.push(Rule {
                    action,
                    service: Service::Ports {
                        protocol: *protocol,
                        ports: ports.clone(),
                        icmp: IcmpMatch::default(),
                        source_ports: source_ports.clone(),
                    },
                    peer: peer.clone(),
                    local: local.clone(),
                    priority: Some(priority),
                    origin: origin.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// `{key}` (one range, `*` for all) or `{key}s` (a list): `22`, `8000-8100`.
fn ranges(fields: &Node, key: &str) -> Result<Ports, SourceError> {
    let mut texts: Vec<(Node, String)> = Vec::new();
    let one = fields.get(key);
    texts.extend(one.text()?.map(|t| (one.clone(), t)));
    for item in fields.get(&format!("{key}s")).items()? {
        texts.extend(item.text()?.map(|t| (item.clone(), t)));
    }
    let mut out = Vec::new();
    let range = |text: &str| -> Option<PortRange> {
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        PortRange::from_wire(a.trim().parse().ok()?, b.trim().parse().ok()?)
    };
    for (node, text) in texts {
        if text == "*" {
            return Ok(Ports::All);
        }
        out.push(range(&text).ok_or_else(|| node.error("*, a port 0-65535 or a range a-b"))?);
    }
    Ok(if out.is_empty() {
        Ports::All
    } else {
        Ports::from_ranges(out)
    })
}

/// The addresses one side of a rule names: `{side}AddressPrefix`, `{side}AddressPrefixes`,
/// `{side}ApplicationSecurityGroups`; list-effective-nsg's expanded prefixes replace a tag.
fn addresses(fields: &Node, side: &str, expanded: bool) -> Result<Vec<Peer>, SourceError> {
    let expanded_key = format!(
        "expanded{}{}AddressPrefix",
        side[..1].to_uppercase(),
        &side[1..]
    );
    if expanded && !fields.get(&expanded_key).items()?.is_empty() {
        return prefixes(&fields.get(&expanded_key))
            .map(|nets| nets.into_iter().map(Peer::Cidr).collect());
    }
    let mut peers = Vec::new();
    let one = fields.get(&format!("{side}AddressPrefix"));
    let mut texts: Vec<(Node, String)> =
        one.text()?.map(|t| (one.clone(), t)).into_iter().collect();
    for item in fields.get(&format!("{side}AddressPrefixes")).items()? {
        texts.extend(item.text()?.map(|t| (item.clone(), t)));
    }
    for (node, text) in texts {
        peers.push(match text.as_str() {
            "*" | "Any" | "any" => Peer::All,
            _ => match parse_net(&text) {
                Some(net) => Peer::Cidr(net),
                None if text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) =>
                {
                    Peer::AddressSet(tag(&text))
                }
                None => return Err(node.error("*, a CIDR, an address or a service tag")),
            },
        });
    }
    for asg in fields
        .get(&format!("{side}ApplicationSecurityGroups"))
        .items()?
    {
        peers.push(Peer::Group(id_of(&asg.get("id"))?));
    }
    if peers.is_empty() {
        return Err(fields.error(&format!(
            "{side}AddressPrefix, {side}AddressPrefixes or {side}ApplicationSecurityGroups"
        )));
    }
    Ok(peers)
}

fn prefixes(node: &Node) -> Result<Vec<IpNet>, SourceError> {
    let mut nets = Vec::new();
    for item in node.items()? {
        nets.push(item.required("a CIDR or an address", parse_net)?);
    }
    Ok(nets)
}

/// `az network nic list-effective-nsg`: one entry per NSG applied to the NIC, each naming
/// where it is associated (the NIC, or the NIC's subnet), with the NSG's rules and their
/// tags expanded. The NIC is an instance bound to its own NSG, in the subnet an entry names.
fn effective(entries: &[&Node], inv: &mut Inventory) -> Result<(), SourceError> {
    let mut nic = None;
    let mut subnet = None;
    for object in entries {
        let nsg = object.get("networkSecurityGroup").get("id");
        let id = id_of(&nsg)?;
        let mut group = SecurityGroup::new(&id, Cloud::Azure);
        group.expanded = true;
        let mut counted = [0, 0];
        match object.get("effectiveSecurityRules").items() {
            Ok(items) => {
                for item in items {
                    read_rule(&mut group, &item, &mut counted, Written::Effective);
                }
            }
            Err(error) => unreadable::add(&mut group, Err(error), 0, Known::default(), |_| {
                Ok(Vec::new())
            }),
        }
        blocked_in_vnets(&mut group);
        let association = object.get("association");
        let on_nic = association.get("networkInterface").get("id");
        let on_subnet = association.get("subnet").get("id");
        if !on_subnet.is_unset() {
            let subnet_id = id_of(&on_subnet)?;
            if on_nic.is_unset() {
                inv.add_subnet(Subnet {
                    id: subnet_id.clone(),
                    cidrs: Vec::new(),
                    layers: vec![id.clone()],
                });
            }
            subnet = Some(Located {
                value: subnet_id,
                at: on_subnet.place(),
            });
        }
        if !on_nic.is_unset() {
            nic = Some((id_of(&on_nic)?, on_nic.place(), id.clone(), nsg.place()));
        }
        inv.insert_group(group);
    }
    if let Some((nic_id, at, nsg, nsg_at)) = nic {
        let mut instance = Instance::new(last_segment(&nic_id), at);
        instance.id = Some(nic_id);
        instance.security_groups.push(Located {
            value: nsg,
            at: nsg_at,
        });
        instance.subnet = subnet;
        super::add_instance(inv, entries[0].file(), instance)?;
    }
    Ok(())
}

fn last_segment(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

/// A NIC as an instance: its private addresses, its NSG, its subnet and its application
/// security groups. A NIC with no NSG is bound to a group that lets everything through
/// (its subnet's NSG still applies).
fn nic(object: &Node, inv: &mut Inventory) -> Result<Instance, SourceError> {
    let id = id_of(&object.get("id"))?;
    let fields = properties(object);
    let name = object
        .get("name")
        .text()?
        .unwrap_or_else(|| last_segment(&id));
    let mut instance = Instance::new(name, object.place());
    instance.id = Some(id);
    for config in fields.get("ipConfigurations").items()? {
        let config = properties(&config);
        instance
            .addresses
            .extend(config.get("privateIPAddress").address()?);
        // Present where the export expands the public IP resource (`az vm show -d` does).
        let public = properties(&config.get("publicIPAddress"));
        instance
            .public_addresses
            .extend(public.get("ipAddress").address()?);
        let subnet = config.get("subnet").get("id");
        if instance.subnet.is_none() && !subnet.is_unset() {
            instance.subnet = Some(Located {
                value: id_of(&subnet)?,
                at: subnet.place(),
            });
        }
        for asg in config.get("applicationSecurityGroups").items()? {
            let asg = id_of(&asg.get("id"))?;
            if !instance.application_security_groups.contains(&asg) {
                instance.application_security_groups.push(asg);
            }
        }
    }
    let nsg = fields.get("networkSecurityGroup").get("id");
    if nsg.is_unset() {
        inv.groups
            .entry(NO_NIC_NSG.into())
            .or_insert_with(|| no_nic_nsg().into());
        instance.security_groups.push(Located {
            value: NO_NIC_NSG.to_string(),
            at: fields.get("networkSecurityGroup").place(),
        });
    } else {
        instance.security_groups.push(Located {
            value: id_of(&nsg)?,
            at: nsg.place(),
        });
    }
    Ok(instance)
}

fn no_nic_nsg() -> SecurityGroup {
    SecurityGroup::allow_all(
        NO_NIC_NSG,
        Cloud::Azure,
        "the NIC has no NSG: only its subnet's NSG filters",
        "no NSG on the NIC",
    )
}

/// A VNet: its address space (and its peers') is the VirtualNetwork tag; its subnets carry
/// their prefixes and NSGs.
fn vnet(object: &Node, inv: &mut Inventory) -> Result<(), SourceError> {
    let fields = properties(object);
    let mut members = prefixes(&fields.get("addressSpace").get("addressPrefixes"))?;
    for peering in fields.get("virtualNetworkPeerings").items()? {
        let peering = properties(&peering);
        members.extend(prefixes(
            &peering.get("remoteAddressSpace").get("addressPrefixes"),
        )?);
    }
    let set = inv
        .address_sets
        .entry(tag("VirtualNetwork"))
        .or_insert_with(|| AddressSet {
            id: tag("VirtualNetwork"),
            ..AddressSet::default()
        });
    set.members.extend(members);
    for subnet in fields.get("subnets").items()? {
        let id = id_of(&subnet.get("id"))?;
        let subnet = properties(&subnet);
        let mut cidrs: Vec<IpNet> = subnet
            .get("addressPrefix")
            .parsed("a CIDR", parse_net)?
            .into_iter()
            .collect();
        cidrs.extend(prefixes(&subnet.get("addressPrefixes"))?);
        let nsg = subnet.get("networkSecurityGroup").get("id");
        let layers = if nsg.is_unset() {
            Vec::new()
        } else {
            vec![id_of(&nsg)?]
        };
        inv.add_subnet(Subnet { id, cidrs, layers });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{Direction, Flow, FlowPeer, parse_port_spec};
    use crate::policy::{Predicted, evaluate, layers};
    use crate::sources::{Format, parse};

    #[test]
    fn effective_rules_carry_their_tags_expanded_so_nothing_is_unknown() {
        // `az network nic list-effective-nsg`: per association, effectiveSecurityRules with
        // expandedSourceAddressPrefix/expandedDestinationAddressPrefix for service tags.
        let text = r#"{"value": [{
          "association": {"networkInterface": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/web-1-nic"}},
          "networkSecurityGroup": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg-nic"},
          "effectiveSecurityRules": [
            {"name": "securityRules/AllowHttps", "protocol": "Tcp", "sourcePortRange": "0-65535", "destinationPortRange": "443-443", "sourceAddressPrefix": "0.0.0.0/0", "destinationAddressPrefix": "0.0.0.0/0", "access": "Allow", "priority": 100, "direction": "Inbound"},
            {"name": "defaultSecurityRules/AllowVnetInBound", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "VirtualNetwork", "expandedSourceAddressPrefix": ["10.1.0.0/16", "168.63.129.16/32"], "destinationAddressPrefix": "VirtualNetwork", "expandedDestinationAddressPrefix": ["10.1.0.0/16", "168.63.129.16/32"], "access": "Allow", "priority": 65000, "direction": "Inbound"},
            {"name": "defaultSecurityRules/DenyAllInBound", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "0.0.0.0/0", "destinationAddressPrefix": "0.0.0.0/0", "access": "Deny", "priority": 65500, "direction": "Inbound"}
          ]}]}"#;
        let mut inv = parse(Format::Azure, Path::new("effective.json"), text, None).expect("valid");
        inv.instances[0].addresses = vec!["10.1.1.4".parse().expect("address")];
        let instance = &inv.instances[0];
        let layers = layers(&inv, instance).expect("links");
        let predicted = |spec: &str, peer: &str| {
            let flow = Flow {
                address: instance.addresses[0],
                direction: Direction::Inbound,
                spec: parse_port_spec(spec).expect("spec")[0],
                peer: FlowPeer::parse(peer).expect("peer"),
                peer_port: None,
            };
            evaluate(&inv, &layers, &flow).predicted
        };
        assert_eq!(predicted("tcp:443", "1.2.3.4"), Predicted::Open);
        assert_eq!(
            predicted("tcp:22", "10.1.2.3"),
            Predicted::Open,
            "VirtualNetwork, expanded"
        );
        assert_eq!(
            predicted("tcp:22", "10.9.0.1"),
            Predicted::Closed,
            "not unknown"
        );
    }
}
