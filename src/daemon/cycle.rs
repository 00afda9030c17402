//! One pass over instances: plan, predict, probe, compare. Scheduled cycles and on-demand
//! checks both run this.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::cause::{Cause, Seen, causes};
use crate::config::Config;
use crate::drift::{Drift, classify};
use crate::engine::{
    Counters, EngineError, Evidence, Method, Pacer, ProbeProtocol, Settings, Target, probe,
};
use crate::model::{Direction, Flow, FlowPeer, FlowProtocol, FlowSpec, Instance, PortState, Rule};
use crate::net::source_for;
use crate::plan::{Planned, plan};
use crate::policy::{Predicted, RuleRef, evaluate, layers};

/// A flow's identity across cycles: its instance (by key: names repeat) and its metric
/// labels. Held for every planned flow, so it shares its instance's name instead of copying
/// it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FlowKey {
    /// The instance's cloud id, or its name where it has none (`Instance::key`).
    #[serde(skip)]
    pub id: Arc<str>,
    pub instance: Arc<str>,
    pub address: IpAddr,
    pub direction: Direction,
    pub protocol: &'static str,
    pub port: Option<u16>,
}

/// One checked flow: the contract's `check` row.
#[derive(Debug, Clone, Serialize)]
pub struct FlowResult {
    #[serde(flatten)]
    pub key: FlowKey,
    /// The prober's own address toward the instance: the verdict is computed for it.
    pub peer: FlowPeer,
    pub predicted: Predicted,
    pub observed: PortState,
    pub state: PortState,
    pub reachable: Option<bool>,
    pub rtt_ms: Option<f64>,
    pub evidence: Evidence,
    /// The deciding reply's IP TTL as received, where the socket gives it.
    pub ttl: Option<u8>,
    pub attempts: u32,
    pub method: Method,
    /// This cycle's drift.
    pub drift: Drift,
    /// Why it drifts, read from the evidence (`cause`); none without drift.
    pub cause: Option<Cause>,
    /// The instance serves this flow (its `serves`, inbound): nothing listening there is
    /// drift.
    #[serde(skip)]
    pub serves: bool,
    /// The drift confirmed over K cycles, which the daemon sets after each cycle. Kept in the
    /// row rather than beside it: at 100,000 flows a second table of rows was 15 MB.
    #[serde(skip)]
    pub confirmed: Drift,
    /// Shared by every flow the same rule decides.
    pub rule: SharedRule,
}

/// Which flows: the plan, or the caller's ports and direction; `only` these flows of it, if
/// given (a recheck of flows whose drift is not confirmed yet).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub ports: Option<Vec<FlowSpec>>,
    pub direction: Option<Direction>,
    pub only: Option<std::collections::HashSet<FlowKey>>,
}

#[derive(Debug)]
pub struct Checked {
    pub results: Vec<FlowResult>,
    pub warnings: Vec<crate::engine::Warning>,
}

/// A flow's deciding rule, shared by every flow it decides.
type SharedRule = Option<Arc<RuleRef>>;

/// Each instance's `instance` label, by its key: its name, or, where several instances bear
/// that name, its cloud id (their series would otherwise be one), which `check` takes too.
fn instance_labels(inv: &crate::model::Inventory) -> HashMap<&str, Arc<str>> {
    let mut bearers: HashMap<&str, usize> = HashMap::new();
    for instance in &inv.instances {
        *bearers.entry(&instance.name).or_default() += 1;
    }
    inv.instances
        .iter()
        .map(|i| {
            let label = if bearers[i.name.as_str()] == 1 {
                &i.name
            } else {
                i.key()
            };
            (i.key(), label.into())
        })
        .collect()
}

/// The source address the clouds see for probes to `target`: the agent's `seen_as` of that
/// family (its NAT or egress address), else the address it sends from; all, if neither is
/// known.
fn seen_from(config: &Config, target: IpAddr) -> FlowPeer {
    let seen_as = config
        .agent
        .seen_as
        .iter()
        .find(|a| a.is_ipv6() == target.is_ipv6());
    match seen_as {
        Some(address) => FlowPeer::Addr(*address),
        None => source_for(target).map_or(FlowPeer::All, FlowPeer::Addr),
    }
}

/// Plans, predicts and probes the flows of `instances`; one engine run for all of them, so the
/// global rate paces the whole cycle.
pub async fn check(
    config: &Config,
    instances: &[&Instance],
    selection: &Selection,
    settings: &Settings,
    pacer: &Pacer,
    counters: Arc<Counters>,
) -> Result<Checked, EngineError> {
    let inv = &config.inventory;
    // Each planned flow is its result row from the start, filled in once probed: building
    // the rows afterwards held a second copy of 100,000 of them at the cycle's peak.
    let mut planned: Vec<FlowResult> = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    // One reference per deciding rule, found by the rule's place in `config`.
    let mut rules: HashMap<usize, Arc<RuleRef>> = HashMap::new();
    let labels = instance_labels(inv);
    for instance in instances {
        let name: Arc<str> = labels
            .get(instance.key())
            .cloned()
            .unwrap_or_else(|| instance.name.as_str().into());
        let id: Arc<str> = instance.key().into();
        let Ok(layers) = layers(inv, instance) else {
            continue;
        };
        let items: Vec<Planned> = match (
            &selection.ports,
            selection.direction.unwrap_or(Direction::Inbound),
        ) {
            (Some(ports), Direction::Inbound) => {
                ports.iter().map(|s| Planned::inbound(*s)).collect()
            }
            // Outbound ports go to the destinations the instance's egress checks name.
            (Some(ports), Direction::Outbound) => {
                let destinations: BTreeSet<IpAddr> =
                    instance.outbound.iter().map(|(_, d)| *d).collect();
                ports
                    .iter()
                    .flat_map(|s| {
                        destinations.iter().map(|d| Planned {
                            direction: Direction::Outbound,
                            spec: *s,
                            destination: Some(*d),
                        })
                    })
                    .collect()
            }
            (None, _) => plan(instance, &layers)
                .into_iter()
                .filter(|p| selection.direction.is_none_or(|w| w == p.direction))
                .collect(),
        };
        for item in items {
            let protocol = match item.spec.protocol {
                FlowProtocol::Tcp => ProbeProtocol::Tcp,
                FlowProtocol::Udp => ProbeProtocol::Udp,
                FlowProtocol::Icmp => ProbeProtocol::Icmp,
                // Verdicts only: no probe can tell them.
                FlowProtocol::All | FlowProtocol::IcmpMessage { .. } | FlowProtocol::Ip(_) => {
                    continue;
                }
            };
            // Inbound: from here to each address of the instance, for our source address.
            // Outbound (agent on the instance): from the instance's address to the destination.
            let flows: Vec<(Flow, IpAddr)> = match item.destination {
                None => instance
                    .all_addresses()
                    .map(|a| {
                        (
                            Flow {
                                address: *a,
                                direction: Direction::Inbound,
                                spec: item.spec,
                                peer: seen_from(config, *a),
                                peer_port: None,
                            },
                            *a,
                        )
                    })
                    .collect(),
                Some(destination) => {
                    let source = source_for(destination).ok();
                    let own = instance
                        .addresses
                        .iter()
                        .copied()
                        .find(|a| Some(*a) == source)
                        .or_else(|| {
                            instance
                                .addresses
                                .iter()
                                .copied()
                                .find(|a| a.is_ipv6() == destination.is_ipv6())
                        });
                    own.map(|address| {
                        (
                            Flow {
                                address,
                                direction: Direction::Outbound,
                                spec: item.spec,
                                peer: FlowPeer::Addr(destination),
                                peer_port: None,
                            },
                            destination,
                        )
                    })
                    .into_iter()
                    .collect()
                }
            };
            let serves = item.destination.is_none() && instance.serves.contains(&item.spec);
            for (flow, probed) in flows {
                let verdict = evaluate(inv, &layers, &flow);
                let key = FlowKey {
                    id: id.clone(),
                    instance: name.clone(),
                    address: probed,
                    direction: flow.direction,
                    protocol: flow.protocol_label(),
                    port: item.spec.port,
                };
                if selection
                    .only
                    .as_ref()
                    .is_some_and(|only| !only.contains(&key))
                {
                    continue;
                }
                planned.push(FlowResult {
                    key,
                    peer: flow.peer,
                    predicted: verdict.predicted,
                    observed: PortState::Unknown,
                    state: PortState::Unknown,
                    reachable: None,
                    rtt_ms: None,
                    evidence: Evidence::NoReply,
                    ttl: None,
                    attempts: 0,
                    method: Method::Syn,
                    drift: Drift::Inconclusive,
                    cause: None,
                    serves,
                    confirmed: Drift::None,
                    rule: verdict.decider.rule.map(|rule| {
                        rules
                            .entry(std::ptr::from_ref::<Rule>(rule).addr())
                            .or_insert_with(|| Arc::new(RuleRef::from(rule)))
                            .clone()
                    }),
                });
                targets.push(Target {
                    addr: probed,
                    protocol,
                    port: item.spec.port,
                });
            }
        }
    }
    // Held while the probes run: the slack of their doublings is a fifth of them at
    // 100,000 flows.
    planned.shrink_to_fit();
    targets.shrink_to_fit();
    let report = probe(settings, pacer, &targets, counters).await?;
    drop(targets);
    // One observation per target, in order.
    for (r, o) in planned.iter_mut().zip(report.observations) {
        r.observed = o.state;
        r.state = o.state;
        r.reachable = o.state.reachable();
        r.rtt_ms = o.rtt.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3);
        r.drift = classify(r.predicted, o.state, r.serves);
        r.evidence = o.evidence;
        r.ttl = o.ttl;
        r.attempts = o.attempts;
        r.method = o.method;
    }
    find_causes(&mut planned);
    Ok(Checked {
        results: planned,
        warnings: report.warnings,
    })
}

/// Judges the drifting flows again against `config`'s rules (fetched after the flows were
/// observed): each keeps its observation and gets the prediction, deciding rule and drift
/// those rules give. A flow whose instance has left the rules keeps what it had.
pub fn rejudge(config: &Config, results: &mut [FlowResult]) {
    let inv = &config.inventory;
    // By key exactly: a name that is an id-less instance's key may be borne by others too.
    let by_key: HashMap<&str, &Instance> = inv.instances.iter().map(|i| (i.key(), i)).collect();
    for result in results
        .iter_mut()
        .filter(|r| matches!(r.drift, Drift::Exposed | Drift::Blocked))
    {
        let Some(&instance) = by_key.get(&*result.key.id) else {
            continue;
        };
        let Ok(layers) = layers(inv, instance) else {
            continue;
        };
        let protocol = match result.key.protocol {
            "tcp" => FlowProtocol::Tcp,
            "udp" => FlowProtocol::Udp,
            "icmp" | "icmpv6" => FlowProtocol::Icmp,
            _ => continue,
        };
        let flow = Flow {
            address: result.key.address,
            direction: result.key.direction,
            spec: FlowSpec {
                protocol,
                port: result.key.port,
            },
            peer: result.peer,
            peer_port: None,
        };
        let verdict = evaluate(inv, &layers, &flow);
        result.serves =
            flow.direction == Direction::Inbound && instance.serves.contains(&flow.spec);
        result.predicted = verdict.predicted;
        result.rule = verdict.decider.rule.map(|r| Arc::new(RuleRef::from(r)));
        result.drift = classify(verdict.predicted, result.observed, result.serves);
    }
    find_causes(results);
}

/// Each drifting flow's cause, read from its evidence beside its address's other flows.
pub fn find_causes(results: &mut [FlowResult]) {
    let found = causes(results, |r| Seen {
        address: r.key.address,
        inbound: r.key.direction == Direction::Inbound,
        drift: r.drift,
        closed: r.observed == PortState::Closed,
        evidence: r.evidence,
        ttl: r.ttl,
    });
    for (r, cause) in results.iter_mut().zip(found) {
        r.cause = cause;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Inventory;

    fn instance(name: &str, id: Option<&str>) -> Instance {
        let mut instance = Instance::new(name, "test");
        instance.id = id.map(Into::into);
        instance
    }

    #[test]
    fn instances_sharing_a_name_are_labelled_by_their_ids_and_the_rest_by_name() {
        let mut inv = Inventory::default();
        inv.instances = vec![
            instance("web", Some("i-1")),
            instance("web", Some("i-2")),
            instance("db", Some("i-3")),
            instance("cache", None),
        ];
        let labels = instance_labels(&inv);
        let label = |key: &str| labels.get(key).map(|l| l.to_string());
        assert_eq!(label("i-1").as_deref(), Some("i-1"));
        assert_eq!(label("i-2").as_deref(), Some("i-2"));
        assert_eq!(label("i-3").as_deref(), Some("db"));
        assert_eq!(label("cache").as_deref(), Some("cache"));
    }
}
