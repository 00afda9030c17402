//! Alibaba Cloud exports, as `aliyun ecs ...` prints them (the API response):
//! DescribeSecurityGroupAttribute, DescribeSecurityGroups, DescribeInstances,
//! DescribePrefixListAttributes.
//!
//! A permission has a Direction, a Policy (accept or drop), a Priority 1-100 (smaller
//! first; on equal priority drop wins), IpProtocol with PortRange `a/b` (`-1/-1` where the
//! protocol has no ports), and one peer: SourceCidrIp, Ipv6SourceCidrIp, SourceGroupId or
//! SourcePrefixListId inbound, the Dest* fields outbound. Quintuple rules also restrict the
//! source port (SourcePortRange: the port the initiator sends from) and the instance's own
//! address (DestCidrIp inbound, SourceCidrIp outbound): in the API "the initiator of traffic
//! is the source, the receiver the destination" (AuthorizeSecurityGroup).
//!
//! What the rules do not say is added as implicit rules, named in explanations:
//! - a basic group allows all outbound traffic, an enterprise group denies it (ECS user
//!   guide, "Security group rules"); DescribeSecurityGroups gives the type
//!   (SecurityGroupType `normal` or `enterprise`), and InnerAccessPolicy `Accept` shows a
//!   basic group. Where neither says, the outbound default is unknown.
//! - InnerAccessPolicy `Accept`: members reach each other over private addresses, ahead of
//!   every custom rule (ModifySecurityGroupPolicy).
//! - NicType: in a VPC a rule covers public and internal traffic alike; in the classic
//!   network (no VpcId) an `internet` rule holds at the members' public addresses and an
//!   `intranet` one at their private addresses.

/// The exports this module reads, for `sgprobe import --help`.
pub(crate) const READS: &str = "DescribeSecurityGroupAttribute, DescribeSecurityGroups, DescribeInstances, DescribePrefixListAttributes";

use super::json::Node;
use super::unreadable::{self, Known};
use super::{SourceError, address_members, group_id, known_shape};
use crate::model::{
    Action, AddressSet, Cloud, Direction, Instance, Inventory, Located, Origin, Peer, PortRange,
    Ports, Protocol, Rule, SecurityGroup, Service, parse_net,
};

/// After every custom rule (priorities 1-100).
const AFTER_CUSTOM: i64 = 101;
/// Ahead of every custom rule.
const AHEAD_OF_CUSTOM: i64 = 0;

pub fn import(root: &Node, id: Option<&str>) -> Result<Inventory, SourceError> {
    let mut inv = Inventory::default();
    let mut recognised = false;
    if root.has("Permissions") {
        recognised = true;
        let group = group_attribute(root, id)?;
        inv.insert_group(group);
    }
    if root.has("SecurityGroups") {
        recognised = true;
        for item in root.get("SecurityGroups").get("SecurityGroup").elements()? {
            let item = item.node();
            let id = item.get("SecurityGroupId").required_text()?;
            let mut group = SecurityGroup::new(&id, Cloud::Alibaba);
            group.name = item.get("SecurityGroupName").text()?;
            let kind = item.get("SecurityGroupType");
            let basic = kind.required("normal or enterprise", |t| {
                match t.to_ascii_lowercase().as_str() {
                    "normal" => Some(true),
                    "enterprise" => Some(false),
                    _ => None,
                }
            })?;
            push(&mut group.egress, outbound_default(&id, Some(basic)));
            inv.insert_group(group);
        }
    }
    if root.has("PrefixListId") && root.has("Entries") {
        // DescribePrefixListAttributes: a prefix list's entries, as SourcePrefixListId names it.
        recognised = true;
        let mut members = Vec::new();
        for entry in root.get("Entries").get("Entry").items()? {
            members.extend(address_members(&entry.get("Cidr"))?);
        }
        let set = AddressSet {
            id: root.get("PrefixListId").required_text()?,
            name: root.get("PrefixListName").text()?,
            members,
            ..AddressSet::default()
        };
        inv.address_sets.insert(set.id.clone(), set);
    }
    if root.has("Instances") {
        recognised = true;
        for item in root.get("Instances").get("Instance").elements()? {
            super::add_instance(&mut inv, root.file(), instance(&item.node())?)?;
        }
    }
    known_shape(
        root,
        recognised,
        "an Alibaba Cloud export: Permissions (DescribeSecurityGroupAttribute), SecurityGroups, Instances or a prefix list (DescribePrefixListAttributes)",
    )?;
    Ok(inv)
}

fn group_attribute(root: &Node, id: Option<&str>) -> Result<SecurityGroup, SourceError> {
    let id = match root.get("SecurityGroupId").text()? {
        Some(id) => id,
        None => group_id(root, id, "DescribeSecurityGroupAttribute")?,
    };
    let mut group = SecurityGroup::new(&id, Cloud::Alibaba);
    group.name = root.get("SecurityGroupName").text()?;
    let inner = root.get("InnerAccessPolicy");
    let inner_accept = match inner.text()? {
        None => false,
        Some(_) => inner.required("Accept or Drop", Action::parse)? == Action::Accept,
    };
    let classic = root.get("VpcId").is_unset();
    let mut counted = [0, 0];
    let permissions = match root.get("Permissions").get("Permission").items() {
        Ok(permissions) => permissions,
        Err(error) => {
            unreadable::add(&mut group, Err(error), 0, Known::default(), |_| {
                Ok(Vec::new())
            });
            Vec::new()
        }
    };
    for item in permissions {
        let direction = item
            .get("Direction")
            .required("ingress or egress", Direction::parse);
        let index = unreadable::next_index(&mut counted, &direction);
        let known = Known::read(
            &item,
            ["Policy", "Priority", "SecurityGroupRuleId", "Description"],
        );
        unreadable::add(&mut group, direction, index, known, |direction| {
            permission(&item, &id, direction, index, classic).map(|rule| vec![rule])
        });
    }
    if inner_accept {
        for direction in [Direction::Inbound, Direction::Outbound] {
            // Over the internal network: between members' private addresses only.
            let rules = group.rules_mut(direction);
            let rule = Rule {
                local: Peer::Group(id.clone()),
                ..implicit(
                    &id,
                    "inner-accept",
                    Action::Accept,
                    Peer::Group(id.clone()),
                    AHEAD_OF_CUSTOM,
                    "InnerAccessPolicy Accept: members reach each other",
                )
            };
            push(rules, rule);
        }
    }
    // Only a basic group has InnerAccessPolicy Accept; Drop leaves the type open.
    push(
        &mut group.egress,
        outbound_default(&id, inner_accept.then_some(true)),
    );
    Ok(group)
}

/// The default for outbound traffic no custom rule matches: `Some(true)` a basic group
/// (allow), `Some(false)` an enterprise group (deny), `None` not known from this export.
fn outbound_default(id: &str, basic: Option<bool>) -> Rule {
    match basic {
        Some(true) => implicit(
            id,
            "default-outbound",
            Action::Accept,
            Peer::All,
            AFTER_CUSTOM,
            "basic group: all outbound traffic allowed by default",
        ),
        Some(false) => implicit(
            id,
            "default-outbound",
            Action::Drop,
            Peer::All,
            AFTER_CUSTOM,
            "enterprise group: outbound traffic denied by default",
        ),
        None => implicit(
            id,
            "default-outbound-untyped",
            Action::Accept,
            Peer::AddressSet(format!("{id}:type")),
            AFTER_CUSTOM,
            "basic groups allow all outbound, enterprise groups deny it: export DescribeSecurityGroups to say which this is",
        ),
    }
}

/// Adds a rule at the end of a list, indexed by its position there.
fn push(rules: &mut Vec<Rule>, mut rule: Rule) {
    rule.origin.index = rules.len();
    rules.push(rule);
}

fn implicit(group: &str, id: &str, action: Action, peer: Peer, priority: i64, why: &str) -> Rule {
    Rule {
        action,
        service: Service::ports(Protocol::All, Ports::All),
        peer,
        local: Peer::All,
        priority: Some(priority),
        origin: Origin {
            group: group.into(),
            index: 0,
            id: Some(id.to_string()),
            description: Some(why.to_string()),
        },
    }
}

fn permission(
    item: &Node,
    group: &str,
    direction: Direction,
    index: usize,
    classic: bool,
) -> Result<Rule, SourceError> {
    let action = item
        .get("Policy")
        .required("accept or drop", Action::parse)?;
    let priority = item.get("Priority").required("a priority 1-100", |t| {
        t.parse::<i64>().ok().filter(|p| (1..=100).contains(p))
    })?;
    let protocol = item
        .get("IpProtocol")
        .required("TCP, UDP, ICMP, ICMPv6, GRE or ALL", Protocol::parse)?;
    let port_range = |key: &str| -> Result<Option<PortRange>, SourceError> {
        let range = item.get(key);
        let ports = range.parsed("a port range a/b, or -1/-1", |t| {
            let (a, b) = t.split_once('/')?;
            match (a.trim().parse::<i32>().ok()?, b.trim().parse::<i32>().ok()?) {
                (-1, -1) => Some(None),
                (a, b) => Some(Some(PortRange::new(
                    u16::try_from(a).ok().filter(|a| *a >= 1)?,
                    u16::try_from(b).ok()?,
                )?)),
            }
        })?;
        Ok(ports.flatten())
    };
    let (ports, source_ports) = (port_range("PortRange")?, port_range("SourcePortRange")?);
    if item.get("PortRange").is_unset() {
        return Err(item.get("PortRange").error("a port range a/b, or -1/-1"));
    }
    let service = match (protocol.has_ports(), ports) {
        (true, Some(range)) => Service::Ports {
            protocol,
            ports: Ports::from_ranges(vec![range]),
            icmp: Default::default(),
            source_ports: source_ports.map_or(Ports::All, |r| Ports::from_ranges(vec![r])),
        },
        (true, None) => {
            return Err(item
                .get("PortRange")
                .error("a port range 1-65535 (a/b) for TCP or UDP"));
        }
        (false, _) => Service::ports(protocol, Ports::All),
    };
    // The initiator is the source: inbound the peer, outbound the instance.
    let (peer_side, local_side) = match direction {
        Direction::Inbound => ("Source", "Dest"),
        Direction::Outbound => ("Dest", "Source"),
    };
    let cidr = |side: &str| -> Result<Option<Peer>, SourceError> {
        Ok(item
            .get(&format!("{side}CidrIp"))
            .parsed("an IPv4 CIDR", parse_net)?
            .or(item
                .get(&format!("Ipv6{side}CidrIp"))
                .parsed("an IPv6 CIDR", parse_net)?)
            .map(Peer::Cidr))
    };
    let peer = if let Some(peer) = cidr(peer_side)? {
        peer
    } else if let Some(group) = item.get(&format!("{peer_side}GroupId")).text()? {
        Peer::Group(group)
    } else if let Some(list) = item.get(&format!("{peer_side}PrefixListId")).text()? {
        Peer::AddressSet(list)
    } else {
        return Err(item.error(&format!(
            "a peer: {peer_side}CidrIp, Ipv6{peer_side}CidrIp, {peer_side}GroupId or {peer_side}PrefixListId"
        )));
    };
    // In a VPC a rule covers public and internal traffic alike; a classic-network group's
    // rules hold for one NIC, the public (`internet`) or the internal (`intranet`) one.
    // Quintuple rules are a VPC's; a classic group's rules name their NIC instead.
    let local = if classic {
        let nic = item.get("NicType");
        match nic.text()?.as_deref() {
            Some("internet") => Peer::GroupPublic(group.to_string()),
            None | Some("intranet") => Peer::Group(group.to_string()),
            Some(_) => return Err(nic.error("internet or intranet")),
        }
    } else {
        cidr(local_side)?.unwrap_or(Peer::All)
    };
    Ok(Rule {
        action,
        service,
        peer,
        local,
        priority: Some(priority),
        origin: Origin {
            group: group.into(),
            index,
            id: item.get("SecurityGroupRuleId").text()?,
            description: item.get("Description").text()?,
        },
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
    let mut private = Vec::new();
    for list in [
        item.get("VpcAttributes").get("PrivateIpAddress"),
        item.get("InnerIpAddress"),
    ] {
        for address in list.get("IpAddress").items()? {
            private.extend(address.address()?);
        }
    }
    for interface in item
        .get("NetworkInterfaces")
        .get("NetworkInterface")
        .items()?
    {
        private.extend(interface.get("PrimaryIpAddress").address()?);
        for v6 in interface.get("Ipv6Sets").get("Ipv6Set").items()? {
            private.extend(v6.get("Ipv6Address").address()?);
        }
    }
    let mut public = Vec::new();
    for address in item.get("PublicIpAddress").get("IpAddress").items()? {
        public.extend(address.address()?);
    }
    public.extend(item.get("EipAddress").get("IpAddress").address()?);
    for (from, into) in [
        (private, &mut instance.addresses),
        (public, &mut instance.public_addresses),
    ] {
        for address in from {
            if !into.contains(&address) {
                into.push(address);
            }
        }
    }
    for group in item
        .get("SecurityGroupIds")
        .get("SecurityGroupId")
        .items()?
    {
        instance.security_groups.push(Located {
            value: group.required_text()?,
            at: group.place(),
        });
    }
    instance.vpc = item.get("VpcAttributes").get("VpcId").text()?;
    let vswitch = item.get("VpcAttributes").get("VSwitchId");
    if let Some(value) = vswitch.text()? {
        instance.subnet = Some(Located {
            value,
            at: vswitch.place(),
        });
    }
    instance
        .labels
        .extend(item.get("Tags").get("Tag").pairs("TagKey", "TagValue")?);
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{Direction, Flow, FlowPeer, parse_port_spec};
    use crate::policy::{Predicted, evaluate, layers};
    use crate::sources::{Format, Merged, parse};

    #[test]
    fn classic_network_rules_hold_on_their_own_nic_and_vpc_rules_on_both() {
        // ECS API DescribeSecurityGroupAttribute, NicType: internet (public NIC) or intranet
        // (internal NIC), in the classic network; in a VPC only intranet, covering both.
        let group = |vpc: &str| {
            format!(
                r#"{{"SecurityGroupId": "sg-c", {vpc} "InnerAccessPolicy": "Drop", "Permissions": {{"Permission": [
                  {{"Direction": "ingress", "IpProtocol": "TCP", "PortRange": "22/22", "SourceCidrIp": "0.0.0.0/0", "Policy": "Accept", "Priority": 1, "NicType": "internet"}},
                  {{"Direction": "ingress", "IpProtocol": "TCP", "PortRange": "80/80", "SourceCidrIp": "0.0.0.0/0", "Policy": "Accept", "Priority": 1, "NicType": "intranet"}}]}}}}"#
            )
        };
        let instances = r#"{"Instances": {"Instance": [{"InstanceId": "i-1", "InnerIpAddress": {"IpAddress": ["10.0.0.5"]}, "PublicIpAddress": {"IpAddress": ["47.0.0.5"]}, "SecurityGroupIds": {"SecurityGroupId": ["sg-c"]}}]}}"#;
        for (vpc, public_ssh, private_ssh, public_web) in [
            ("", Predicted::Open, Predicted::Closed, Predicted::Closed),
            (
                r#""VpcId": "vpc-1","#,
                Predicted::Open,
                Predicted::Open,
                Predicted::Open,
            ),
        ] {
            let mut merged = Merged::default();
            for (file, text) in [("g.json", group(vpc)), ("i.json", instances.to_string())] {
                let inv = parse(Format::Alibaba, Path::new(file), &text, None).expect("valid");
                merged.add(Path::new(file), inv).expect("merges");
            }
            let inv = &merged.inventory;
            let instance = &inv.instances[0];
            let layers = layers(inv, instance).expect("links");
            let verdict = |address: &str, spec: &str| {
                let flow = Flow {
                    address: address.parse().expect("address"),
                    direction: Direction::Inbound,
                    spec: parse_port_spec(spec).expect("spec")[0],
                    peer: FlowPeer::parse("1.2.3.4").expect("peer"),
                    peer_port: None,
                };
                evaluate(inv, &layers, &flow).predicted
            };
            assert_eq!(verdict("47.0.0.5", "tcp:22"), public_ssh, "{vpc}");
            assert_eq!(verdict("10.0.0.5", "tcp:22"), private_ssh, "{vpc}");
            assert_eq!(verdict("47.0.0.5", "tcp:80"), public_web, "{vpc}");
        }
    }
}
