//! What the newer clouds' rules say beyond a peer and a port compiles to nftables as the
//! evaluator reads it: a named set with exclusions (Azure's Internet tag is everything but
//! the VNet and special-use ranges) and a match on the instance's own address (an Azure
//! destination prefix). Real packets in a lab, compared with `policy::evaluate`.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use sgprobe::engine::{ProbeProtocol, Settings, Target};
use sgprobe::lab::{LabSpec, Listen};
use sgprobe::model::PortState;
use sgprobe::model::{Direction, Flow, FlowPeer, parse_port_spec};
use sgprobe::policy::{Predicted, evaluate, layers};
use sgprobe::sources::native;

const LAB: &str = r#"
[[address_set]]
id = "tag:Outside"
members = ["10.76.0.0/16", "fd76::/16"]
excludes = ["carve"]

[[address_set]]
id = "carve"
members = ["10.76.0.1/32", "fd76::1/128"]

[[group]]
id = "nsg"
cloud = "azure"
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "22"
peer = "set:tag:Outside"
priority = 100
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "80"
peer = "all"
local = "10.77.1.10/32"
priority = 110
[[group.ingress]]
action = "accept"
protocol = "tcp"
ports = "80"
peer = "all"
local = "fd77:1::10/128"
priority = 111
[[group.egress]]
action = "accept"
peer = "all"
priority = 4000

[[instance]]
name = "i0"
addresses = ["10.77.0.10", "fd77::10"]
security_groups = ["nsg"]

[[instance]]
name = "i1"
addresses = ["10.77.1.10", "fd77:1::10"]
security_groups = ["nsg"]
"#;

#[test]
fn set_exclusions_and_instance_side_matches_agree_with_the_evaluator() {
    let inventory = native::parse(Path::new("lab.toml"), LAB).expect("valid");
    let spec = LabSpec {
        inventory,
        listen: ["i0", "i1"]
            .into_iter()
            .map(|instance| Listen {
                instance: instance.into(),
                protocol: sgprobe::model::Protocol::Tcp,
                ports: vec![22, 80],
            })
            .collect(),
        namespace_per_instance: true,
        ..LabSpec::default()
    };
    let Some(lab) = common::lab(&spec) else {
        return;
    };
    let inv = &spec.inventory;
    // The prober reaches instance n from 10.76.n.1 (fd76:n::1): i0's prober is carved out.
    let mut cases = Vec::new();
    for (n, instance) in inv.instances.iter().enumerate() {
        let layers = layers(inv, instance).expect("links");
        for address in &instance.addresses {
            let peer: IpAddr = if address.is_ipv6() {
                format!("fd76:{n:x}::1")
            } else {
                format!("10.76.{n}.1")
            }
            .parse()
            .expect("address");
            for port in [22, 80] {
                let flow = Flow {
                    address: *address,
                    direction: Direction::Inbound,
                    spec: parse_port_spec(&format!("tcp:{port}")).expect("spec")[0],
                    peer: FlowPeer::Addr(peer),
                    peer_port: None,
                };
                let predicted = evaluate(inv, &layers, &flow).predicted;
                // i1 is open on both ports, i0 on neither (carved out of the set; 80 names i1).
                assert_eq!(
                    predicted,
                    if n == 1 {
                        Predicted::Open
                    } else {
                        Predicted::Closed
                    },
                    "{} tcp:{port} from {peer}",
                    instance.name
                );
                cases.push((
                    Target {
                        addr: *address,
                        protocol: ProbeProtocol::Tcp,
                        port: Some(port),
                    },
                    predicted,
                ));
            }
        }
    }
    let settings = Settings {
        timeout: Duration::from_millis(300),
        retries: 1,
        ..Settings::default()
    };
    let report = common::probe_in(&lab, settings, cases.iter().map(|c| c.0).collect());
    for ((target, predicted), seen) in cases.iter().zip(&report.observations) {
        let expected = match predicted {
            Predicted::Open => PortState::Open,
            _ => PortState::Filtered,
        };
        assert_eq!(seen.state, expected, "{target:?} predicted {predicted:?}");
    }
}
