//! Which flows to check on an instance each cycle. Pure.
//!
//! The console's common inbound ports, the instance's own `ports` and `serves`, and the boundaries of its
//! rules: the first and last port of every range and the ports just outside, where an
//! off-by-one in a rule (or in its enforcement) shows. Outbound flows need the agent on the
//! instance itself (`local = true`): from elsewhere, only inbound can be probed.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::model::catalog::COMMON_PORTS;
use crate::model::{Direction, FlowProtocol, FlowSpec, Instance, Ports, Protocol, Service};
use crate::policy::Layer;

/// One flow to probe: inbound to every address of the instance, or outbound to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Planned {
    pub direction: Direction,
    pub spec: FlowSpec,
    /// Where an outbound flow goes; `None` inbound.
    pub destination: Option<IpAddr>,
}

impl Planned {
    pub fn inbound(spec: FlowSpec) -> Self {
        Planned {
            direction: Direction::Inbound,
            spec,
            destination: None,
        }
    }
}

/// What the console checks on an instance: its common ports both ways, and the instance's
/// own `ports` and `serves` inbound; inbound first, ICMP before TCP before UDP before all traffic, ports in
/// numeric order, as a person reads them.
pub fn console_checks(instance: &Instance) -> Vec<(Direction, FlowSpec)> {
    let checks: BTreeSet<(Direction, FlowSpec)> = COMMON_PORTS
        .iter()
        .map(|c| (c.direction, c.spec))
        .chain(
            instance
                .ports
                .iter()
                .chain(&instance.serves)
                .map(|s| (Direction::Inbound, *s)),
        )
        .collect();
    let mut checks: Vec<_> = checks.into_iter().collect();
    checks.sort_by_key(|(direction, spec)| {
        let protocol = match spec.protocol {
            FlowProtocol::Icmp => 0,
            FlowProtocol::IcmpMessage { .. } => 1,
            FlowProtocol::Tcp => 2,
            FlowProtocol::Udp => 3,
            FlowProtocol::Ip(_) => 4,
            FlowProtocol::All => 5,
        };
        (*direction, protocol, spec.port, spec.protocol)
    });
    checks
}

/// The flows to probe on the instance, in a stable order: the console's checks a probe from
/// here can tell (inbound, and not "all traffic", which is a verdict), the instance's
/// egress checks where the agent runs on it, and the boundaries of its rules.
pub fn plan(instance: &Instance, layers: &[Layer]) -> Vec<Planned> {
    let mut flows: BTreeSet<Planned> = console_checks(instance)
        .into_iter()
        .filter(|(direction, spec)| *direction == Direction::Inbound && spec.protocol.is_probe())
        .map(|(_, spec)| Planned::inbound(spec))
        .collect();
    if instance.local {
        flows.extend(instance.outbound.iter().map(|(spec, destination)| Planned {
            direction: Direction::Outbound,
            spec: *spec,
            destination: Some(*destination),
        }));
    }
    for layer in layers {
        for rule in layer.rules(Direction::Inbound) {
            let Service::Ports {
                protocol,
                ports: Ports::Ranges(ranges),
                ..
            } = &rule.service
            else {
                continue;
            };
            let protocols: &[FlowProtocol] = match protocol {
                Protocol::Tcp => &[FlowProtocol::Tcp],
                Protocol::Udp => &[FlowProtocol::Udp],
                Protocol::All => &[FlowProtocol::Tcp, FlowProtocol::Udp],
                _ => &[],
            };
            for range in ranges {
                let edges = [
                    range.first.checked_sub(1),
                    Some(range.first),
                    Some(range.last),
                    range.last.checked_add(1),
                ];
                for port in edges.into_iter().flatten().filter(|p| *p > 0) {
                    for protocol in protocols {
                        flows.insert(Planned::inbound(FlowSpec {
                            protocol: *protocol,
                            port: Some(port),
                        }));
                    }
                }
            }
        }
    }
    flows.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::layers;
    use crate::sources::native;

    #[test]
    fn common_ports_own_ports_and_rule_boundaries() {
        let inv = native::parse(
            std::path::Path::new("t.toml"),
            r#"
[[group]]
id = "g"
cloud = "tencent"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "8000-8100"
peer = "all"
[[group.ingress]]
action = "accept"
protocol = "udp"
ports = "1"
peer = "all"
[[instance]]
name = "i"
addresses = ["10.0.0.1"]
security_groups = ["g"]
ports = "udp:53,all"
"#,
        )
        .expect("valid");
        let instance = &inv.instances[0];
        let flows = plan(instance, &layers(&inv, instance).expect("links"));
        let tcp = |p| {
            Planned::inbound(FlowSpec {
                protocol: FlowProtocol::Tcp,
                port: Some(p),
            })
        };
        let udp = |p| {
            Planned::inbound(FlowSpec {
                protocol: FlowProtocol::Udp,
                port: Some(p),
            })
        };
        for expected in [
            tcp(22),
            tcp(3389),
            tcp(7999),
            tcp(8000),
            tcp(8100),
            tcp(8101),
            udp(53),
            udp(1),
            udp(2),
        ] {
            assert!(flows.contains(&expected), "{expected:?} in {flows:?}");
        }
        assert!(!flows.contains(&udp(0)), "port 0 is no port");
        assert!(
            flows
                .iter()
                .all(|p| p.direction == Direction::Inbound && p.spec.protocol.is_probe()),
            "remote: inbound probes only"
        );
        assert!(flows.contains(&Planned::inbound(FlowSpec {
            protocol: FlowProtocol::Icmp,
            port: None
        })));
    }
}
