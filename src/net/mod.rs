//! Sockets: raw TCP and ICMP sockets, UDP with the error queue, source lookup, privileges.

mod errqueue;
mod network;
mod raw;
mod sockets;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use thiserror::Error;

pub use errqueue::{IcmpReport, read_error};
pub use network::{Network, Packet, Reply};
pub use raw::{Family, kernel_drops, raw_icmp, raw_tcp, udp_socket};
pub use sockets::{Kind, Sockets};

/// A socket operation that failed, naming what it was for.
#[derive(Debug, Error)]
pub enum NetError {
    #[error(
        "cannot open a raw {what} socket: {error} (raw sockets need CAP_NET_RAW: run as root, or `setcap cap_net_raw+ep` on the binary)"
    )]
    Raw {
        what: &'static str,
        error: io::Error,
    },
    #[error("cannot {what} for UDP probes: {error}")]
    Udp {
        what: &'static str,
        error: io::Error,
    },
    #[error("no route to {addr}: {error}")]
    NoRoute { addr: IpAddr, error: io::Error },
}

/// The local address the kernel would send from to reach `remote`: a connected UDP socket's
/// name (connecting a UDP socket sends nothing).
pub fn source_for(remote: IpAddr) -> Result<IpAddr, NetError> {
    let unspecified: IpAddr = match remote {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let route = |source| NetError::NoRoute {
        addr: remote,
        error: source,
    };
    let socket = UdpSocket::bind(SocketAddr::new(unspecified, 0)).map_err(route)?;
    socket.connect(SocketAddr::new(remote, 9)).map_err(route)?;
    Ok(socket.local_addr().map_err(route)?.ip())
}

/// Whether this process may open raw sockets (CAP_NET_RAW).
pub fn has_raw_sockets() -> bool {
    raw_tcp(Family::V4).is_ok()
}

/// Whether this process may send ICMP echo requests of `family`: over a raw socket
/// (CAP_NET_RAW), or over an unprivileged ICMP socket, which Linux grants to the groups in
/// `net.ipv4.ping_group_range` (for IPv6 too); a new network namespace (a pod) grants none.
pub fn can_echo(family: Family) -> bool {
    let (domain, protocol) = match family {
        Family::V4 => (socket2::Domain::IPV4, socket2::Protocol::ICMPV4),
        Family::V6 => (socket2::Domain::IPV6, socket2::Protocol::ICMPV6),
    };
    [socket2::Type::RAW, socket2::Type::DGRAM]
        .into_iter()
        .any(|kind| socket2::Socket::new(domain, kind, Some(protocol)).is_ok())
}
