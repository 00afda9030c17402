//! Static evaluation: what the cloud would do with a flow, and which rule decides. Pure.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::link::Layer;
use super::regions::{regions, space_of};
use crate::model::catalog::PROBE_SOURCE_PORTS;
use crate::model::{
    Action, Decision, Direction, Flow, FlowPeer, FlowProtocol, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_TCP, IPPROTO_UDP, Inventory, Members, Peer, PortRange, Ports, Protocol, Rule, Service,
    Tie,
};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Maybe,
}

impl Tri {
    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Maybe,
        }
    }
}

fn yes_if(condition: bool) -> Tri {
    if condition { Tri::Yes } else { Tri::No }
}

fn service_matches(
    protocol: Protocol,
    ports: &Ports,
    icmp: crate::model::IcmpMatch,
    p: &Packet,
) -> bool {
    if !protocol.matches(p.protocol) {
        return false;
    }
    match (p.port, p.icmp) {
        (Some(port), _) => ports.contains(port),
        (None, Some((t, c))) => icmp.matches(t, c),
        (None, None) => true,
    }
}

/// A rule's source-port condition, for a packet that has ports: exact for a known source
/// port; for sgprobe's own probes, which send from any of `PROBE_SOURCE_PORTS`, it matches if
/// it covers them all and not if it covers none; in between the answer depends on the port
/// drawn.
fn source_port_matches(ports: &Ports, p: &Packet) -> Tri {
    if p.port.is_none() {
        return Tri::Yes;
    }
    match (ports, p.peer_port) {
        (Ports::All, _) => Tri::Yes,
        (_, Some(port)) => yes_if(ports.contains(port)),
        (Ports::Ranges(ranges), None) => {
            let range = PROBE_SOURCE_PORTS;
            let mut within: Vec<PortRange> = ranges
                .iter()
                .filter_map(|r| PortRange::new(r.first.max(range.first), r.last.min(range.last)))
                .collect();
            within.sort();
            // The union of the ranges within, counted once where they overlap.
            let mut covered = 0;
            let mut next = range.first;
            for r in within {
                let first = r.first.max(next);
                if first <= r.last {
                    covered += usize::from(r.last - first) + 1;
                }
                match r.last.checked_add(1) {
                    Some(after) => next = next.max(after),
                    None => break,
                }
            }
            let all = usize::from(range.last - range.first) + 1;
            match covered {
                0 => Tri::No,
                n if n == all => Tri::Yes,
                _ => Tri::Maybe,
            }
        }
    }
}

/// A known member matching decides; otherwise a missing member may. Likewise for what the
/// set excludes.
fn member_matches<T>(members: Members<T>, matches: impl Fn(&T) -> bool) -> Tri {
    let within = |items: &[T], complete: bool| {
        if items.iter().any(&matches) {
            Tri::Yes
        } else if complete {
            Tri::No
        } else {
            Tri::Maybe
        }
    };
    let outside = match within(&members.excluded, members.excluded_complete) {
        Tri::Yes => Tri::No,
        Tri::No => Tri::Yes,
        Tri::Maybe => Tri::Maybe,
    };
    within(&members.known, members.complete).and(outside)
}

fn rule_matches(inv: &Inventory, rule: &Rule, p: &Packet) -> Tri {
    let service = match &rule.service {
        Service::Ports {
            protocol,
            ports,
            icmp,
            source_ports,
        } => yes_if(service_matches(*protocol, ports, *icmp, p))
            .and(source_port_matches(source_ports, p)),
        Service::Template(id) => {
            member_matches(inv.service_set_members(id), |(protocol, ports)| {
                service_matches(*protocol, ports, Default::default(), p)
            })
        }
        Service::Unreadable(_) => Tri::Maybe,
    };
    if service == Tri::No {
        return Tri::No;
    }
    // The instance's side is matched as the cloud sees it, after NAT; only a rule for a
    // group's public addresses (Alibaba's classic `internet` NIC) names them as addressed.
    let local = match rule.local {
        Peer::GroupPublic(_) => p.addressed,
        _ => p.local,
    };
    service
        .and(address_matches(inv, &rule.peer, p.remote))
        .and(address_matches(inv, &rule.local, local))
}

fn address_matches(inv: &Inventory, peer: &Peer, address: IpAddr) -> Tri {
    match peer {
        Peer::All => Tri::Yes,
        Peer::Cidr(net) => yes_if(net.contains(&address)),
        Peer::AddressSet(id) => {
            member_matches(inv.address_set_members(id), |n| n.contains(&address))
        }
        Peer::Group(id) => match inv.group_members(id) {
            Some(addrs) => yes_if(addrs.contains(&address)),
            None => Tri::Maybe,
        },
        Peer::GroupPublic(id) => match inv.group_public_members(id) {
            Some(addrs) => yes_if(addrs.contains(&address)),
            None => Tri::Maybe,
        },
    }
}

/// One way a layer may decide a packet; several when unresolved references branch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome<'a> {
    Decided(Option<&'a Rule>, Action),
    Ambiguous(&'a Rule),
}

fn decided(rule: &Rule) -> Outcome<'_> {
    Outcome::Decided(Some(rule), rule.action)
}

struct Walk<'t, 'a> {
    inv: &'a Inventory,
    layer_index: usize,
    reply: bool,
    trace: &'t mut Vec<TraceStep<'a>>,
}

impl<'a> Walk<'_, 'a> {
    fn note(&mut self, rule: Option<&'a Rule>, considered: Considered, action: Action) {
        self.trace.push(TraceStep {
            layer: self.layer_index,
            reply: self.reply,
            rule,
            considered,
            action,
        });
    }

    /// Every outcome the layer may reach for the packet, in the order reached.
    fn outcomes(&mut self, layer: &Layer<'a>, p: &Packet) -> Vec<Outcome<'a>> {
        let rules = layer.rules(p.direction);
        let mut outcomes = Vec::new();
        let matching: Vec<(&'a Rule, Tri)> = rules
            .iter()
            .map(|r| (*r, rule_matches(self.inv, r, p)))
            .filter(|(_, m)| *m != Tri::No)
            .collect();
        match layer.semantics.decision {
            Decision::FirstMatch => {
                for (rule, m) in matching {
                    self.note_match(rule, m);
                    outcomes.push(decided(rule));
                    if m == Tri::Yes {
                        return outcomes;
                    }
                }
            }
            Decision::AllowUnion => {
                // Any definite match accepts; otherwise each possible match may.
                if let Some((rule, m)) = matching.iter().find(|(_, m)| *m == Tri::Yes) {
                    self.note_match(rule, *m);
                    return vec![Outcome::Decided(Some(rule), Action::Accept)];
                }
                for (rule, m) in matching {
                    self.note_match(rule, m);
                    outcomes.push(Outcome::Decided(Some(rule), Action::Accept));
                }
            }
            Decision::Priority(tie) => {
                for level in matching.chunk_by(|a, b| a.0.priority == b.0.priority) {
                    let definite: Vec<&'a Rule> = level
                        .iter()
                        .filter(|(_, m)| *m == Tri::Yes)
                        .map(|(r, _)| *r)
                        .collect();
                    for (rule, m) in level {
                        self.note_match(rule, *m);
                    }
                    if definite.is_empty() {
                        outcomes.extend(level.iter().map(|(r, _)| decided(r)));
                        continue;
                    }
                    // The definite matches decide, unless a possible match at the same
                    // priority would change the tie.
                    outcomes.push(resolve_tie(&definite, tie));
                    for (maybe, _) in level.iter().filter(|(_, m)| *m == Tri::Maybe) {
                        let mut with = definite.clone();
                        with.push(maybe);
                        outcomes.push(resolve_tie(&with, tie));
                    }
                    return outcomes;
                }
            }
        }
        let action = layer.semantics.default_action(p.direction);
        self.note(None, Considered::Default, action);
        outcomes.push(Outcome::Decided(None, action));
        outcomes
    }

    fn note_match(&mut self, rule: &'a Rule, m: Tri) {
        let considered = if m == Tri::Yes {
            Considered::Matched
        } else {
            Considered::Maybe
        };
        self.note(Some(rule), considered, rule.action);
    }
}

fn resolve_tie<'a>(rules: &[&'a Rule], tie: Tie) -> Outcome<'a> {
    let first = rules[0];
    if rules.iter().all(|r| r.action == first.action) {
        return decided(first);
    }
    match tie {
        Tie::Ambiguous => Outcome::Ambiguous(first),
        Tie::DropFirst => rules
            .iter()
            .find(|r| r.action == Action::Drop)
            .map_or(decided(first), |r| decided(r)),
    }
}

/// A layer's or a packet's state once the branches are folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closed,
    Unknown,
    Ambiguous,
}

/// Folds a layer's outcomes: the same action on every branch decides (named by the rule
/// reached when nothing unresolved matches, which decides regardless); otherwise unknown.
fn fold<'a>(layer: usize, outcomes: &[Outcome<'a>]) -> (State, Decider<'a>) {
    if let Some(Outcome::Ambiguous(rule)) =
        outcomes.iter().find(|o| matches!(o, Outcome::Ambiguous(_)))
    {
        return (
            State::Ambiguous,
            Decider {
                layer,
                reply: false,
                rule: Some(rule),
                action: rule.action,
            },
        );
    }
    let decider = |o: &Outcome<'a>| match *o {
        Outcome::Decided(rule, action) => Decider {
            layer,
            reply: false,
            rule,
            action,
        },
        Outcome::Ambiguous(rule) => Decider {
            layer,
            reply: false,
            rule: Some(rule),
            action: rule.action,
        },
    };
    let last = decider(
        outcomes
            .last()
            .expect("a layer always reaches its default or a rule"),
    );
    if outcomes.iter().all(|o| decider(o).action == last.action) {
        let state = if last.action == Action::Accept {
            State::Open
        } else {
            State::Closed
        };
        (state, last)
    } else {
        (State::Unknown, decider(&outcomes[0]))
    }
}

/// The packet-level result of every layer together.
fn evaluate_packet<'a>(
    inv: &'a Inventory,
    layers: &[Layer<'a>],
    p: &Packet,
    trace: &mut Vec<TraceStep<'a>>,
) -> (State, Decider<'a>) {
    let mut states = Vec::new();
    // Layers run from the inside out: inbound traffic meets the outermost first.
    let mut path: Vec<(usize, &Layer<'a>)> = layers.iter().enumerate().collect();
    if p.direction == Direction::Inbound {
        path.reverse();
    }
    for (index, layer) in path {
        if layer.bypass.iter().any(|net| net.contains(&p.remote)) {
            continue;
        }
        let seen = Packet {
            local: layer.as_seen(p.local),
            ..*p
        };
        let p = &seen;
        let mut walk = Walk {
            inv,
            layer_index: index,
            reply: false,
            trace: &mut *trace,
        };
        let (mut state, mut decider) = fold(index, &walk.outcomes(layer, p));
        if state == State::Open && !layer.semantics.stateful {
            (state, decider) = reply_state(inv, layer, index, p, trace).unwrap_or((state, decider));
        }
        if state == State::Closed {
            return (state, decider);
        }
        states.push((state, decider));
    }
    for wanted in [State::Ambiguous, State::Unknown] {
        if let Some(found) = states.iter().find(|(s, _)| *s == wanted) {
            return *found;
        }
    }
    // Every layer lets it through: the innermost (the security groups) names the rule.
    *states
        .iter()
        .min_by_key(|(_, decider)| decider.layer)
        .expect("the security groups are never bypassed")
}

/// A stateless layer must also pass the reply, which comes back to an ephemeral port: the
/// reply passes only if every port sgprobe's probes may use passes. `None` when it does.
fn reply_state<'a>(
    inv: &'a Inventory,
    layer: &Layer<'a>,
    index: usize,
    p: &Packet,
    trace: &mut Vec<TraceStep<'a>>,
) -> Option<(State, Decider<'a>)> {
    let direction = p.direction.reverse();
    let icmp_reply = match (p.protocol, p.icmp) {
        (IPPROTO_ICMP | IPPROTO_ICMPV6, Some((t, _))) => Some(icmp_reply_type(p.protocol, t)?),
        (IPPROTO_ICMP, None) => Some((0, 0)),
        (IPPROTO_ICMPV6, None) => Some((129, 0)),
        _ => None,
    };
    let ports: Vec<Option<u16>> = if let Some(port) = p.peer_port.filter(|_| p.port.is_some()) {
        vec![Some(port)]
    } else if p.port.is_some() {
        let range = PROBE_SOURCE_PORTS;
        port_points(layer.rules(direction).iter().copied(), inv, p.protocol)
            .into_iter()
            .filter(|port| range.contains(*port))
            .chain([range.first])
            .map(Some)
            .collect()
    } else {
        vec![None]
    };
    ports.into_iter().find_map(|port| {
        let reply = Packet {
            direction,
            port,
            peer_port: p.port,
            icmp: icmp_reply,
            ..*p
        };
        let mut walk = Walk {
            inv,
            layer_index: index,
            reply: true,
            trace: &mut *trace,
        };
        let (state, decider) = fold(index, &walk.outcomes(layer, &reply));
        (state != State::Open).then_some((
            state,
            Decider {
                reply: true,
                ..decider
            },
        ))
    })
}

/// The reply an ICMP message asks for (RFC 792: echo, timestamp, information and address
/// mask requests; RFC 4443: echo request), or `None`: an error message, or a reply itself,
/// draws no reply, so a stateless layer has nothing to let back.
fn icmp_reply_type(protocol: u8, request: u8) -> Option<(u8, u8)> {
    let reply = match (protocol, request) {
        (IPPROTO_ICMP, 8) => 0,
        (IPPROTO_ICMP, 13) => 14,
        (IPPROTO_ICMP, 15) => 16,
        (IPPROTO_ICMP, 17) => 18,
        (IPPROTO_ICMPV6, 128) => 129,
        _ => return None,
    };
    Some((reply, 0))
}

/// Ports where some rule's port set for this protocol starts or stops: between two of them,
/// every rule treats every port alike.
fn port_points<'a>(
    rules: impl Iterator<Item = &'a Rule>,
    inv: &Inventory,
    protocol: u8,
) -> BTreeSet<u16> {
    let mut points = BTreeSet::from([1]);
    for rule in rules {
        for (p, ports) in services_of(rule, inv) {
            if p.matches(protocol) {
                for range in ports.ranges() {
                    points.insert(range.first);
                    if let Some(next) = range.last.checked_add(1) {
                        points.insert(next);
                    }
                }
            }
        }
    }
    points
}

fn services_of(rule: &Rule, inv: &Inventory) -> Vec<(Protocol, Ports)> {
    match &rule.service {
        Service::Ports {
            protocol, ports, ..
        } => vec![(*protocol, ports.clone())],
        Service::Template(id) => inv.service_set_members(id).known,
        Service::Unreadable(_) => Vec::new(),
    }
}

/// IP protocol, port (TCP/UDP) and ICMP type/code of a concrete packet.
type ServicePoint = (u8, Option<u16>, Option<(u8, u8)>);

/// The concrete packets that stand for a flow's protocol: one for TCP, UDP or ICMP echo; for
/// "all traffic", one per region of protocol, port and ICMP type every rule treats alike.
fn service_points(flow: &Flow, rules: &[&Rule], inv: &Inventory) -> Vec<ServicePoint> {
    let v6 = flow.address.is_ipv6();
    let icmp_number = if v6 { IPPROTO_ICMPV6 } else { IPPROTO_ICMP };
    let echo = if v6 { (128, 0) } else { (8, 0) };
    match flow.spec.protocol {
        FlowProtocol::Tcp => vec![(IPPROTO_TCP, flow.spec.port, None)],
        FlowProtocol::Udp => vec![(IPPROTO_UDP, flow.spec.port, None)],
        FlowProtocol::Icmp => vec![(icmp_number, None, Some(echo))],
        FlowProtocol::IcmpMessage {
            icmp_type, code, ..
        } => {
            // Every code of the type, where the spec names none: each code a rule names,
            // and one no rule names.
            let codes = match code {
                Some(code) => BTreeSet::from([code]),
                None => {
                    let mut codes: BTreeSet<u8> = rules
                        .iter()
                        .filter_map(|r| match &r.service {
                            Service::Ports { icmp, .. } if icmp.icmp_type == Some(icmp_type) => {
                                icmp.code
                            }
                            _ => None,
                        })
                        .collect();
                    codes.insert(first_missing(&codes));
                    codes
                }
            };
            codes
                .into_iter()
                .map(|code| (icmp_number, None, Some((icmp_type, code))))
                .collect()
        }
        // A transport with ports (SCTP, DCCP, UDP-Lite): one packet per stretch of ports every
        // rule treats alike, so a rule on some of its ports opens part of it, not all.
        FlowProtocol::Ip(number) if Protocol::from_number(number).has_ports() => {
            port_points(rules.iter().copied(), inv, number)
                .into_iter()
                .map(|port| (number, Some(port), None))
                .collect()
        }
        FlowProtocol::Ip(number) => vec![(number, None, None)],
        FlowProtocol::All => {
            let mut points = Vec::new();
            let mut transports = BTreeSet::from([IPPROTO_TCP, IPPROTO_UDP]);
            for rule in rules {
                for (protocol, _) in services_of(rule, inv) {
                    transports.extend(protocol.number().filter(|_| protocol.has_ports()));
                }
            }
            for &protocol in &transports {
                let ports = port_points(rules.iter().copied(), inv, protocol);
                points.extend(ports.into_iter().map(|port| (protocol, Some(port), None)));
            }
            let mut types = BTreeSet::from([echo.0]);
            let mut codes = BTreeSet::from([0]);
            let mut numbers = BTreeSet::new();
            for rule in rules {
                if let Service::Ports { protocol, icmp, .. } = &rule.service {
                    types.extend(icmp.icmp_type);
                    codes.extend(icmp.code);
                    numbers.extend(protocol.number());
                }
                for (protocol, _) in services_of(rule, inv) {
                    numbers.extend(protocol.number());
                }
            }
            types.insert(first_missing(&types));
            codes.insert(first_missing(&codes));
            for t in &types {
                points.extend(codes.iter().map(|c| (icmp_number, None, Some((*t, *c)))));
            }
            numbers.insert(first_missing(&numbers));
            points.extend(
                numbers
                    .into_iter()
                    .filter(|n| {
                        !transports.contains(n) && ![IPPROTO_ICMP, IPPROTO_ICMPV6].contains(n)
                    })
                    .map(|n| (n, None, None)),
            );
            points
        }
    }
}

fn first_missing(set: &BTreeSet<u8>) -> u8 {
    (0..=u8::MAX).find(|n| !set.contains(n)).unwrap_or(u8::MAX)
}

/// The CIDRs the rules name (resolved sets and group members included), for partitioning
/// the peer space.
fn peer_cidrs(rules: &[&Rule], inv: &Inventory) -> Vec<IpNet> {
    let mut cidrs = Vec::new();
    for rule in rules {
        match &rule.peer {
            Peer::All => {}
            Peer::Cidr(net) => cidrs.push(*net),
            Peer::AddressSet(id) => {
                let members = inv.address_set_members(id);
                cidrs.extend(members.known.into_iter().chain(members.excluded));
            }
            Peer::Group(id) => cidrs.extend(
                inv.group_members(id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(IpNet::from),
            ),
            Peer::GroupPublic(id) => cidrs.extend(
                inv.group_public_members(id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(IpNet::from),
            ),
        }
    }
    cidrs
}

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

/// Whether a rule decides some packet of its layer (`Decides`), or other rules always decide
/// first (`Shadowed`, naming the one deciding where the rule would), or unresolved references
/// make it impossible to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach<'a> {
    Decides,
    Shadowed(Decider<'a>),
    Unresolved,
}

/// Walks every region of peer and service space the rule matches and asks who decides there.
pub fn reach<'a>(
    inv: &'a Inventory,
    layer: &Layer<'a>,
    direction: Direction,
    rule: &Rule,
) -> Reach<'a> {
    let rules = layer.rules(direction);
    let mut shadowed_by = None;
    for family in ["0.0.0.0", "::"] {
        let address: IpAddr = family.parse().expect("valid literal");
        let flow = Flow {
            address,
            direction,
            spec: crate::model::FlowSpec {
                protocol: FlowProtocol::All,
                port: None,
            },
            peer: FlowPeer::All,
            peer_port: None,
        };
        let cidrs: Vec<IpNet> = peer_cidrs(rules, inv)
            .into_iter()
            .filter(|c| c.addr().is_ipv6() == address.is_ipv6())
            .collect();
        for region in regions(space_of(address), &cidrs) {
            for (protocol, port, icmp) in service_points(&flow, rules, inv) {
                let packet = Packet {
                    direction,
                    protocol,
                    port,
                    icmp,
                    remote: region.network(),
                    local: address,
                    addressed: address,
                    peer_port: None,
                };
                match rule_matches(inv, rule, &packet) {
                    Tri::No => continue,
                    Tri::Maybe => return Reach::Unresolved,
                    Tri::Yes => {}
                }
                let (state, decider) = alone(inv, layer, &packet);
                if decider.rule.is_some_and(|r| std::ptr::eq(r, rule)) {
                    return Reach::Decides;
                }
                if matches!(state, State::Unknown | State::Ambiguous) {
                    return Reach::Unresolved;
                }
                shadowed_by.get_or_insert(decider);
            }
        }
    }
    // A rule that matches nothing at all (say, an IPv6 CIDR on ICMP) is shadowed by nothing.
    shadowed_by.map_or(Reach::Decides, Reach::Shadowed)
}

/// What one layer, alone, does with one packet.
fn alone<'a>(inv: &'a Inventory, layer: &Layer<'a>, packet: &Packet) -> (State, Decider<'a>) {
    let mut trace = Vec::new();
    let mut walk = Walk {
        inv,
        layer_index: 0,
        reply: false,
        trace: &mut trace,
    };
    fold(0, &walk.outcomes(layer, packet))
}

/// Where one layer, alone, drops a packet of `protocol` to `port` in `direction`: the peer
/// regions of the family that the layer's rules (or its default) drop, each with what
/// decided. Regions whose verdict depends on references the exports lack are left out.
pub fn layer_drops<'a>(
    inv: &'a Inventory,
    layer: &Layer<'a>,
    direction: Direction,
    protocol: u8,
    port: u16,
    v6: bool,
) -> Vec<(IpNet, Decider<'a>)> {
    let local: IpAddr = if v6 { "::" } else { "0.0.0.0" }
        .parse()
        .expect("valid literal");
    let cidrs: Vec<IpNet> = peer_cidrs(layer.rules(direction), inv)
        .into_iter()
        .filter(|c| c.addr().is_ipv6() == v6)
        .collect();
    let mut drops = Vec::new();
    for region in regions(space_of(local), &cidrs) {
        let packet = Packet {
            direction,
            protocol,
            port: Some(port),
            icmp: None,
            remote: region.network(),
            local,
            addressed: local,
            peer_port: None,
        };
        let (state, decider) = alone(inv, layer, &packet);
        if state == State::Closed {
            drops.push((region, decider));
        }
    }
    drops
}

/// Ports where a layer's rules for `protocol` change: checking these and one inside each
/// stretch between them covers every port.
pub fn layer_port_points(
    inv: &Inventory,
    layer: &Layer,
    direction: Direction,
    protocol: u8,
) -> BTreeSet<u16> {
    port_points(layer.rules(direction).iter().copied(), inv, protocol)
}
