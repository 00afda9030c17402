//! Lint: risky or useless rules, each group judged on its own. Pure.

use std::net::IpAddr;

use serde::Serialize;

use super::evaluate::{Predicted, Reach, evaluate, reach};
use super::link::{Layer, layers};
use crate::model::catalog::{HIGH_RISK_TCP, HIGH_RISK_UDP};
use crate::model::{
    Action, Decision, Direction, Flow, FlowPeer, FlowProtocol, FlowSpec, Instance, Inventory,
    Located, Peer, Ports, Protocol, Rule, Service,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding<'a> {
    pub severity: Severity,
    /// A stable name for the check: `all-ports-open`, `high-risk-open`, `shadowed`, `redundant`.
    pub check: &'static str,
    pub group: String,
    pub direction: Direction,
    pub rule: Option<&'a Rule>,
    pub message: String,
}

/// Every finding for every group, most severe first.
pub fn lint(inv: &Inventory) -> Vec<Finding<'_>> {
    let mut findings = Vec::new();
    for group in inv.groups.values() {
        // Judge the group as if it were the only one bound.
        let mut alone = Instance::new("lint", "lint");
        alone.security_groups.push(Located {
            value: group.id.clone(),
            at: String::new(),
        });
        let Ok(layers) = layers(inv, &alone) else {
            continue;
        };
        let layer = &layers[0];
        for direction in [Direction::Inbound, Direction::Outbound] {
            if direction == Direction::Inbound {
                findings.extend(world_open(layer, &group.id));
                findings.extend(high_risk(inv, &layers, &group.id));
            }
            findings.extend(unreachable(inv, layer, &group.id, direction));
        }
    }
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.group.cmp(&b.group)));
    findings
}

fn is_world(peer: &Peer) -> bool {
    match peer {
        Peer::All => true,
        Peer::Cidr(net) => net.prefix_len() == 0,
        _ => false,
    }
}

/// Inbound accept rules opening every port of TCP or UDP (or every protocol) to everyone.
fn world_open<'a>(layer: &Layer<'a>, group: &str) -> Vec<Finding<'a>> {
    layer
        .rules(Direction::Inbound)
        .iter()
        .filter(|r| r.origin.group == group && r.action == Action::Accept && is_world(&r.peer))
        .filter(|r| {
            matches!(
                &r.service,
                Service::Ports {
                    protocol: Protocol::All | Protocol::Tcp | Protocol::Udp,
                    ports: Ports::All,
                    ..
                }
            )
        })
        .map(|rule| Finding {
            severity: Severity::Critical,
            check: "all-ports-open",
            group: group.to_string(),
            direction: Direction::Inbound,
            rule: Some(rule),
            message: format!("opens every {} port to {}", rule.service, rule.peer),
        })
        .collect()
}

/// The seed's high-risk ports open to 0.0.0.0/0 or ::/0, one finding per deciding rule.
fn high_risk<'a>(inv: &'a Inventory, layers: &[Layer<'a>], group: &str) -> Vec<Finding<'a>> {
    let mut by_rule: Vec<(&'a Rule, &'static str, Vec<String>)> = Vec::new();
    let ports = HIGH_RISK_TCP
        .iter()
        .map(|p| (FlowProtocol::Tcp, *p))
        .chain(HIGH_RISK_UDP.iter().map(|p| (FlowProtocol::Udp, *p)));
    for (protocol, port) in ports {
        for (world, address) in [("0.0.0.0/0", "192.0.2.1"), ("::/0", "2001:db8::1")] {
            let address: IpAddr = address.parse().expect("valid literal");
            let flow = Flow {
                address,
                direction: Direction::Inbound,
                spec: FlowSpec {
                    protocol,
                    port: Some(port),
                },
                peer: FlowPeer::All,
                peer_port: None,
            };
            let verdict = evaluate(inv, layers, &flow);
            // Open, or open to all but some carve-outs, through a rule that names the world.
            let exposed = matches!(verdict.predicted, Predicted::Open | Predicted::Partial);
            let Some(rule) = verdict
                .decider
                .rule
                .filter(|r| exposed && is_world(&r.peer))
            else {
                continue;
            };
            let spec = flow.spec.to_string();
            match by_rule
                .iter_mut()
                .find(|(r, w, _)| std::ptr::eq(*r, rule) && *w == world)
            {
                Some((_, _, specs)) => {
                    if !specs.contains(&spec) {
                        specs.push(spec);
                    }
                }
                None => by_rule.push((rule, world, vec![spec])),
            }
        }
    }
    by_rule
        .into_iter()
        .map(|(rule, world, specs)| Finding {
            severity: Severity::High,
            check: "high-risk-open",
            group: group.to_string(),
            direction: Direction::Inbound,
            rule: Some(rule),
            message: format!("high-risk ports open to {world}: {}", specs.join(", ")),
        })
        .collect()
}

/// Rules that can never decide: earlier rules (or, for allow-only groups, other rules)
/// always decide first.
fn unreachable<'a>(
    inv: &'a Inventory,
    layer: &Layer<'a>,
    group: &str,
    direction: Direction,
) -> Vec<Finding<'a>> {
    let union = layer.semantics.decision == Decision::AllowUnion;
    layer
        .rules(direction)
        .iter()
        .filter_map(|rule| match reach(inv, layer, direction, rule) {
            Reach::Shadowed(by) => {
                let by = by.rule.map_or("the default".to_string(), |r| {
                    format!(
                        "rule {} ({} {} from {})",
                        r.origin.index, r.action, r.service, r.peer
                    )
                });
                Some(Finding {
                    severity: if union {
                        Severity::Info
                    } else {
                        Severity::Medium
                    },
                    check: if union { "redundant" } else { "shadowed" },
                    group: group.to_string(),
                    direction,
                    rule: Some(*rule),
                    message: if union {
                        format!("never needed: {by} already allows all it allows")
                    } else {
                        format!("never decides: {by} decides first everywhere it matches")
                    },
                })
            }
            Reach::Decides | Reach::Unresolved => None,
        })
        .collect()
}
