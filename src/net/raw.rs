//! Raw sockets for SYN probing and ICMP errors, wrapped for tokio.

use std::net::SocketAddr;

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};
use tokio::net::UdpSocket;

use super::NetError;
use crate::model::catalog::PROBE_SOURCE_PORTS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4 = 0,
    V6 = 1,
}

impl Family {
    pub fn of(addr: std::net::IpAddr) -> Self {
        if addr.is_ipv6() {
            Family::V6
        } else {
            Family::V4
        }
    }

    fn domain(self) -> Domain {
        match self {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        }
    }
}

/// Replies arrive in bursts far larger than the default ~208 KiB buffer holds (measured: ~256
/// of 20,000 replies survived); as root the limit can be forced past rmem_max.
const RECEIVE_BUFFER: usize = 32 << 20;

// Classic BPF opcodes (linux/filter.h).
const LDX_B_MSH: u16 = 0xb1; // X = 4 * (pkt[k] & 0xf)
const LD_H_IND: u16 = 0x48; // A = u16 at X + k
const LD_H_ABS: u16 = 0x28; // A = u16 at k
const LD_B_IND: u16 = 0x50; // A = u8 at X + k
const LD_B_ABS: u16 = 0x30; // A = u8 at k
const JGE_K: u16 = 0x35;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const ACCEPT: SockFilter = SockFilter::new(RET_K, 0, 0, u32::MAX);
const REJECT: SockFilter = SockFilter::new(RET_K, 0, 0, 0);

/// A raw TCP socket that sees only TCP segments to our probe source ports: everything else
/// the host receives is dropped in the kernel, not copied to us.
pub fn raw_tcp(family: Family) -> Result<UdpSocket, NetError> {
    let socket = open(family, Protocol::TCP, "TCP")?;
    let first = u32::from(PROBE_SOURCE_PORTS.first);
    let filter = match family {
        // IPv4 raw sockets see the IP header: skip it to the destination port.
        Family::V4 => vec![
            SockFilter::new(LDX_B_MSH, 0, 0, 0),
            SockFilter::new(LD_H_IND, 0, 0, 2),
            SockFilter::new(JGE_K, 0, 1, first),
            ACCEPT,
            REJECT,
        ],
        // IPv6 raw sockets start at the TCP header.
        Family::V6 => vec![
            SockFilter::new(LD_H_ABS, 0, 0, 2),
            SockFilter::new(JGE_K, 0, 1, first),
            ACCEPT,
            REJECT,
        ],
    };
    socket
        .attach_filter(&filter)
        .map_err(|source| NetError::Raw {
            what: "TCP (filter)",
            error: source,
        })?;
    wrap(socket, "TCP")
}

/// A raw ICMP (or ICMPv6) socket that sees only destination-unreachable errors.
pub fn raw_icmp(family: Family) -> Result<UdpSocket, NetError> {
    let (protocol, filter) = match family {
        Family::V4 => (
            Protocol::ICMPV4,
            vec![
                SockFilter::new(LDX_B_MSH, 0, 0, 0),
                SockFilter::new(LD_B_IND, 0, 0, 0),
                SockFilter::new(JEQ_K, 0, 1, 3),
                ACCEPT,
                REJECT,
            ],
        ),
        Family::V6 => (
            Protocol::ICMPV6,
            vec![
                SockFilter::new(LD_B_ABS, 0, 0, 0),
                SockFilter::new(JEQ_K, 0, 1, 1),
                ACCEPT,
                REJECT,
            ],
        ),
    };
    let socket = open(family, protocol, "ICMP")?;
    socket
        .attach_filter(&filter)
        .map_err(|source| NetError::Raw {
            what: "ICMP (filter)",
            error: source,
        })?;
    wrap(socket, "ICMP")
}

fn open(family: Family, protocol: Protocol, what: &'static str) -> Result<Socket, NetError> {
    let socket = Socket::new(family.domain(), Type::RAW, Some(protocol))
        .map_err(|error| NetError::Raw { what, error })?;
    // An IPv6 raw socket delivers no IP header: the hop limit, which tells whose reply it
    // is (`cause`), comes beside each packet instead (`try_recv_with_ttl`).
    if family == Family::V6 {
        socket
            .set_recv_hoplimit_v6(true)
            .map_err(|error| NetError::Raw { what, error })?;
    }
    // Best effort: forcing needs CAP_NET_ADMIN; the plain request is capped at rmem_max.
    if setsockopt(&socket, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
        let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    }
    Ok(socket)
}

/// A raw socket behaves as a datagram socket for send_to/recv_from, which tokio's UdpSocket
/// drives with epoll readiness.
fn wrap(socket: Socket, what: &'static str) -> Result<UdpSocket, NetError> {
    socket
        .set_nonblocking(true)
        .map_err(|error| NetError::Raw { what, error })?;
    UdpSocket::from_std(socket.into()).map_err(|error| NetError::Raw { what, error })
}

/// One unconnected UDP socket for every probe of a family, with ICMP errors queued for
/// `read_error` (which names the destination each error is for).
pub fn udp_socket(family: Family) -> Result<UdpSocket, NetError> {
    let fail = |what| move |error| NetError::Udp { what, error };
    let socket = Socket::new(family.domain(), Type::DGRAM, Some(Protocol::UDP))
        .map_err(fail("open a UDP socket"))?;
    match family {
        Family::V4 => setsockopt(&socket, sockopt::Ipv4RecvErr, &true),
        Family::V6 => setsockopt(&socket, sockopt::Ipv6RecvErr, &true),
    }
    .map_err(|e| fail("enable IP_RECVERR")(e.into()))?;
    // Each reply's TTL comes beside it: whose answer it is (`cause`).
    match family {
        Family::V4 => setsockopt(&socket, sockopt::Ipv4RecvTtl, &true),
        Family::V6 => setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true),
    }
    .map_err(|e| fail("enable IP_RECVTTL")(e.into()))?;
    if setsockopt(&socket, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
        let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    }
    let any: std::net::IpAddr = match family {
        Family::V4 => std::net::Ipv4Addr::UNSPECIFIED.into(),
        Family::V6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    socket
        .bind(&SocketAddr::new(any, 0).into())
        .map_err(fail("bind"))?;
    socket
        .set_nonblocking(true)
        .map_err(fail("set non-blocking"))?;
    UdpSocket::from_std(socket.into()).map_err(fail("register"))
}

/// Packets the kernel dropped for a raw socket because its receive buffer was full: the
/// `drops` column of /proc/net/raw (or raw6), found by the socket's inode. `None` if unknown.
pub fn kernel_drops(socket: &impl std::os::fd::AsFd, family: Family) -> Option<u64> {
    let inode = nix::sys::stat::fstat(socket).ok()?.st_ino;
    let table = std::fs::read_to_string(match family {
        // thread-self: this thread may have entered another network namespace than the main one.
        Family::V4 => "/proc/thread-self/net/raw",
        Family::V6 => "/proc/thread-self/net/raw6",
    })
    .ok()?;
    parse_drops(&table, inode)
}

fn parse_drops(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        (fields.get(9)?.parse::<u64>().ok()? == inode)
            .then(|| fields.last()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_read_from_the_line_of_our_inode() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  6: 00000000:0006 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0\n\
  6: 00000000:0006 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4343 2 0000000000000000 17\n";
        assert_eq!(parse_drops(table, 4343), Some(17));
        assert_eq!(parse_drops(table, 4242), Some(0));
        assert_eq!(parse_drops(table, 1), None);
    }
}
