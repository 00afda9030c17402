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
