//! Flows: what is checked, and the port-spec language (`tcp:22,80,udp:53,icmp`) that names them.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;
use thiserror::Error;

use super::rule::{Direction, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, PortRange};

/// The protocol of a checked flow. `Icmp` is an echo request, ICMPv6 on an IPv6 address; `All`
/// is "all traffic", the console's outbound check. `IcmpMessage` is any other ICMP type (of
/// one family), `Ip` another IP protocol (GRE, ESP, ...): both are evaluated, and no probe
/// can tell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowProtocol {
    Tcp,
    Udp,
    Icmp,
    All,
    IcmpMessage {
        v6: bool,
        icmp_type: u8,
        /// `None`: every code of the type.
        code: Option<u8>,
    },
    Ip(u8),
}

/// Names of IP protocols a port spec may use, with their numbers (IANA).
const IP_PROTOCOLS: [(&str, u8); 5] = [
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipip", 4),
    ("vrrp", 112),
];

impl FlowProtocol {
    /// The IP protocol number on the wire for an address of this family.
    pub fn number(self, address: IpAddr) -> Option<u8> {
        match self {
            FlowProtocol::Tcp => Some(IPPROTO_TCP),
            FlowProtocol::Udp => Some(IPPROTO_UDP),
            FlowProtocol::Icmp if address.is_ipv6() => Some(IPPROTO_ICMPV6),
            FlowProtocol::Icmp => Some(IPPROTO_ICMP),
            FlowProtocol::IcmpMessage { v6: true, .. } => Some(IPPROTO_ICMPV6),
            FlowProtocol::IcmpMessage { v6: false, .. } => Some(IPPROTO_ICMP),
            FlowProtocol::Ip(n) => Some(n),
            FlowProtocol::All => None,
        }
    }

    /// The lower-case name used in JSON and metrics labels.
    pub fn label(self, address: IpAddr) -> &'static str {
        match self {
            FlowProtocol::Tcp => "tcp",
            FlowProtocol::Udp => "udp",
            FlowProtocol::Icmp if address.is_ipv6() => "icmpv6",
            FlowProtocol::Icmp => "icmp",
            FlowProtocol::IcmpMessage { v6: true, .. } => "icmpv6",
            FlowProtocol::IcmpMessage { v6: false, .. } => "icmp",
            FlowProtocol::Ip(n) => IP_PROTOCOLS
                .iter()
                .find(|(_, number)| *number == n)
                .map_or("ip", |(name, _)| name),
            FlowProtocol::All => "all",
        }
    }

    pub fn has_port(self) -> bool {
        matches!(self, FlowProtocol::Tcp | FlowProtocol::Udp)
    }

    /// Whether a probe can tell: TCP, UDP and ICMP echo.
    pub fn is_probe(self) -> bool {
        matches!(
            self,
            FlowProtocol::Tcp | FlowProtocol::Udp | FlowProtocol::Icmp
        )
    }

    /// Whether the flow exists at an address of this family (an ICMP message is of one).
    pub fn applies_to(self, address: IpAddr) -> bool {
        match self {
            FlowProtocol::IcmpMessage { v6, .. } => v6 == address.is_ipv6(),
            _ => true,
        }
    }
}

/// One entry of a port spec: a protocol and, for TCP/UDP, a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowSpec {
    pub protocol: FlowProtocol,
    pub port: Option<u16>,
}

impl fmt::Display for FlowSpec {
    /// The console's spelling: `TCP:22`, `ICMP`, `ALL`; `ICMP:3/4`, `ICMPv6:1`, `GRE`,
    /// `PROTO:132`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.protocol {
            FlowProtocol::Tcp => "TCP",
            FlowProtocol::Udp => "UDP",
            FlowProtocol::Icmp => "ICMP",
            FlowProtocol::All => "ALL",
            FlowProtocol::IcmpMessage {
                v6,
                icmp_type,
                code,
            } => {
                let family = if v6 { "ICMPv6" } else { "ICMP" };
                return match code {
                    Some(code) => write!(f, "{family}:{icmp_type}/{code}"),
                    None => write!(f, "{family}:{icmp_type}"),
                };
            }
            FlowProtocol::Ip(n) => {
                return match IP_PROTOCOLS.iter().find(|(_, number)| *number == n) {
                    Some((name, _)) => f.write_str(&name.to_ascii_uppercase()),
                    None => write!(f, "PROTO:{n}"),
                };
            }
        };
        match self.port {
            Some(port) => write!(f, "{name}:{port}"),
            None => f.write_str(name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bad port spec {spec:?} at {token:?}: {reason}")]
pub struct PortSpecError {
    pub spec: String,
    pub token: String,
    pub reason: &'static str,
}

/// Parses `tcp:22`, `tcp:20-21`, `tcp:22,80,443,udp:53,icmp`: a bare number or range takes the
/// last protocol named (TCP before any is named, as nmap's `-p` does). Also `icmp:3/4` (type
/// and code; `icmp:3` every code), `icmpv6:1`, `gre`, `esp`, `ah`, `proto:132`; `icmp:8` and
/// `icmpv6:128` are echo, as `icmp`. Duplicates are removed and the order is kept.
pub fn parse_port_spec(spec: &str) -> Result<Vec<FlowSpec>, PortSpecError> {
    /// What a value after `name:` (or a bare number) means.
    #[derive(Clone, Copy)]
    enum Kind {
        Ports(FlowProtocol),
        Icmp { v6: bool },
        Proto,
        Bare(FlowProtocol),
    }
    let mut specs: Vec<FlowSpec> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut kind = Kind::Ports(FlowProtocol::Tcp);
    for token in spec.split(',').map(str::trim) {
        let error = |reason| PortSpecError {
            spec: spec.to_string(),
            token: token.to_string(),
            reason,
        };
        let (name, value) = match token.split_once(':') {
            Some((name, value)) => (Some(name), Some(value)),
            None if token.starts_with(|c: char| c.is_ascii_digit()) => (None, Some(token)),
            None => (Some(token), None),
        };
        if let Some(name) = name {
            let name = name.to_ascii_lowercase();
            kind = match name.as_str() {
                "tcp" => Kind::Ports(FlowProtocol::Tcp),
                "udp" => Kind::Ports(FlowProtocol::Udp),
                "icmp" | "ping" if value.is_none() => Kind::Bare(FlowProtocol::Icmp),
                "icmpv6" | "icmp6" if value.is_none() => Kind::Bare(FlowProtocol::Icmp),
                "icmp" => Kind::Icmp { v6: false },
                "icmpv6" | "icmp6" => Kind::Icmp { v6: true },
                "all" => Kind::Bare(FlowProtocol::All),
                "proto" => Kind::Proto,
                "" => return Err(error("empty entry")),
                other => match IP_PROTOCOLS.iter().find(|(n, _)| *n == other) {
                    Some((_, number)) => Kind::Bare(FlowProtocol::Ip(*number)),
                    None => {
                        return Err(error(
                            "unknown protocol (tcp, udp, icmp, icmpv6, all, gre, esp, ah, proto:N)",
                        ));
                    }
                },
            };
        }
        let new: Vec<FlowSpec> = match (kind, value) {
            (Kind::Ports(protocol), Some(ports)) => port_range(ports)
                .ok_or_else(|| error("ports are a number 1-65535 or a range like 20-21"))?
                .map(|port| FlowSpec {
                    protocol,
                    port: Some(port),
                })
                .collect(),
            (Kind::Ports(_), None) => return Err(error("tcp and udp need a port, as tcp:22")),
            (Kind::Bare(_), Some(_)) => {
                return Err(error("all, gre, esp and ah take no port"));
            }
            (Kind::Bare(protocol), None) => vec![FlowSpec {
                protocol,
                port: None,
            }],
            (Kind::Icmp { v6 }, Some(value)) => {
                let message = icmp_message(value, v6)
                    .ok_or_else(|| error("an ICMP type 0-255 and optional code, as icmp:3/4"))?;
                vec![FlowSpec {
                    protocol: message,
                    port: None,
                }]
            }
            (Kind::Icmp { .. }, None) => unreachable!("a bare icmp is echo"),
            (Kind::Proto, value) => {
                let number: u8 = value
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| error("an IP protocol number 0-255, as proto:50"))?;
                if matches!(
                    number,
                    IPPROTO_TCP | IPPROTO_UDP | IPPROTO_ICMP | IPPROTO_ICMPV6
                ) {
                    return Err(error("name it: tcp:PORT, udp:PORT, icmp or icmpv6"));
                }
                vec![FlowSpec {
                    protocol: FlowProtocol::Ip(number),
                    port: None,
                }]
            }
        };
        specs.extend(new.into_iter().filter(|flow| seen.insert(*flow)));
    }
    Ok(specs)
}

/// `8`, `3/4`: an ICMP message; echo request (8, ICMPv6 128) with code 0 or any is `Icmp`.
fn icmp_message(text: &str, v6: bool) -> Option<FlowProtocol> {
    let (icmp_type, code) = match text.split_once('/') {
        Some((t, c)) => (t.trim().parse().ok()?, Some(c.trim().parse().ok()?)),
        None => (text.trim().parse().ok()?, None),
    };
    let echo = if v6 { 128 } else { 8 };
    Some(if icmp_type == echo && code.unwrap_or(0) == 0 {
        FlowProtocol::Icmp
    } else {
        FlowProtocol::IcmpMessage {
            v6,
            icmp_type,
            code,
        }
    })
}

fn port_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    PortRange::parse(text).map(|r| r.first..=r.last)
}

/// The other end of a flow: one address, or every address of the instance address's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowPeer {
    All,
    Addr(IpAddr),
}

impl FlowPeer {
    pub fn parse(text: &str) -> Option<Self> {
        if text.eq_ignore_ascii_case("all") {
            Some(FlowPeer::All)
        } else {
            text.trim().parse().ok().map(FlowPeer::Addr)
        }
    }
}

impl fmt::Display for FlowPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowPeer::All => f.write_str("all"),
            FlowPeer::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

impl Serialize for FlowPeer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A flow to check: one direction, protocol and port at one instance address, with a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    pub address: IpAddr,
    pub direction: Direction,
    pub spec: FlowSpec,
    pub peer: FlowPeer,
    /// The peer's own port (a client's source port) where a stateless layer's verdict on
    /// the reply depends on it; `None`: any port sgprobe's probes send from.
    pub peer_port: Option<u16>,
}

impl Flow {
    pub fn protocol_label(&self) -> &'static str {
        self.spec.protocol.label(self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(port: u16) -> FlowSpec {
        FlowSpec {
            protocol: FlowProtocol::Tcp,
            port: Some(port),
        }
    }

    #[test]
    fn bare_numbers_take_the_last_protocol_named() {
        let specs = parse_port_spec("tcp:22,80,udp:53,54,icmp").expect("valid");
        let udp = |port| FlowSpec {
            protocol: FlowProtocol::Udp,
            port: Some(port),
        };
        let icmp = FlowSpec {
            protocol: FlowProtocol::Icmp,
            port: None,
        };
        assert_eq!(specs, vec![tcp(22), tcp(80), udp(53), udp(54), icmp]);
    }

    #[test]
    fn ranges_expand_and_duplicates_go() {
        let specs = parse_port_spec("tcp:20-21,21,22").expect("valid");
        assert_eq!(specs, vec![tcp(20), tcp(21), tcp(22)]);
    }

    #[test]
    fn bare_numbers_before_any_protocol_are_tcp() {
        assert_eq!(parse_port_spec("443").expect("valid"), vec![tcp(443)]);
    }

    #[test]
    fn mistakes_are_named() {
        for (spec, token) in [
            ("tcp:0", "tcp:0"),
            ("tcp:70000", "tcp:70000"),
            ("tcp:30-20", "tcp:30-20"),
            ("sctp:1", "sctp:1"),
            ("tcp", "tcp"),
            ("icmp:256", "icmp:256"),
            ("icmp:3/x", "icmp:3/x"),
            ("gre:1", "gre:1"),
            ("proto:6", "proto:6"),
            ("proto:x", "proto:x"),
            ("tcp:22,,80", ""),
        ] {
            let err = parse_port_spec(spec).expect_err(spec);
            assert_eq!(err.token, token, "{spec}");
        }
    }

    #[test]
    fn icmp_messages_and_ip_protocols_are_flows_and_echo_stays_icmp() {
        let specs =
            parse_port_spec("icmp:3/4,icmp:3,icmpv6:1,icmp:8,icmpv6:128/0,gre,esp,proto:132")
                .expect("valid");
        let message = |v6, icmp_type, code| FlowSpec {
            protocol: FlowProtocol::IcmpMessage {
                v6,
                icmp_type,
                code,
            },
            port: None,
        };
        let echo = FlowSpec {
            protocol: FlowProtocol::Icmp,
            port: None,
        };
        let ip = |n| FlowSpec {
            protocol: FlowProtocol::Ip(n),
            port: None,
        };
        assert_eq!(
            specs,
            vec![
                message(false, 3, Some(4)),
                message(false, 3, None),
                message(true, 1, None),
                echo,
                ip(47),
                ip(50),
                ip(132)
            ]
        );
        let text: Vec<String> = specs.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "ICMP:3/4",
                "ICMP:3",
                "ICMPv6:1",
                "ICMP",
                "GRE",
                "ESP",
                "PROTO:132"
            ]
        );
        // Each spec reads back as itself.
        for spec in &specs {
            let again =
                parse_port_spec(&spec.to_string().to_ascii_lowercase()).expect("round trip");
            assert_eq!(again, vec![*spec]);
        }
    }
}
