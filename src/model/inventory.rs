//! Everything the sources said: groups, instances, and the named sets rules refer to.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::flow::FlowSpec;
use super::group::{RulePosition, SecurityGroup};
use super::rule::{Ports, Protocol};

/// A value with the place it was read from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    /// `file:line` or `file: JSON.path`.
    pub at: String,
}

/// A target: addresses, the security groups bound to it in order, and what else to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    /// The cloud's instance id, where known.
    pub id: Option<String>,
    /// Addresses on the instance's interfaces (private): the ones a group reference matches.
    pub addresses: Vec<IpAddr>,
    /// Addresses that reach it through NAT (public, elastic): probed, never group members.
    pub public_addresses: Vec<IpAddr>,
    /// Bound security groups, in bound order: together they form one layer.
    pub security_groups: Vec<Located<String>>,
    /// Azure application security groups of its NIC: rules name them as peers.
    pub application_security_groups: Vec<String>,
    /// Further layers on the path (a subnet ACL, a subnet NSG), each deciding on its own.
    pub subnet_layers: Vec<Located<String>>,
    /// The subnet it sits in: the layers associated with that subnet apply too.
    pub subnet: Option<Located<String>>,
    /// Its VPC (virtual network), where the export says: `[[discover]]` may filter by it.
    pub vpc: Option<String>,
    /// Flows checked besides the common ports.
    pub ports: Vec<FlowSpec>,
    /// Flows it serves: checked like `ports`, and nothing listening there where the rules
    /// open them is drift (`not-listening`).
    pub serves: Vec<FlowSpec>,
    pub labels: BTreeMap<String, String>,
    /// The agent runs on this instance, so its egress can be probed too.
    pub local: bool,
    /// Egress checks (the console's outbound custom ports): flows from this instance to a
    /// destination, probed by an agent running on it.
    pub outbound: Vec<(FlowSpec, IpAddr)>,
    /// Where the instance was defined.
    pub at: String,
}

impl Instance {
    pub fn new(name: impl Into<String>, at: impl Into<String>) -> Self {
        Instance {
            name: name.into(),
            id: None,
            addresses: Vec::new(),
            public_addresses: Vec::new(),
            security_groups: Vec::new(),
            application_security_groups: Vec::new(),
            subnet_layers: Vec::new(),
            subnet: None,
            vpc: None,
            ports: Vec::new(),
            serves: Vec::new(),
            labels: BTreeMap::new(),
            local: false,
            outbound: Vec::new(),
            at: at.into(),
        }
    }

    /// What tells it from every other instance: its cloud id, or (with none) its name.
    pub fn key(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }

    /// Every address a flow may reach it at: its own, then those NAT maps to it.
    pub fn all_addresses(&self) -> impl Iterator<Item = &IpAddr> {
        self.addresses.iter().chain(&self.public_addresses)
    }

    /// Bound to the security group, or a member of the application security group.
    pub fn is_bound_to(&self, group: &str) -> bool {
        self.security_groups.iter().any(|g| g.value == group)
            || self.application_security_groups.iter().any(|g| g == group)
    }
}

/// A named set of addresses: a Tencent address template or template group, a QingCloud IP
/// set, an AWS managed prefix list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressSet {
    pub id: String,
    pub name: Option<String>,
    pub members: Vec<IpNet>,
    /// Ids of other sets this one includes (template groups).
    pub includes: Vec<String>,
    /// Ids of sets whose addresses are not members, whatever `members` says (Azure's
    /// Internet tag: everything outside the virtual network and the special-use ranges).
    pub excludes: Vec<String>,
}

/// A subnet: its address ranges and the layers associated with it (an AWS network ACL, an
/// Azure subnet NSG), which every instance in it crosses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subnet {
    pub id: String,
    /// Empty where the exports do not give them.
    pub cidrs: Vec<IpNet>,
    pub layers: Vec<String>,
}

impl Subnet {
    /// What another export says of the same subnet adds to what is known.
    fn absorb(&mut self, other: Subnet) {
        for cidr in other.cidrs {
            if !self.cidrs.contains(&cidr) {
                self.cidrs.push(cidr);
            }
        }
        for layer in other.layers {
            if !self.layers.contains(&layer) {
                self.layers.push(layer);
            }
        }
    }
}

/// A named set of protocol/port pairs: a Tencent service template or template group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSet {
    pub id: String,
    pub name: Option<String>,
    pub services: Vec<(Protocol, Ports)>,
    pub includes: Vec<String>,
}

/// An object's id as the inventory keys it: Azure resource ids (`/subscriptions/...`) are
/// compared without case by Azure ("Naming rules and restrictions for Azure resources"), so
/// they are kept lower-cased, as pasted from `az` output or typed by hand; other clouds'
/// ids are kept as they are.
pub fn canonical_id(id: &str) -> String {
    const ARM: &str = "/subscriptions/";
    if id
        .get(..ARM.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(ARM))
    {
        id.to_ascii_lowercase()
    } else {
        id.to_string()
    }
}

/// Compacts a group, unless another inventory shares it (and compacted it already).
fn compact_unshared(group: &mut Arc<SecurityGroup>) {
    if let Some(unique) = Arc::get_mut(group) {
        unique.compact();
    }
}

fn compacted(mut group: Arc<SecurityGroup>) -> Arc<SecurityGroup> {
    compact_unshared(&mut group);
    group
}

/// Two sources that cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// One group's rule, held differently by two exports.
    Group(String, RulePosition),
    Instance(AmbiguousName),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    /// Shared: a source's last good inventory and every config assembled from it hold one
    /// copy of its rules (a 50 MB export's are a hundred MiB).
    pub groups: BTreeMap<Arc<str>, Arc<SecurityGroup>>,
    pub instances: Vec<Instance>,
    pub address_sets: BTreeMap<String, AddressSet>,
    pub service_sets: BTreeMap<String, ServiceSet>,
    pub subnets: BTreeMap<String, Subnet>,
    index: InstanceIndex,
}

/// Where each instance name and id sits in `instances`, so that adding a million instances
/// stays linear. A cache, not content: it takes no part in equality, and instances pushed
/// directly are indexed when next needed.
#[derive(Debug, Clone, Default)]
struct InstanceIndex {
    /// Names repeat (an auto-scaling group's instances share their Name tag).
    names: HashMap<String, Vec<usize>>,
    ids: HashMap<String, usize>,
    indexed: usize,
}

/// A name that several instances bear, given where one instance is meant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} names {} instances ({}): name one by its id", ids.len(), ids.join(", "))]
pub struct AmbiguousName {
    pub name: String,
    pub ids: Vec<String>,
}

impl PartialEq for InstanceIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for InstanceIndex {}

impl InstanceIndex {
    fn catch_up(&mut self, instances: &[Instance]) {
        for (at, instance) in instances.iter().enumerate().skip(self.indexed) {
            self.names
                .entry(instance.name.clone())
                .or_default()
                .push(at);
            if let Some(id) = &instance.id {
                self.ids.entry(id.clone()).or_insert(at);
            }
        }
        self.indexed = instances.len();
    }

    /// The instance `key` names: the one with that cloud id, else the one with that name, if
    /// only one has it.
    fn lookup(&self, instances: &[Instance], key: &str) -> Result<Option<usize>, AmbiguousName> {
        let named = self.names.get(key).map_or(&[][..], Vec::as_slice);
        resolve(instances, key, self.ids.get(key).copied(), named)
    }

    /// The instance `add_instance` merges `new` into: an instance with a cloud id is the
    /// same instance only as that id (names are labels, and repeat); one without (a
    /// config's refinement) names its instance by id or by a name only one instance has.
    fn find(&self, instances: &[Instance], new: &Instance) -> Result<Option<usize>, AmbiguousName> {
        match &new.id {
            Some(id) => Ok(self.ids.get(id).copied()),
            None => self.lookup(instances, &new.name),
        }
    }
}

/// Which of `instances` `key` names, given where the one with that id is and those with that
/// name are: the one with the id, else the one with the name, if only one has it.
fn resolve(
    instances: &[Instance],
    key: &str,
    by_id: Option<usize>,
    named: &[usize],
) -> Result<Option<usize>, AmbiguousName> {
    match (by_id, named) {
        (Some(at), _) => Ok(Some(at)),
        (None, []) => Ok(None),
        (None, [at]) => Ok(Some(*at)),
        (None, all) => Err(AmbiguousName {
            name: key.to_string(),
            ids: all
                .iter()
                .map(|at| instances[*at].key().to_string())
                .collect(),
        }),
    }
}

impl Inventory {
    /// The instance `key` names: by cloud id, or by a name only one instance has.
    pub fn instance(&self, key: &str) -> Result<Option<&Instance>, AmbiguousName> {
        let all = &self.instances;
        let by_id = all.iter().position(|i| i.id.as_deref() == Some(key));
        let named: Vec<usize> = (0..all.len()).filter(|at| all[*at].name == key).collect();
        Ok(resolve(all, key, by_id, &named)?.map(|at| &all[at]))
    }

    /// The addresses of a set and every set it includes that the exports hold, less those
    /// of the sets it excludes.
    pub fn address_set_members(&self, id: &str) -> Members<IpNet> {
        self.address_set_members_within(id, &mut BTreeSet::new())
    }

    /// `address_set_members`, cutting exclusion cycles: a set met again excludes nothing.
    fn address_set_members_within(&self, id: &str, seen: &mut BTreeSet<String>) -> Members<IpNet> {
        let (sets, complete) = with_includes(&self.address_sets, id, |s| &s.includes);
        let mut members = Members {
            known: sets
                .iter()
                .flat_map(|s| s.members.iter().copied())
                .collect(),
            complete,
            excluded: Vec::new(),
            excluded_complete: true,
        };
        for excluded in sets.iter().flat_map(|s| &s.excludes) {
            if !seen.insert(excluded.clone()) {
                continue;
            }
            let out = self.address_set_members_within(excluded, seen);
            members.excluded.extend(out.known);
            members.excluded_complete &= out.complete;
        }
        members
    }

    /// The services of a template and every template it includes that the exports hold.
    pub fn service_set_members(&self, id: &str) -> Members<(Protocol, Ports)> {
        let (sets, complete) = with_includes(&self.service_sets, id, |s| &s.includes);
        Members {
            known: sets
                .iter()
                .flat_map(|s| s.services.iter().cloned())
                .collect(),
            complete,
            excluded: Vec::new(),
            excluded_complete: true,
        }
    }

    /// The private addresses of the instances bound to a group, if any known instance is bound
    /// to it: a group reference matches traffic from members' own interfaces, never from
    /// their public or elastic addresses (which NAT maps, and which the clouds leave out).
    /// Membership counts as known only then: a group no exported instance uses may well have
    /// members the exports do not show.
    pub fn group_members(&self, group: &str) -> Option<Vec<IpAddr>> {
        self.members_by(group, |i| &i.addresses)
    }

    /// The public addresses of the instances bound to a group, known as `group_members` is.
    pub fn group_public_members(&self, group: &str) -> Option<Vec<IpAddr>> {
        self.members_by(group, |i| &i.public_addresses)
    }

    fn members_by(
        &self,
        group: &str,
        addresses: impl Fn(&Instance) -> &Vec<IpAddr>,
    ) -> Option<Vec<IpAddr>> {
        let bound: Vec<&Instance> = self
            .instances
            .iter()
            .filter(|i| i.is_bound_to(group))
            .collect();
        (!bound.is_empty()).then(|| {
            bound
                .iter()
                .flat_map(|i| addresses(i).iter().copied())
                .collect()
        })
    }

    /// Adds a group an export defines, in place of any earlier definition in that export.
    pub fn insert_group(&mut self, mut group: SecurityGroup) {
        group.compact();
        self.groups
            .insert(group.id.as_str().into(), Arc::new(group));
    }

    /// Adds what another source said. The rules of a group defined again are added to it
    /// (see `SecurityGroup::absorb`: the group's position of disagreement is the error);
    /// later sources replace earlier definitions of the same set; instances with the same
    /// name or id are merged field by field.
    /// A group defined by one source only is shared, not copied.
    pub fn merge(&mut self, other: Inventory) -> Result<(), MergeError> {
        for (id, group) in other.groups {
            match self.groups.entry(id) {
                Entry::Vacant(slot) => {
                    slot.insert(compacted(group));
                }
                // A group's own export wins over a listing of it with its tags expanded.
                Entry::Occupied(mut held) if held.get().expanded && !group.expanded => {
                    held.insert(compacted(group));
                }
                Entry::Occupied(held) if !held.get().expanded && group.expanded => {}
                Entry::Occupied(mut held) => {
                    let id = held.key().to_string();
                    let combined = Arc::make_mut(held.get_mut());
                    combined
                        .absorb(Arc::unwrap_or_clone(group))
                        .map_err(|at| MergeError::Group(id, at))?;
                    combined.compact();
                }
            }
        }
        self.address_sets.extend(other.address_sets);
        for (id, subnet) in other.subnets {
            self.add_subnet(Subnet { id, ..subnet });
        }
        self.service_sets.extend(other.service_sets);
        for instance in other.instances {
            self.add_instance(instance).map_err(MergeError::Instance)?;
        }
        Ok(())
    }

    /// Compacts every group only this inventory holds (see `SecurityGroup::compact`): an
    /// importer that builds groups rule by rule leaves them grown, not compact. The groups'
    /// records and their map also move to a new place on the heap, once the export's parse
    /// has been freed: made among the parse's short-lived allocations, they kept the pages
    /// they sat in, and each reload of a 53 MB export left 4 MiB more resident (2 MiB every
    /// other reload once moved; the rules themselves stay where they are).
    pub fn settle(&mut self) {
        self.groups = std::mem::take(&mut self.groups)
            .into_iter()
            .map(|(id, mut group)| {
                if let Some(unique) = Arc::get_mut(&mut group) {
                    unique.compact();
                    group = Arc::new(Arc::unwrap_or_clone(group));
                }
                (id, group)
            })
            .collect();
    }

    /// Keeps only the instances `keep` accepts.
    pub fn retain_instances(&mut self, keep: impl Fn(&Instance) -> bool) {
        self.instances.retain(keep);
        self.index = InstanceIndex::default();
    }

    /// Adds a subnet, or what is new about one already known.
    pub fn add_subnet(&mut self, subnet: Subnet) {
        match self.subnets.entry(subnet.id.clone()) {
            Entry::Vacant(slot) => {
                slot.insert(subnet);
            }
            Entry::Occupied(mut held) => held.get_mut().absorb(subnet),
        }
    }

    /// Adds an instance, or merges it into the one it names (see `InstanceIndex::find`):
    /// fields the newcomer sets win, ports and labels add up.
    pub fn add_instance(&mut self, new: Instance) -> Result<(), AmbiguousName> {
        self.index.catch_up(&self.instances);
        let Some(at) = self.index.find(&self.instances, &new)? else {
            self.instances.push(new);
            return Ok(());
        };
        let old = &mut self.instances[at];
        if !new.addresses.is_empty() {
            old.addresses = new.addresses;
        }
        if !new.public_addresses.is_empty() {
            old.public_addresses = new.public_addresses;
        }
        if !new.security_groups.is_empty() {
            old.security_groups = new.security_groups;
        }
        if !new.application_security_groups.is_empty() {
            old.application_security_groups = new.application_security_groups;
        }
        if !new.subnet_layers.is_empty() {
            old.subnet_layers = new.subnet_layers;
        }
        if new.subnet.is_some() {
            old.subnet = new.subnet;
        }
        if new.vpc.is_some() {
            old.vpc = new.vpc;
        }
        old.ports.extend(new.ports);
        old.serves.extend(new.serves);
        old.labels.extend(new.labels);
        old.local |= new.local;
        old.outbound.extend(new.outbound);
        old.at = new.at;
        Ok(())
    }
}

/// What the exports say a named set holds. A member the exports lack (a template of a
/// template group not exported) leaves the set incomplete, but what is known still matches:
/// a present member can decide a flow whatever the missing one holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members<T> {
    pub known: Vec<T>,
    /// Every set involved was exported.
    pub complete: bool,
    /// Never members, whatever `known` holds.
    pub excluded: Vec<T>,
    /// Every excluded set was exported.
    pub excluded_complete: bool,
}

/// A named set and, transitively, every set it includes that the exports hold (each once,
/// cycles cut), and whether none was missing.
fn with_includes<'a, T>(
    sets: &'a BTreeMap<String, T>,
    id: &str,
    includes: impl Fn(&T) -> &Vec<String>,
) -> (Vec<&'a T>, bool) {
    let mut found = Vec::new();
    let mut complete = true;
    let mut seen = BTreeSet::new();
    let mut stack = vec![id.to_string()];
    while let Some(id) = stack.pop() {
        if seen.insert(id.clone()) {
            match sets.get(&id) {
                Some(set) => {
                    stack.extend(includes(set).iter().cloned());
                    found.push(set);
                }
                None => complete = false,
            }
        }
    }
    (found, complete)
}
