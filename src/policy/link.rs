//! The linker: from an instance to the layers its traffic crosses, each holding its rules in
//! the order its cloud considers them. Pure.

use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::model::{
    Cloud, Decision, Direction, Instance, Inventory, Located, Rule, SecurityGroup, Semantics,
};

/// The groups an instance's traffic crosses, combined as their cloud says.
#[derive(Debug, Clone)]
pub struct Layer<'a> {
    /// The ids of the groups forming the layer, in bound order.
    pub groups: Vec<&'a str>,
    pub cloud: Cloud,
    pub semantics: Semantics,
    /// Peers whose traffic does not cross the layer: a subnet's own addresses, for a layer
    /// that filters only what enters or leaves the subnet (an AWS network ACL).
    pub bypass: Vec<IpNet>,
    /// The instance's public addresses and the private address each is translated to: the
    /// clouds filter after NAT, so a rule naming the instance's own side sees the private one.
    pub translated: Vec<(IpAddr, IpAddr)>,
    inbound: Vec<&'a Rule>,
    outbound: Vec<&'a Rule>,
}

impl<'a> Layer<'a> {
    /// Rules in the order the layer considers them.
    pub fn rules(&self, direction: Direction) -> &[&'a Rule] {
        match direction {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        }
    }

    /// The instance's address as the layer's rules see it: a public address as the private
    /// address it is translated to.
    pub fn as_seen(&self, address: IpAddr) -> IpAddr {
        self.translated
            .iter()
            .find(|(public, _)| *public == address)
            .map_or(address, |(_, private)| *private)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkError {
    #[error("{at}: security group {group:?} is not in any source")]
    UnknownGroup { group: String, at: String },
    #[error("{at}: groups of one layer follow different clouds ({first} and {second})")]
    MixedClouds {
        first: Cloud,
        second: Cloud,
        at: String,
    },
    #[error("{at}: instance {instance:?} is bound to no security group")]
    NoGroups { instance: String, at: String },
}

/// The layers of an instance from the inside out: its bound groups, then each layer named
/// on the instance, then the layers of its subnet. Inbound traffic meets them in reverse.
pub fn layers<'a>(inv: &'a Inventory, instance: &Instance) -> Result<Vec<Layer<'a>>, LinkError> {
    if instance.security_groups.is_empty() {
        return Err(LinkError::NoGroups {
            instance: instance.name.clone(),
            at: instance.at.clone(),
        });
    }
    let mut layers = vec![layer(inv, &instance.security_groups)?];
    // A public address maps to the instance's first private address of its family, as a
    // cloud's one-to-one NAT (elastic or public IP) does for a single-address interface. In
    // Alibaba's classic network the public address is on the instance's own `internet` NIC.
    let classic = layers[0].cloud == Cloud::Alibaba && instance.vpc.is_none();
    let translated: Vec<(IpAddr, IpAddr)> = instance
        .public_addresses
        .iter()
        .filter(|_| !classic)
        .filter_map(|public| {
            let private = instance
                .addresses
                .iter()
                .find(|a| a.is_ipv6() == public.is_ipv6())?;
            Some((*public, *private))
        })
        .collect();
    for subnet in &instance.subnet_layers {
        layers.push(layer(inv, std::slice::from_ref(subnet))?);
    }
    if let Some(subnet) = instance
        .subnet
        .as_ref()
        .and_then(|s| inv.subnets.get(&s.value))
    {
        for id in &subnet.layers {
            let id = Located {
                value: id.clone(),
                at: format!("subnet {}", subnet.id),
            };
            let mut layer = layer(inv, std::slice::from_ref(&id))?;
            if !layer.semantics.within_subnet {
                layer.bypass = subnet.cidrs.clone();
            }
            layers.push(layer);
        }
    }
    for layer in &mut layers {
        layer.translated.clone_from(&translated);
    }
    Ok(layers)
}

fn layer<'a>(inv: &'a Inventory, ids: &[Located<String>]) -> Result<Layer<'a>, LinkError> {
    let mut groups = Vec::new();
    for id in ids {
        let group = inv
            .groups
            .get(id.value.as_str())
            .ok_or_else(|| LinkError::UnknownGroup {
                group: id.value.clone(),
                at: id.at.clone(),
            })?;
        if let Some(first) = groups.first().map(|g: &&SecurityGroup| g.cloud)
            && first != group.cloud
        {
            return Err(LinkError::MixedClouds {
                first,
                second: group.cloud,
                at: id.at.clone(),
            });
        }
        groups.push(group);
    }
    let cloud = groups[0].cloud;
    let semantics = cloud.semantics();
    let ordered = |direction| {
        let mut rules: Vec<&Rule> = groups.iter().flat_map(|g| g.rules(direction)).collect();
        if let Decision::Priority(_) = semantics.decision {
            rules.sort_by_key(|r| r.priority.unwrap_or(i64::MAX));
        }
        rules
    };
    Ok(Layer {
        groups: groups.iter().map(|g| g.id.as_str()).collect(),
        cloud,
        semantics,
        bypass: Vec::new(),
        translated: Vec::new(),
        inbound: ordered(Direction::Inbound),
        outbound: ordered(Direction::Outbound),
    })
}
