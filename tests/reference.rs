//! Property: the evaluator agrees with a deliberately naive reference evaluator on random rule
//! sets, for every decision mode, across two bound groups, for single peers and for peer `all`.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;
use sgprobe::model::{
    Action, Cloud, Direction, Flow, FlowPeer, FlowProtocol, FlowSpec, Instance, Inventory, Located,
    Origin, Peer, PortRange, Ports, Protocol, Rule, SecurityGroup, Service,
};
use sgprobe::policy::{Predicted, evaluate, layers};

#[derive(Debug, Clone)]
struct R {
    accept: bool,
    protocol: Option<u8>,
    first: u16,
    last: u16,
    net: Ipv4Net,
    priority: i64,
}

fn rule_strategy(accept_only: bool) -> impl Strategy<Value = R> {
    (
        any::<bool>(),
        prop_oneof![Just(None), Just(Some(6u8)), Just(Some(17u8))],
        1u16..=8,
        0u16..=3,
        prop_oneof![
            4 => (24u8..=32, any::<u8>()).prop_map(|(len, host)| Ipv4Net::new(Ipv4Addr::new(10, 0, 0, host), len).expect("valid").trunc()),
            1 => Just(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).expect("valid")),
        ],
        0i64..=3,
    )
        .prop_map(move |(accept, protocol, first, span, net, priority)| R {
            accept: accept || accept_only,
            protocol,
            first,
            last: first + span,
            net,
            priority,
        })
}

/// The naive answer for one concrete packet: accept?, and the deciding (group, index), or
/// `None` for the default; `Err(())` for an ambiguous tie.
fn naive(
    cloud: Cloud,
    groups: &[Vec<R>],
    protocol: u8,
    port: u16,
    peer: Ipv4Addr,
) -> Result<(bool, Option<(usize, usize)>), ()> {
    let all: Vec<((usize, usize), &R)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, rules)| rules.iter().enumerate().map(move |(i, r)| ((g, i), r)))
        .collect();
    let matching: Vec<((usize, usize), &R)> = all
        .into_iter()
        .filter(|(_, r)| {
            r.protocol.is_none_or(|p| p == protocol)
                && (r.first..=r.last).contains(&port)
                && r.net.contains(&peer)
        })
        .collect();
    match cloud {
        Cloud::Tencent => Ok(matching
            .first()
            .map_or((false, None), |(at, r)| (r.accept, Some(*at)))),
        Cloud::Aws => Ok(matching
            .first()
            .map_or((false, None), |(at, _)| (true, Some(*at)))),
        Cloud::QingCloud | Cloud::Alibaba => {
            let Some(best) = matching.iter().map(|(_, r)| r.priority).min() else {
                return Ok((false, None));
            };
            let tied: Vec<&((usize, usize), &R)> = matching
                .iter()
                .filter(|(_, r)| r.priority == best)
                .collect();
            if tied.iter().all(|(_, r)| r.accept == tied[0].1.accept) {
                return Ok((tied[0].1.accept, Some(tied[0].0)));
            }
            if cloud == Cloud::QingCloud {
                return Err(());
            }
            let drop = tied
                .iter()
                .find(|(_, r)| !r.accept)
                .expect("a tie of different actions holds a drop");
            Ok((false, Some(drop.0)))
        }
        _ => unreachable!("not generated"),
    }
}

fn build(cloud: Cloud, groups: &[Vec<R>]) -> Inventory {
    let mut inv = Inventory::default();
    let mut instance = Instance::new("i", "test");
    instance
        .addresses
        .push("10.9.9.9".parse().expect("literal"));
    for (g, rules) in groups.iter().enumerate() {
        let id = format!("g{g}");
        let mut group = SecurityGroup::new(&id, cloud);
        for (index, r) in rules.iter().enumerate() {
            let protocol = r.protocol.map_or(Protocol::All, Protocol::from_number);
            group.ingress.push(Rule {
                action: if r.accept {
                    Action::Accept
                } else {
                    Action::Drop
                },
                service: Service::ports(
                    protocol,
                    Ports::Ranges(vec![PortRange::new(r.first, r.last).expect("ordered")]),
                ),
                peer: Peer::Cidr(IpNet::V4(r.net)),
                local: Peer::All,
                priority: Some(r.priority),
                origin: Origin {
                    group: id.as_str().into(),
                    index,
                    ..Origin::default()
                },
            });
        }
        inv.insert_group(group);
        instance.security_groups.push(Located {
            value: id,
            at: String::new(),
        });
    }
    inv.instances.push(instance);
    inv
}

fn case(cloud: Cloud) -> impl Strategy<Value = (Cloud, Vec<Vec<R>>)> {
    let accept_only = cloud == Cloud::Aws;
    (
        prop::collection::vec(rule_strategy(accept_only), 0..8),
        prop::collection::vec(rule_strategy(accept_only), 0..8),
    )
        .prop_map(move |(a, b)| (cloud, vec![a, b]))
}

fn clouds() -> impl Strategy<Value = (Cloud, Vec<Vec<R>>)> {
    prop_oneof![
        case(Cloud::Tencent),
        case(Cloud::QingCloud),
        case(Cloud::Alibaba),
        case(Cloud::Aws)
    ]
}

/// The peers that stand for every behaviour: each address of 10.0.0.0/24, and one outside.
fn peers() -> Vec<Ipv4Addr> {
    (0..=255u8)
        .map(|h| Ipv4Addr::new(10, 0, 0, h))
        .chain([Ipv4Addr::new(11, 0, 0, 1)])
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn single_peers_agree_with_the_reference((cloud, groups) in clouds(), port in 1u16..=12, udp in any::<bool>(), host in any::<u8>(), outside in any::<bool>()) {
        let inv = build(cloud, &groups);
        let layers = layers(&inv, &inv.instances[0]).expect("links");
        let peer = if outside { Ipv4Addr::new(11, 0, 0, 1) } else { Ipv4Addr::new(10, 0, 0, host) };
        let (protocol, number) = if udp { (FlowProtocol::Udp, 17) } else { (FlowProtocol::Tcp, 6) };
        let flow = Flow {
            address: "10.9.9.9".parse().expect("literal"),
            direction: Direction::Inbound,
            spec: FlowSpec { protocol, port: Some(port) },
            peer: FlowPeer::Addr(IpAddr::V4(peer)),
            peer_port: None,
        };
        let v = evaluate(&inv, &layers, &flow);
        let decided = v.decider.rule.map(|r| (r.origin.group[1..].parse::<usize>().expect("gN"), r.origin.index));
        match naive(cloud, &groups, number, port, peer) {
            Err(()) => prop_assert_eq!(v.predicted, Predicted::Ambiguous),
            Ok((accept, at)) => {
                prop_assert_eq!(v.predicted, if accept { Predicted::Open } else { Predicted::Closed });
                prop_assert_eq!(decided, at);
            }
        }
    }

    #[test]
    fn peer_all_agrees_with_the_reference_address_by_address((cloud, groups) in clouds(), port in 1u16..=12) {
        prop_assume!(cloud != Cloud::QingCloud); // ties make peer `all` ambiguous wholesale
        let inv = build(cloud, &groups);
        let layers = layers(&inv, &inv.instances[0]).expect("links");
        let flow = Flow {
            address: "10.9.9.9".parse().expect("literal"),
            direction: Direction::Inbound,
            spec: FlowSpec { protocol: FlowProtocol::Tcp, port: Some(port) },
            peer: FlowPeer::All,
            peer_port: None,
        };
        let v = evaluate(&inv, &layers, &flow);
        let open: Vec<bool> = peers().iter().map(|p| naive(cloud, &groups, 6, port, *p).expect("no ties").0).collect();
        let expected = if open.iter().all(|o| *o) {
            Predicted::Open
        } else if open.iter().all(|o| !*o) {
            Predicted::Closed
        } else {
            Predicted::Partial
        };
        prop_assert_eq!(v.predicted, expected);
        if expected == Predicted::Partial {
            for (peer, open) in peers().iter().zip(&open) {
                let listed = v.allowed_peers.iter().any(|n| n.contains(&IpAddr::V4(*peer)));
                prop_assert_eq!(listed, *open, "peer {}", peer);
            }
        }
    }
}
