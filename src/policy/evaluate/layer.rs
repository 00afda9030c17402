//! What one layer does with one packet: walking its rules in the cloud's order, folding
//! unresolved branches, and the reply a stateless layer must also pass.

use super::matching::{Tri, rule_matches};
use super::points::port_points;
use super::{Considered, Decider, Packet, TraceStep};
use crate::model::catalog::PROBE_SOURCE_PORTS;
use crate::model::{
    Action, Decision, Direction, IPPROTO_ICMP, IPPROTO_ICMPV6, Inventory, Rule, Tie,
};
use crate::policy::link::Layer;

/// One way a layer may decide a packet; several when unresolved references branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome<'a> {
    Decided(Option<&'a Rule>, Action),
    Ambiguous(&'a Rule),
}

pub(super) fn decided(rule: &Rule) -> Outcome<'_> {
    Outcome::Decided(Some(rule), rule.action)
}

pub(super) struct Walk<'t, 'a> {
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

pub(super) fn resolve_tie<'a>(rules: &[&'a Rule], tie: Tie) -> Outcome<'a> {
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
pub(super) enum State {
    Open,
    Closed,
    Unknown,
    Ambiguous,
}

/// Folds a layer's outcomes: the same action on every branch decides (named by the rule
/// reached when nothing unresolved matches, which decides regardless); otherwise unknown.
pub(super) fn fold<'a>(layer: usize, outcomes: &[Outcome<'a>]) -> (State, Decider<'a>) {
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
pub(super) fn evaluate_packet<'a>(
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
pub(super) fn reply_state<'a>(
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
pub(super) fn icmp_reply_type(protocol: u8, request: u8) -> Option<(u8, u8)> {
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

/// What one layer, alone, does with one packet.
pub(super) fn alone<'a>(
    inv: &'a Inventory,
    layer: &Layer<'a>,
    packet: &Packet,
) -> (State, Decider<'a>) {
    let mut trace = Vec::new();
    let mut walk = Walk {
        inv,
        layer_index: 0,
        reply: false,
        trace: &mut trace,
    };
    fold(0, &walk.outcomes(layer, packet))
}
