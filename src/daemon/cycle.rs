//! One pass over instances: plan, predict, probe, compare. Scheduled cycles and on-demand
//! checks both run this.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::drift::{Drift, classify};
use crate::engine::{
    Counters, EngineError, Method, Observation, PortState, ProbeProtocol, Settings, Target, probe,
};
use crate::model::{Action, Direction, Flow, FlowPeer, FlowProtocol, FlowSpec, Instance, Rule};
use crate::net::source_for;
use crate::policy::{Predicted, evaluate, layers};

/// A flow's identity across cycles: its metric labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FlowKey {
    pub instance: String,
    pub address: IpAddr,
    pub direction: Direction,
    pub protocol: &'static str,
    pub port: Option<u16>,
}

/// The rule that decided, owned so results outlive a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSummary {
    pub group: String,
    pub index: usize,
    pub id: Option<String>,
    pub action: Action,
    pub description: Option<String>,
}

impl From<&Rule> for RuleSummary {
    fn from(rule: &Rule) -> Self {
        RuleSummary {
            group: rule.origin.group.clone(),
            index: rule.origin.index,
            id: rule.origin.id.clone(),
            action: rule.action,
            description: rule.origin.description.clone(),
        }
    }
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
    pub evidence: String,
    pub attempts: u32,
    pub method: Method,
    /// This cycle's drift (the daemon confirms it over K cycles).
    pub drift: Drift,
    pub rule: Option<RuleSummary>,
}

/// Which flows: the plan, or the caller's ports and direction.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub ports: Option<Vec<FlowSpec>>,
    pub direction: Option<Direction>,
}

#[derive(Debug)]
pub struct Checked {
    pub results: Vec<FlowResult>,
    pub counters: Arc<Counters>,
    pub warnings: Vec<crate::engine::Warning>,
}

/// Plans, predicts and probes the flows of `instances`; one engine run for all of them, so the
/// global rate paces the whole cycle.
pub async fn check(
    config: &Config,
    instances: &[&Instance],
    selection: &Selection,
    settings: &Settings,
) -> Result<Checked, EngineError> {
    let inv = &config.inventory;
    let mut planned: Vec<(FlowKey, FlowPeer, Predicted, Option<RuleSummary>, Target)> = Vec::new();
    for instance in instances {
        let Ok(layers) = layers(inv, instance) else {
            continue;
        };
        let specs: Vec<(Direction, FlowSpec)> = match &selection.ports {
            Some(ports) => ports
                .iter()
                .map(|s| (selection.direction.unwrap_or(Direction::Inbound), *s))
                .collect(),
            None => crate::plan::plan(instance, &layers)
                .into_iter()
                .filter(|(d, _)| selection.direction.is_none_or(|w| w == *d))
                .collect(),
        };
        for address in &instance.addresses {
            let peer = source_for(*address).map_or(FlowPeer::All, FlowPeer::Addr);
            for (direction, spec) in &specs {
                // Probes leave from here toward the instance: outbound flows need an agent on it.
                if *direction == Direction::Outbound && !instance.local {
                    continue;
                }
                let protocol = match spec.protocol {
                    FlowProtocol::Tcp => ProbeProtocol::Tcp,
                    FlowProtocol::Udp => ProbeProtocol::Udp,
                    FlowProtocol::Icmp => ProbeProtocol::Icmp,
                    FlowProtocol::All => continue,
                };
                let flow = Flow {
                    address: *address,
                    direction: *direction,
                    spec: *spec,
                    peer,
                };
                let verdict = evaluate(inv, &layers, &flow);
                let key = FlowKey {
                    instance: instance.name.clone(),
                    address: *address,
                    direction: *direction,
                    protocol: flow.protocol_label(),
                    port: spec.port,
                };
                planned.push((
                    key,
                    peer,
                    verdict.predicted,
                    verdict.decider.rule.map(RuleSummary::from),
                    Target {
                        addr: *address,
                        protocol,
                        port: spec.port,
                    },
                ));
            }
        }
    }
    let counters = Arc::new(Counters::default());
    let targets: Vec<Target> = planned.iter().map(|p| p.4).collect();
    let report = probe(settings, &targets, counters.clone()).await?;
    let results = planned
        .into_iter()
        .zip(report.observations)
        .map(
            |((key, peer, predicted, rule, _), o): (_, Observation)| FlowResult {
                key,
                peer,
                predicted,
                observed: o.state,
                state: o.state,
                reachable: o.state.reachable(),
                rtt_ms: o.rtt.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
                drift: classify(predicted, o.state),
                evidence: o.evidence,
                attempts: o.attempts,
                method: o.method,
                rule,
            },
        )
        .collect();
    Ok(Checked {
        results,
        counters,
        warnings: report.warnings,
    })
}
