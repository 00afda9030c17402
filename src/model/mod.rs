//! The vocabulary (ARCHITECTURE.md §2): groups, rules, instances, flows, and the seed catalogues.
//! No I/O here.

pub mod catalog;
mod flow;
mod group;
mod inventory;
mod rule;
mod state;

pub use flow::{Flow, FlowPeer, FlowProtocol, FlowSpec, PortSpecError, parse_port_spec};
pub use group::{Cloud, Decision, RulePosition, SecurityGroup, Semantics, Tie};
pub use inventory::{
    AddressSet, AmbiguousName, Instance, Inventory, Located, Members, MergeError, ServiceSet,
    Subnet, canonical_id,
};
pub use rule::{
    Action, Direction, IPPROTO_DCCP, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP,
    IPPROTO_UDP, IPPROTO_UDPLITE, IcmpMatch, Origin, Peer, PortRange, Ports, Protocol, Rule,
    Service, Unreadable, parse_net,
};
pub use state::PortState;

/// A vocabulary enum's list, names and parser, all from its variants (it derives strum's
/// EnumIter, IntoStaticStr and EnumString): `all()`, `name()` and `parse()`, which trims and
/// ignores case as the enum's strum attributes say.
macro_rules! named_by_variants {
    ($vocabulary:ty) => {
        impl $vocabulary {
            pub fn all() -> impl Iterator<Item = $vocabulary> {
                <$vocabulary as strum::IntoEnumIterator>::iter()
            }

            pub fn name(self) -> &'static str {
                self.into()
            }

            pub fn parse(text: &str) -> Option<Self> {
                text.trim().parse().ok()
            }
        }
    };
}
pub(crate) use named_by_variants;

/// "a, b or c": the names of a vocabulary's variants, for errors and help texts, so that a
/// new variant shows in every message without editing it.
pub fn one_of<T: Into<&'static str>>(items: impl IntoIterator<Item = T>) -> String {
    let names: Vec<&str> = items.into_iter().map(Into::into).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_lists_every_cloud_and_round_trips_each_name() {
        let listed = one_of(Cloud::all());
        for cloud in Cloud::all() {
            assert!(listed.contains(cloud.name()), "{listed}");
            assert_eq!(Cloud::parse(&cloud.name().to_uppercase()), Some(cloud));
        }
        assert_eq!(
            listed,
            "tencent, qingcloud, aws, aws-nacl, alibaba, openstack or azure"
        );
        assert_eq!(one_of(["x"]), "x");
    }
}
