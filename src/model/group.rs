//! Security groups (and other rule layers) and how each cloud decides with them.

use std::fmt;
use std::sync::Arc;

use super::rule::{Action, Direction, Origin, Peer, Ports, Protocol, Rule, Service};

/// The cloud whose semantics a group follows. Its names, and the list of all clouds, come
/// from the enum itself, so a new cloud cannot be missing from a list or an error message.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum Cloud {
    Tencent,
    QingCloud,
    Aws,
    /// AWS network ACLs: stateless, first match by rule number.
    #[strum(serialize = "aws-nacl")]
    AwsNacl,
    Alibaba,
    OpenStack,
    /// Azure network security groups: by priority, stateful; a NIC's and its subnet's NSG
    /// each decide.
    Azure,
}

super::named_by_variants!(Cloud);

impl Cloud {
    /// IP protocols the cloud never carries, whatever the rules say, by name and number.
    /// Source: Azure Virtual Network FAQ: "Multicast, broadcast, IP-in-IP encapsulated
    /// packets, and Generic Routing Encapsulation (GRE) packets are blocked within VNets."
    pub fn never_carried(self) -> &'static [(&'static str, u8)] {
        match self {
            Cloud::Azure => &[("GRE", 47), ("IP-in-IP", 4)],
            _ => &[],
        }
    }

    /// The priorities a rule written by hand may take, where the cloud orders by priority.
    pub fn custom_priorities(self) -> std::ops::RangeInclusive<i64> {
        match self {
            Cloud::QingCloud => 0..=100,
            Cloud::Alibaba => 1..=100,
            Cloud::AwsNacl => 1..=32766,
            Cloud::Azure => 100..=4096,
            Cloud::Tencent | Cloud::Aws | Cloud::OpenStack => 1..=i64::MAX,
        }
    }

    /// How the groups of one instance decide together (ARCHITECTURE.md §2).
    pub fn semantics(self) -> Semantics {
        use Decision::*;
        let drop_both = |decision, stateful| Semantics {
            decision,
            default_inbound: Action::Drop,
            default_outbound: Action::Drop,
            stateful,
            within_subnet: true,
        };
        match self {
            Cloud::Tencent => drop_both(FirstMatch, true),
            Cloud::QingCloud => Semantics {
                default_outbound: Action::Accept,
                ..drop_both(Priority(Tie::Ambiguous), true)
            },
            // Azure priorities are unique within an NSG's direction: ties do not occur.
            Cloud::Alibaba | Cloud::Azure => drop_both(Priority(Tie::DropFirst), true),
            Cloud::Aws | Cloud::OpenStack => drop_both(AllowUnion, true),
            Cloud::AwsNacl => Semantics {
                within_subnet: false,
                ..drop_both(Priority(Tie::DropFirst), false)
            },
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How equal priorities with different actions resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tie {
    /// The cloud does not say: the verdict is `ambiguous`.
    Ambiguous,
    DropFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Rules in list order (groups in bound order); the first that matches decides.
    FirstMatch,
    /// Rules sorted by priority, lowest first; the first that matches decides.
    Priority(Tie),
    /// Allow-only rules: any match accepts.
    AllowUnion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Semantics {
    pub decision: Decision,
    pub default_inbound: Action,
    pub default_outbound: Action,
    /// A stateful layer lets replies back; a stateless one must match them too.
    pub stateful: bool,
    /// Whether traffic between two addresses of the layer's subnet crosses it: an AWS
    /// network ACL filters only what enters or leaves the subnet.
    pub within_subnet: bool,
}

impl Semantics {
    pub fn default_action(&self, direction: Direction) -> Action {
        match direction {
            Direction::Inbound => self.default_inbound,
            Direction::Outbound => self.default_outbound,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: Option<String>,
    pub cloud: Cloud,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    /// Its rules come from a listing that expands the cloud's tags into addresses (Azure's
    /// effective rules): the same rules, differently written, as the group's own export,
    /// which is read instead where both are given.
    pub expanded: bool,
}

impl SecurityGroup {
    pub fn new(id: impl Into<String>, cloud: Cloud) -> Self {
        SecurityGroup {
            id: id.into(),
            name: None,
            cloud,
            ingress: Vec::new(),
            egress: Vec::new(),
            expanded: false,
        }
    }

    /// A layer that lets everything through both ways, standing for one the cloud does not
    /// apply (a port with port security off, a NIC without an NSG); `why` says so in
    /// explanations.
    pub fn allow_all(id: &str, cloud: Cloud, name: &str, why: &str) -> Self {
        let mut group = SecurityGroup::new(id, cloud);
        group.name = Some(name.to_string());
        for direction in [Direction::Inbound, Direction::Outbound] {
            group.rules_mut(direction).push(Rule {
                action: Action::Accept,
                service: Service::ports(Protocol::All, Ports::All),
                peer: Peer::All,
                local: Peer::All,
                priority: Some(0),
                origin: Origin {
                    group: id.into(),
                    index: 0,
                    id: None,
                    description: Some(why.to_string()),
                },
            });
        }
        group
    }

    /// Shares the group's id among its rules and gives back spare capacity. A 50 MB export
    /// holds a few hundred thousand rules, and a reload holds the old ones beside the new:
    /// each rule's own copy of the id, and the unused part of a list grown rule by rule,
    /// would cost more than the rule.
    pub fn compact(&mut self) {
        let id: Arc<str> = self.id.as_str().into();
        for rule in self.ingress.iter_mut().chain(&mut self.egress) {
            if rule.origin.group == id {
                rule.origin.group = id.clone();
            }
        }
        self.ingress.shrink_to_fit();
        self.egress.shrink_to_fit();
    }

    pub fn rules(&self, direction: Direction) -> &[Rule] {
        match direction {
            Direction::Inbound => &self.ingress,
            Direction::Outbound => &self.egress,
        }
    }

    pub fn rules_mut(&mut self, direction: Direction) -> &mut Vec<Rule> {
        match direction {
            Direction::Inbound => &mut self.ingress,
            Direction::Outbound => &mut self.egress,
        }
    }

    /// Adds the rules of another export of this group (a later page, the other direction),
    /// after its own. A rule at a position already held (the cloud's rule id, else its index)
    /// is the same rule seen twice when equal, and dropped; when different, the exports
    /// disagree and the position is returned.
    pub fn absorb(&mut self, other: SecurityGroup) -> Result<(), RulePosition> {
        if self.name.is_none() {
            self.name = other.name;
        }
        for (direction, rules) in [
            (Direction::Inbound, other.ingress),
            (Direction::Outbound, other.egress),
        ] {
            // Rules of `other` are matched only against those held before it: two rules of one
            // export at one position (the twins standing for an unreadable rule) never clash.
            let before = self.rules(direction).len();
            for rule in rules {
                let key = (rule.origin.id.as_deref(), rule.origin.index);
                let held = self.rules(direction)[..before].iter().find(|r| match key {
                    (Some(id), _) => r.origin.id.as_deref() == Some(id),
                    (None, index) => r.origin.id.is_none() && r.origin.index == index,
                });
                match held {
                    // Pages count positions from their own start: the id decides.
                    Some(held) if held.same_as(&rule) => {}
                    Some(_) => {
                        return Err(RulePosition {
                            direction,
                            position: match rule.origin.id {
                                Some(id) => format!("id {id}"),
                                None => format!("#{}", rule.origin.index),
                            },
                        });
                    }
                    None => {
                        // A later page counts from its own start: a taken index moves to the
                        // end of the merged list.
                        let mut rule = rule;
                        let rules = self.rules_mut(direction);
                        if rules.iter().any(|r| r.origin.index == rule.origin.index) {
                            rule.origin.index = rules.len();
                        }
                        rules.push(rule);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A rule's place in its group, as `absorb` compares them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePosition {
    pub direction: Direction,
    /// `id X` or `#N`.
    pub position: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Peer, Ports, Protocol};

    #[test]
    fn compacting_shares_the_id_and_changes_nothing_else() {
        let mut group = SecurityGroup::new("sg-1", Cloud::Aws);
        for port in [22, 80, 443] {
            group.ingress.push(Rule {
                action: Action::Accept,
                service: Service::ports(
                    Protocol::Tcp,
                    Ports::parse(&port.to_string()).expect("a port"),
                ),
                peer: Peer::All,
                local: Peer::All,
                priority: None,
                origin: Origin {
                    group: "sg-1".into(),
                    index: group.ingress.len(),
                    id: None,
                    description: None,
                },
            });
        }
        let before = group.clone();
        group.compact();
        assert_eq!(group, before);
        let [a, b, c] = &group.ingress[..] else {
            panic!("three rules")
        };
        assert!(Arc::ptr_eq(&a.origin.group, &b.origin.group));
        assert!(Arc::ptr_eq(&b.origin.group, &c.origin.group));
    }
}
