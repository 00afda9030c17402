//! Why a flow drifts, read from what the replies carried: who sent the deciding reply, with
//! which IP TTL, and what the same address answered on the flows that agree with the rules.
//! Pure: recorded observations in, a cause for each drifting flow out, `unknown` wherever the
//! evidence does not decide. Nothing here guesses.
//!
//! A RST from the instance proves the probe passed every layer: on a flow the rules close it
//! is exposure like a SYN-ACK. On a flow the rules open it is drift only where the instance
//! serves the flow (its `serves`, see `drift::classify`): the rules are right and nothing
//! listens, `not-listening`.
//!
//! Causes are read for inbound flows only: an outbound flow's replies come from its
//! destination, whose firewall is not the instance's.
//!
//! A host's replies reach the prober with one TTL (its initial TTL less the hops between):
//! the TTL of its answers on the flows that agree with the rules is its **baseline**. A
//! reply with another TTL came from another box (a load balancer, a proxy, a middlebox
//! answering for it), whatever address it bears.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::drift::Drift;
use crate::engine::Evidence;

/// Why a flow drifts. The vocabulary is the README's ("Causes").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Cause {
    /// Exposed, and the instance itself answers, SYN-ACK or RST (its baseline TTL): a rule
    /// the export does not show (added by hand, not exported yet) or a layer sgprobe does not
    /// know opens it.
    UnlistedRule,
    /// A SYN-ACK, RST or UDP answer with a TTL not the instance's: another box answers for
    /// it (exposed), or says nothing listens on a port the instance serves (blocked).
    AnsweredByMiddlebox,
    /// Blocked, and the instance itself refuses with an ICMP error: a host firewall's reject.
    HostRejects,
    /// Blocked on a port the instance serves, and the instance itself answers that nothing
    /// listens (its RST, or its port unreachable): the rules are right, the service is down.
    NotListening,
    /// Blocked by an ICMP error from another address: a router or firewall on the way.
    RouterRejects,
    /// Blocked by silence while the same address answers on flows that agree with the
    /// rules: a network ACL, a rule not applied yet or a host firewall dropping.
    SilentDrop,
    /// The evidence does not decide (no baseline to compare with, no TTL, a connect()
    /// probe, a host silent everywhere).
    Unknown,
}

impl Cause {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// What one probed flow showed, as far as causes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub address: IpAddr,
    pub inbound: bool,
    pub drift: Drift,
    /// The reply said nothing listens (RST, port unreachable).
    pub closed: bool,
    pub evidence: Evidence,
    pub ttl: Option<u8>,
}

/// What the flows that agree with the rules show of one address.
#[derive(Debug, Default)]
struct Host {
    /// How often each TTL came on a SYN-ACK, and on a RST.
    syn_acks: HashMap<u8, u32>,
    resets: HashMap<u8, u32>,
    /// It answered something itself.
    answers: bool,
}

impl Host {
    /// The TTL most of its SYN-ACKs came with, else most of its RSTs (a firewall in front
    /// may reset for it, but only the instance accepts a connection); none on a tie.
    fn baseline(&self) -> Option<u8> {
        let ttls = if self.syn_acks.is_empty() {
            &self.resets
        } else {
            &self.syn_acks
        };
        let most = ttls.values().max()?;
        let mut at_most = ttls.iter().filter(|(_, n)| *n == most);
        let (ttl, _) = at_most.next()?;
        at_most.next().is_none().then_some(*ttl)
    }
}

/// The cause of each of `flows`' drift, in order, as `seen` shows each; `None` for a flow
/// with no drift.
pub fn causes<T>(flows: &[T], seen: impl Fn(&T) -> Seen) -> Vec<Option<Cause>> {
    let mut hosts: HashMap<IpAddr, Host> = HashMap::new();
    for flow in flows {
        let seen = seen(flow);
        if seen.drift != Drift::None || !seen.inbound {
            continue;
        }
        let host = hosts.entry(seen.address).or_default();
        host.answers |= answered_by_itself(&seen);
        match (seen.evidence, seen.ttl) {
            (Evidence::SynAck, Some(ttl)) => *host.syn_acks.entry(ttl).or_default() += 1,
            (Evidence::Rst, Some(ttl)) => *host.resets.entry(ttl).or_default() += 1,
            _ => {}
        }
    }
    flows
        .iter()
        .map(|flow| {
            let seen = &seen(flow);
            let host = hosts.get(&seen.address);
            let baseline = host.and_then(Host::baseline);
            let answers = host.is_some_and(|h| h.answers);
            cause(seen, baseline, answers)
        })
        .collect()
}

/// Whether the address itself replied to the flow (not a router on its behalf).
fn answered_by_itself(seen: &Seen) -> bool {
    match seen.evidence {
        Evidence::SynAck
        | Evidence::Rst
        | Evidence::UdpReply
        | Evidence::EchoReply
        | Evidence::Connected
        | Evidence::Refused => true,
        Evidence::Icmp { from, .. } => from == Some(seen.address),
        _ => false,
    }
}

/// One flow's cause, given its address's baseline TTL and whether it answers elsewhere.
fn cause(seen: &Seen, baseline: Option<u8>, answers: bool) -> Option<Cause> {
    // The instance's own TCP answer, or another box's, by the TTL it came with.
    let by_ttl = |own: Cause| match (seen.ttl, baseline) {
        (Some(ttl), Some(base)) if ttl == base => own,
        (Some(_), Some(_)) => Cause::AnsweredByMiddlebox,
        _ => Cause::Unknown,
    };
    Some(match (seen.drift, seen.evidence) {
        (Drift::None | Drift::Inconclusive, _) => return None,
        _ if !seen.inbound => Cause::Unknown,
        (Drift::Exposed, Evidence::SynAck | Evidence::Rst | Evidence::UdpReply) => {
            by_ttl(Cause::UnlistedRule)
        }
        (Drift::Blocked, Evidence::Rst) => by_ttl(Cause::NotListening),
        (Drift::Blocked, Evidence::Icmp { from, .. }) => match (from, seen.ttl, baseline) {
            // Bearing the instance's address with another TTL: not decided by the address.
            (Some(from), Some(ttl), Some(base)) if from == seen.address && ttl != base => {
                Cause::Unknown
            }
            (Some(from), _, _) if from == seen.address && seen.closed => Cause::NotListening,
            (Some(from), _, _) if from == seen.address => Cause::HostRejects,
            (Some(_), _, _) => Cause::RouterRejects,
            (None, _, _) => Cause::Unknown,
        },
        (Drift::Blocked, Evidence::NoReply) if answers => Cause::SilentDrop,
        _ => Cause::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::icmp::IcmpKind;

    const HOST: [u8; 4] = [10, 77, 1, 10];
    const ROUTER: [u8; 4] = [10, 77, 0, 1];

    fn seen(drift: Drift, evidence: Evidence, ttl: Option<u8>) -> Seen {
        Seen {
            address: IpAddr::from(HOST),
            inbound: true,
            drift,
            closed: false,
            evidence,
            ttl,
        }
    }

    /// A served flow the rules open, answered that nothing listens.
    fn not_listening(evidence: Evidence, ttl: Option<u8>) -> Seen {
        Seen {
            closed: true,
            ..seen(Drift::Blocked, evidence, ttl)
        }
    }

    fn icmp(code: u8, from: [u8; 4]) -> Evidence {
        Evidence::Icmp {
            kind: IcmpKind {
                v6: false,
                icmp_type: 3,
                code,
            },
            from: Some(IpAddr::from(from)),
        }
    }

    /// A host whose ports 22 and 80 agree with the rules (open, answered with TTL 63), and
    /// one drifting flow; the drifting flow's cause.
    fn with_baseline(drifting: Seen) -> Option<Cause> {
        let flows = [
            seen(Drift::None, Evidence::SynAck, Some(63)),
            seen(Drift::None, Evidence::Rst, Some(63)),
            drifting,
        ];
        causes(&flows, |s| *s)[2]
    }

    #[test]
    fn each_cause_is_read_from_a_recorded_reply() {
        for (drifting, expected) in [
            (
                seen(Drift::Exposed, Evidence::SynAck, Some(63)),
                Cause::UnlistedRule,
            ),
            (
                seen(Drift::Exposed, Evidence::SynAck, Some(61)),
                Cause::AnsweredByMiddlebox,
            ),
            // Exposed with nothing listening: the host's own RST still shows the way is open.
            (
                seen(Drift::Exposed, Evidence::Rst, Some(63)),
                Cause::UnlistedRule,
            ),
            (
                seen(Drift::Exposed, Evidence::Rst, Some(254)),
                Cause::AnsweredByMiddlebox,
            ),
            (
                seen(Drift::Blocked, icmp(13, HOST), Some(63)),
                Cause::HostRejects,
            ),
            // No kernel answers TCP with port unreachable: a firewall on the host does.
            (
                seen(Drift::Blocked, icmp(3, HOST), Some(63)),
                Cause::HostRejects,
            ),
            (
                seen(Drift::Blocked, icmp(13, ROUTER), Some(64)),
                Cause::RouterRejects,
            ),
            (
                seen(Drift::Blocked, Evidence::NoReply, None),
                Cause::SilentDrop,
            ),
            (not_listening(Evidence::Rst, Some(63)), Cause::NotListening),
            // A box in front resets for the service it cannot reach.
            (
                not_listening(Evidence::Rst, Some(250)),
                Cause::AnsweredByMiddlebox,
            ),
            // UDP: the instance's own port unreachable (its sender; no TTL on that socket).
            (not_listening(icmp(3, HOST), None), Cause::NotListening),
            (not_listening(icmp(3, ROUTER), None), Cause::RouterRejects),
        ] {
            assert_eq!(with_baseline(drifting), Some(expected), "{drifting:?}");
        }
    }

    #[test]
    fn what_the_evidence_does_not_decide_is_unknown() {
        // The host answers nothing that agrees with the rules: no baseline to compare with,
        // and its silence elsewhere says nothing of a drop.
        let alone = [
            seen(Drift::Exposed, Evidence::SynAck, Some(63)),
            seen(Drift::Exposed, Evidence::Rst, Some(63)),
            seen(Drift::Blocked, Evidence::NoReply, None),
            seen(Drift::None, Evidence::NoReply, None),
        ];
        assert_eq!(
            causes(&alone, |s| *s),
            [
                Some(Cause::Unknown),
                Some(Cause::Unknown),
                Some(Cause::Unknown),
                None
            ]
        );
        // No TTL (a connect() probe) or two TTLs in a tie: no baseline either.
        assert_eq!(
            with_baseline(seen(Drift::Exposed, Evidence::SynAck, None)),
            Some(Cause::Unknown)
        );
        assert_eq!(
            with_baseline(seen(Drift::Exposed, Evidence::Connected, None)),
            Some(Cause::Unknown)
        );
        let tie = [
            seen(Drift::None, Evidence::SynAck, Some(63)),
            seen(Drift::None, Evidence::SynAck, Some(60)),
            seen(Drift::Exposed, Evidence::SynAck, Some(63)),
        ];
        assert_eq!(causes(&tie, |s| *s)[2], Some(Cause::Unknown));
        // Nothing listening, with no TTL to tell the instance's RST from a box's.
        assert_eq!(
            with_baseline(not_listening(Evidence::Rst, None)),
            Some(Cause::Unknown)
        );
        // A connect() probe refused: a reset with no TTL to tell whose.
        assert_eq!(
            with_baseline(not_listening(Evidence::Refused, None)),
            Some(Cause::Unknown)
        );
        // An ICMP error bearing the host's address with another TTL than its own answers.
        assert_eq!(
            with_baseline(seen(Drift::Blocked, icmp(13, HOST), Some(250))),
            Some(Cause::Unknown)
        );
        // An outbound flow's replies come from its destination: nothing of the instance.
        let mut outbound = seen(Drift::Exposed, Evidence::SynAck, Some(63));
        outbound.inbound = false;
        assert_eq!(with_baseline(outbound), Some(Cause::Unknown));
        // An ICMP error whose sender is not known.
        let anonymous = Evidence::Icmp {
            kind: IcmpKind {
                v6: false,
                icmp_type: 3,
                code: 13,
            },
            from: None,
        };
        assert_eq!(
            with_baseline(seen(Drift::Blocked, anonymous, None)),
            Some(Cause::Unknown)
        );
    }

    #[test]
    fn the_baseline_is_read_from_syn_acks_before_resets() {
        // Two resets with a box's TTL outnumber one SYN-ACK from the instance: the instance's
        // own accepted connection sets the baseline.
        let flows = [
            seen(Drift::None, Evidence::Rst, Some(250)),
            seen(Drift::None, Evidence::Rst, Some(250)),
            seen(Drift::None, Evidence::SynAck, Some(63)),
            seen(Drift::Exposed, Evidence::SynAck, Some(63)),
        ];
        assert_eq!(causes(&flows, |s| *s)[3], Some(Cause::UnlistedRule));
    }

    #[test]
    fn the_baseline_is_the_hosts_own_and_drifting_flows_never_set_it() {
        // Another address's answers say nothing of this one.
        let mut other = seen(Drift::None, Evidence::SynAck, Some(63));
        other.address = IpAddr::from(ROUTER);
        let flows = [other, seen(Drift::Exposed, Evidence::SynAck, Some(63))];
        assert_eq!(causes(&flows, |s| *s)[1], Some(Cause::Unknown));
        // Two drifting flows with one TTL do not make each other the baseline.
        let flows = [
            seen(Drift::Exposed, Evidence::SynAck, Some(61)),
            seen(Drift::Exposed, Evidence::SynAck, Some(61)),
        ];
        assert_eq!(
            causes(&flows, |s| *s),
            [Some(Cause::Unknown), Some(Cause::Unknown)]
        );
    }

    #[test]
    fn every_cause_has_a_name_in_the_vocabulary() {
        use strum::IntoEnumIterator;
        let names: Vec<&str> = Cause::iter().map(Cause::name).collect();
        assert_eq!(
            names,
            [
                "unlisted-rule",
                "answered-by-middlebox",
                "host-rejects",
                "not-listening",
                "router-rejects",
                "silent-drop",
                "unknown"
            ]
        );
        for cause in Cause::iter() {
            assert_eq!(
                serde_json::to_value(cause).expect("serializes"),
                cause.name()
            );
        }
    }
}
