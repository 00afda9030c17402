//! Static evaluation: what the cloud would do with a flow, and which rule decides. Pure.

mod layer;
mod matching;
mod points;
mod reach;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{Action, Direction, Flow, FlowPeer, FlowProtocol, Inventory, Rule};
use crate::policy::link::Layer;
use crate::policy::regions::{regions, space_of};
use layer::{State, evaluate_packet};
use points::{peer_cidrs, service_points};

/// The verdict on a flow (ARCHITECTURE.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Predicted {
    Open,
    Closed,
    /// Open to some peers (or some protocols, for "all traffic") and not others.
    Partial,
    /// A rule refers to something the exports do not hold, and it matters.
    Unknown,
    /// Equal priorities with different actions, and the cloud does not say which wins.
    Ambiguous,
}

/// What decided: a rule, or the default of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decider<'a> {
    /// Index into the instance's layers.
    pub layer: usize,
    /// It decided on the reply, which a stateless layer must let back too.
    pub reply: bool,
    /// `None`: the layer's default action.
    pub rule: Option<&'a Rule>,
    pub action: Action,
}

/// How a considered rule related to the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Considered {
    Matched,
    /// Refers to something unresolved: may or may not match.
    Maybe,
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep<'a> {
    pub layer: usize,
    pub reply: bool,
    pub rule: Option<&'a Rule>,
    pub considered: Considered,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'a> {
    pub predicted: Predicted,
    pub decider: Decider<'a>,
    /// For peer `all`: the peers the flow is open to, aggregated.
    pub allowed_peers: Vec<IpNet>,
    /// The rules considered for the deciding packet, in order, across layers.
    pub trace: Vec<TraceStep<'a>>,
}

/// One concrete packet, as a layer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packet {
    direction: Direction,
    protocol: u8,
    /// The port rules compare: the instance's port inbound, the remote port outbound.
    port: Option<u16>,
    icmp: Option<(u8, u8)>,
    remote: IpAddr,
    /// The instance's address as the layer's rules see it (`Layer::as_seen`): a public
    /// address translated to the private one.
    local: IpAddr,
    /// The instance's address the flow was sent to (or from), before any translation.
    addressed: IpAddr,
    /// The packet's source port, where known (see `Flow::peer_port`); `None`: any port
    /// sgprobe's probes send from.
    peer_port: Option<u16>,
}

pub use points::layer_port_points;
pub use reach::{Reach, layer_drops, reach};

/// What the cloud would do with a flow, given the instance's layers.
pub fn evaluate<'a>(inv: &'a Inventory, layers: &[Layer<'a>], flow: &Flow) -> Verdict<'a> {
    let rules: Vec<&'a Rule> = layers
        .iter()
        .flat_map(|l| {
            l.rules(flow.direction)
                .iter()
                .chain(l.rules(flow.direction.reverse()))
        })
        .copied()
        .collect();
    let mut services = service_points(flow, &rules, inv);
    if flow.spec.protocol == FlowProtocol::All {
        // "All traffic" is what can flow: a protocol the cloud never carries is no part of it.
        services.retain(|(protocol, _, _)| {
            !layers
                .iter()
                .any(|l| l.cloud.never_carried().iter().any(|(_, n)| n == protocol))
        });
    }
    let peers: Vec<(IpNet, IpAddr)> = match flow.peer {
        FlowPeer::Addr(addr) => vec![(IpNet::from(addr), addr)],
        FlowPeer::All => {
            let space = space_of(flow.address);
            let cidrs: Vec<IpNet> = peer_cidrs(&rules, inv)
                .into_iter()
                .chain(layers.iter().flat_map(|l| l.bypass.iter().copied()))
                .filter(|c| c.addr().is_ipv6() == flow.address.is_ipv6())
                .collect();
            regions(space, &cidrs)
                .into_iter()
                .map(|r| (r, r.network()))
                .collect()
        }
    };

    struct Point<'a> {
        region: IpNet,
        state: State,
        decider: Decider<'a>,
        trace: Vec<TraceStep<'a>>,
    }
    let mut points = Vec::with_capacity(peers.len() * services.len());
    let mut allowed = Vec::new();
    for (region, remote) in &peers {
        let mut all_open = true;
        for (protocol, port, icmp) in &services {
            let packet = Packet {
                direction: flow.direction,
                protocol: *protocol,
                port: *port,
                icmp: *icmp,
                remote: *remote,
                local: flow.address,
                addressed: flow.address,
                peer_port: flow.peer_port,
            };
            let mut trace = Vec::new();
            let (state, decider) = evaluate_packet(inv, layers, &packet, &mut trace);
            all_open &= state == State::Open;
            points.push(Point {
                region: *region,
                state,
                decider,
                trace,
            });
        }
        if all_open {
            allowed.push(*region);
        }
    }

    let count = |state| points.iter().filter(|p| p.state == state).count();
    let predicted = if count(State::Ambiguous) > 0 {
        Predicted::Ambiguous
    } else if count(State::Unknown) > 0 {
        Predicted::Unknown
    } else if count(State::Open) == points.len() {
        Predicted::Open
    } else if count(State::Closed) == points.len() {
        Predicted::Closed
    } else {
        Predicted::Partial
    };
    let wanted = match predicted {
        Predicted::Open | Predicted::Partial => State::Open,
        Predicted::Closed => State::Closed,
        Predicted::Unknown => State::Unknown,
        Predicted::Ambiguous => State::Ambiguous,
    };
    // Name the rule that decides for most of the peer space.
    let chosen = points
        .into_iter()
        .filter(|p| p.state == wanted)
        .min_by_key(|p| p.region.prefix_len())
        .expect("the wanted state was counted among the points");
    let allowed_peers = match (flow.peer, predicted) {
        (FlowPeer::All, Predicted::Partial) => IpNet::aggregate(&allowed),
        _ => Vec::new(),
    };
    Verdict {
        predicted,
        decider: chosen.decider,
        allowed_peers,
        trace: chosen.trace,
    }
}
