//! What an export holds but sgprobe cannot read (a field a cloud adds tomorrow, a value out of
//! its documented range) stands as rules that may match any packet: the rest of the export
//! loads, and only the flows whose verdict depends on the unreadable part become `unknown`.
//! Whether that is acceptable is the reader's choice (`Reading`): the agent keeps going,
//! `eval` and `lint` refuse unless told.

use super::SourceError;
use super::json::Node;
use crate::model::{
    Action, Cloud, Decision, Direction, Inventory, Origin, Peer, Rule, SecurityGroup, Service,
    Unreadable,
};

/// How a group whose id did not read is known: by where it stands in its export.
const NAMELESS: &str = "unreadable group at ";

/// Whether an export with unreadable rules loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The first unreadable part is an error naming its file and field.
    Strict,
    /// Unreadable parts stand as rules that may match anything, and are reported.
    KeepGoing,
}

impl From<SourceError> for Unreadable {
    fn from(error: SourceError) -> Self {
        match error {
            SourceError::Field { path, message, .. } => Unreadable {
                field: path,
                reason: message,
            },
            SourceError::At {
                line,
                column,
                message,
                ..
            } => Unreadable {
                field: format!("line {line}, column {column}"),
                reason: message,
            },
            other => Unreadable {
                field: String::new(),
                reason: other.to_string(),
            },
        }
    }
}

/// What a rule that failed to read may still say of itself, read leniently: its action and
/// priority where those fields read, its id and description.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub action: Option<Action>,
    pub priority: Option<i64>,
    pub id: Option<String>,
    pub description: Option<String>,
}

impl Known {
    /// Reads what it can of a rule, given the keys of its action, priority, id and
    /// description (`""` where the export has none); a field that does not read is unknown.
    pub fn read(item: &Node, [action, priority, id, description]: [&str; 4]) -> Known {
        let text = |key: &str| item.get(key).text().ok().flatten();
        Known {
            action: text(action).as_deref().and_then(Action::parse),
            priority: item.get(priority).int().ok().flatten(),
            id: text(id),
            description: text(description),
        }
    }
}

/// The next index of a rule in its direction's list, as an export lists them (a rule whose
/// direction does not read counts as inbound).
pub fn next_index(counted: &mut [usize; 2], direction: &Result<Direction, SourceError>) -> usize {
    let slot = &mut counted[usize::from(matches!(direction, Ok(Direction::Outbound)))];
    *slot += 1;
    *slot - 1
}

/// The rules standing for one unreadable rule at `index` of `group`: it may match any
/// packet, with each action it may have (the only one of an allow-only cloud, the one its
/// export still says, else both), at its priority or, where that is unreadable too, ahead of
/// every other rule (it could be anywhere).
pub fn rules(
    cloud: Cloud,
    group: &str,
    index: usize,
    known: Known,
    error: SourceError,
) -> Vec<Rule> {
    let semantics = cloud.semantics();
    let actions: &[Action] = match (semantics.decision, known.action) {
        (Decision::AllowUnion, _) => &[Action::Accept],
        (_, Some(Action::Accept)) => &[Action::Accept],
        (_, Some(Action::Drop)) => &[Action::Drop],
        (_, None) => &[Action::Accept, Action::Drop],
    };
    // A priority outside the cloud's range may be why the rule failed: trust none such.
    let priority = match semantics.decision {
        Decision::Priority(_) => Some(
            known
                .priority
                .filter(|p| cloud.custom_priorities().contains(p))
                .unwrap_or(i64::MIN),
        ),
        _ => known.priority,
    };
    let unreadable = Unreadable::from(error);
    actions
        .iter()
        .map(|action| Rule {
            action: *action,
            service: Service::Unreadable(unreadable.clone()),
            peer: Peer::All,
            local: Peer::All,
            priority,
            origin: Origin {
                group: group.into(),
                index,
                id: known.id.clone(),
                description: known.description.clone(),
            },
        })
        .collect()
}

/// Adds the rules one export item reads as, or, where it does not read, the rules standing
/// for it (in both directions when its direction did not read either).
pub fn add(
    group: &mut SecurityGroup,
    direction: Result<Direction, SourceError>,
    index: usize,
    known: Known,
    read: impl FnOnce(Direction) -> Result<Vec<Rule>, SourceError>,
) {
    let (directions, error) = match direction {
        Ok(direction) => match read(direction) {
            Ok(rules) => {
                group.rules_mut(direction).extend(rules);
                return;
            }
            Err(error) => (vec![direction], error),
        },
        Err(error) => (vec![Direction::Inbound, Direction::Outbound], error),
    };
    let stand = rules(group.cloud, &group.id, index, known, error);
    for direction in directions {
        group.rules_mut(direction).extend(stand.iter().cloned());
    }
}

/// A group of which nothing past its id could be read (or not even that: then it is known
/// by where it stands in the export, and reported, though nothing can be bound to it).
pub fn group(cloud: Cloud, id: Option<String>, at: &Node, error: SourceError) -> SecurityGroup {
    let id = id.unwrap_or_else(|| format!("{NAMELESS}{}", at.path()));
    let mut group = SecurityGroup::new(id, cloud);
    let unreadable = Unreadable::from(error);
    for direction in [Direction::Inbound, Direction::Outbound] {
        let error = SourceError::Field {
            file: at.file().to_path_buf(),
            path: unreadable.field.clone(),
            message: unreadable.reason.clone(),
        };
        add(&mut group, Ok(direction), 0, Known::default(), |_| {
            Err(error)
        });
    }
    group
}

/// Every unreadable part of an inventory: the group holding it and what failed, once each.
pub fn report(inv: &Inventory) -> Vec<(&str, &Unreadable)> {
    // A set beside the list: an export of a shape sgprobe does not know may be unreadable
    // throughout, and a search of the list for each of its rules would be quadratic.
    let mut seen = std::collections::HashSet::new();
    let mut found: Vec<(&str, &Unreadable)> = Vec::new();
    for group in inv.groups.values() {
        for rule in group.ingress.iter().chain(&group.egress) {
            if let Service::Unreadable(u) = &rule.service
                && seen.insert((group.id.as_str(), u))
            {
                found.push((&group.id, u));
            }
        }
    }
    found
}

/// Under `Reading::Strict`, the first unreadable part of a source's inventory as an error.
pub fn check(reading: Reading, file: &std::path::Path, inv: &Inventory) -> Result<(), SourceError> {
    match (reading, report(inv).first()) {
        (Reading::Strict, Some((group, unreadable))) => Err(SourceError::Unreadable {
            file: file.to_path_buf(),
            group: group.to_string(),
            field: unreadable.field.clone(),
            reason: unreadable.reason.clone(),
        }),
        _ => Ok(()),
    }
}

/// Under `Reading::KeepGoing`, the groups instances are bound to that no source defines,
/// where some group of the exports did not read even its id: it may be any of them, so each
/// stands as a group whose rules are unknown, rather than failing the instance's link (and
/// with it the whole config).
pub fn stand_in_for_nameless(inv: &mut Inventory) {
    let Some(nameless) = inv
        .groups
        .values()
        .find(|g| g.id.starts_with(NAMELESS))
        .map(|g| (g.cloud, g.id.clone()))
    else {
        return;
    };
    let missing: Vec<String> = inv
        .instances
        .iter()
        .flat_map(|i| i.security_groups.iter().chain(&i.subnet_layers))
        .map(|id| id.value.clone())
        .filter(|id| !inv.groups.contains_key(id.as_str()))
        .collect();
    for id in missing {
        let reason = || SourceError::Field {
            file: std::path::PathBuf::new(),
            path: String::new(),
            message: format!(
                "no source defines this group, and the id of {} did not read: it may be that group",
                nameless.1
            ),
        };
        let mut group = SecurityGroup::new(&id, nameless.0);
        for direction in [Direction::Inbound, Direction::Outbound] {
            add(&mut group, Ok(direction), 0, Known::default(), |_| {
                Err(reason())
            });
        }
        inv.insert_group(group);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::{Flow, FlowPeer, Instance, Located, parse_port_spec};
    use crate::policy::{Predicted, evaluate, layers};
    use crate::sources::{Format, Merged, read};

    fn merged(format: Format, files: &[&str]) -> Inventory {
        let mut merged = Merged::default();
        for (n, text) in files.iter().enumerate() {
            let file = format!("export-{n}.json");
            let inv = read(format, Path::new(&file), text, None).expect("the rest reads");
            merged.add(Path::new(&file), inv).expect("merges");
        }
        merged.inventory
    }

    fn verdict(inv: &mut Inventory, group: &str, spec: &str) -> Predicted {
        let mut instance = Instance::new("i", "test");
        instance.addresses = vec!["10.0.0.5".parse().expect("address")];
        instance.security_groups = vec![Located {
            value: group.to_string(),
            at: String::new(),
        }];
        inv.instances = vec![instance];
        let layers = layers(inv, &inv.instances[0]).expect("links");
        let flow = Flow {
            address: "10.0.0.5".parse().expect("address"),
            direction: Direction::Inbound,
            spec: parse_port_spec(spec).expect("spec")[0],
            peer: FlowPeer::parse("203.0.113.9").expect("peer"),
            peer_port: None,
        };
        evaluate(inv, &layers, &flow).predicted
    }

    #[test]
    fn a_rule_whose_action_does_not_read_merges_with_its_groups_other_exports() {
        // QingCloud: DescribeSecurityGroups names the group, DescribeSecurityGroupRules
        // holds its rules; one rule's action is a word sgprobe does not know.
        let groups = r#"{"security_group_set": [{"security_group_id": "sg-q"}]}"#;
        let rules = r#"{"security_group_rule_set": [
          {"security_group_id": "sg-q", "security_group_rule_id": "sgr-1", "priority": 1, "direction": 0, "action": "accept", "protocol": "tcp", "val1": "22"},
          {"security_group_id": "sg-q", "security_group_rule_id": "sgr-2", "priority": 2, "direction": 0, "action": "quarantine", "protocol": "tcp", "val1": "80"}]}"#;
        let mut inv = merged(Format::QingCloud, &[groups, rules]);
        assert_eq!(report(&inv).len(), 1, "one part reported once");
        assert_eq!(verdict(&mut inv, "sg-q", "tcp:22"), Predicted::Open);
        assert_eq!(
            verdict(&mut inv, "sg-q", "tcp:80"),
            Predicted::Unknown,
            "the rule may accept or drop it"
        );
    }

    #[test]
    fn an_unreadable_rule_whose_priority_is_out_of_range_may_decide_anything() {
        // Alibaba priorities are 1-100: a rule at 500 is unreadable, and its priority is no
        // guide to where it stands.
        let group = r#"{"SecurityGroupId": "sg-a", "VpcId": "vpc-1", "Permissions": {"Permission": [
          {"Direction": "ingress", "IpProtocol": "TCP", "PortRange": "22/22", "SourceCidrIp": "0.0.0.0/0", "Policy": "Accept", "Priority": "1"},
          {"Direction": "ingress", "IpProtocol": "TCP", "PortRange": "80/80", "SourceCidrIp": "0.0.0.0/0", "Policy": "Drop", "Priority": "500"}]}}"#;
        let mut inv = merged(Format::Alibaba, &[group]);
        assert_eq!(
            verdict(&mut inv, "sg-a", "tcp:22"),
            Predicted::Unknown,
            "a drop ahead of rule 1 cannot be ruled out"
        );
    }

    #[test]
    fn a_tencent_policy_index_that_does_not_read_is_reported() {
        let policies = r#"{"SecurityGroupPolicySet": {"Ingress": [
          {"PolicyIndex": 0, "Protocol": "TCP", "Port": "22", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"},
          {"PolicyIndex": "first", "Protocol": "TCP", "Port": "80", "CidrBlock": "0.0.0.0/0", "Action": "DROP"}], "Egress": []}}"#;
        let inv = read(Format::Tencent, Path::new("t.json"), policies, Some("sg-t"))
            .expect("the rest reads");
        let reported = report(&inv);
        assert_eq!(reported.len(), 1);
        assert!(
            reported[0].1.field.ends_with("Ingress[1].PolicyIndex"),
            "{reported:?}"
        );
    }

    #[test]
    fn an_icmp_rule_with_a_source_port_range_still_matches_icmp() {
        // Azure writes sourcePortRange on every rule; ICMP has no ports to match it against.
        let nsg = r#"{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n", "securityRules": [
          {"name": "Ping", "protocol": "Icmp", "sourcePortRange": "1000-2000", "destinationPortRange": "*", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Allow", "priority": 100, "direction": "Inbound"}]}"#;
        let mut inv = merged(Format::Azure, &[nsg]);
        let id = inv.groups.keys().next().expect("one NSG").clone();
        assert_eq!(verdict(&mut inv, &id, "icmp"), Predicted::Open);
    }

    #[test]
    fn a_group_whose_id_does_not_read_stands_for_the_groups_no_source_defines() {
        let groups = r#"{"SecurityGroups": [{"GroupId": {"new": "shape"}, "IpPermissions": []}]}"#;
        let mut inv = merged(Format::Aws, &[groups]);
        let mut instance = Instance::new("i", "test");
        instance.security_groups = vec![Located {
            value: "sg-real".to_string(),
            at: String::new(),
        }];
        inv.instances = vec![instance];
        stand_in_for_nameless(&mut inv);
        assert_eq!(verdict(&mut inv, "sg-real", "tcp:22"), Predicted::Unknown);
    }
}
