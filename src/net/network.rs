//! The seam between the engine's matchers and the wire: packets out, replies in. It lives
//! beside its real implementation (raw, UDP and ICMP sockets: `Sockets`), so the engine
//! depends on the network and never the other way; the engine's tests drive the matchers over
//! a fake one on tokio's paused clock (as trippy's `Network` trait does).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use crate::packet::icmp::Unreachable;
use crate::packet::tcp::TcpReply;

/// A probe packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// A TCP SYN from `local` with sequence number `seq`.
    Syn {
        local: SocketAddr,
        remote: SocketAddr,
        seq: u32,
    },
    /// An empty UDP datagram.
    Udp { remote: SocketAddr },
    /// An ICMP (or ICMPv6) echo request.
    Echo {
        remote: IpAddr,
        ident: u16,
        seq: u16,
    },
}

/// A reply, parsed: the network hands the matchers headers, never raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A TCP segment to one of our probe source ports.
    Tcp(TcpReply),
    /// An ICMP error quoting a probe: its quoted protocol says TCP (6), UDP (17) or an echo
    /// (1, 58; the quoted word is identifier and sequence).
    Unreachable(Unreachable),
    /// A UDP datagram from `from`, with the IP TTL or hop limit it came with.
    Udp { from: SocketAddr, ttl: Option<u8> },
    /// An echo reply.
    Echo { from: IpAddr, ident: u16, seq: u16 },
}

/// Where probes go out and replies come in.
pub trait Network {
    /// The local address probes to `remote` leave from (SYN cookies and checksums need it).
    fn source_for(&mut self, remote: IpAddr) -> io::Result<IpAddr>;

    /// Sends one packet. An error means it never left this host (no route, say).
    fn send(&mut self, packet: Packet) -> impl Future<Output = io::Result<()>>;

    /// Sends packets in order, in as few system calls as the network can: how many left this
    /// host, and, where that is fewer than all, why the next one did not. One `send` each
    /// unless the network knows better.
    fn send_all(&mut self, packets: &[Packet]) -> impl Future<Output = (usize, Option<io::Error>)> {
        async move {
            for (sent, packet) in packets.iter().enumerate() {
                if let Err(error) = self.send(*packet).await {
                    return (sent, Some(error));
                }
            }
            (packets.len(), None)
        }
    }

    /// The next reply and when it arrived, or `None` once `until` has passed without one.
    fn recv(&mut self, until: Instant) -> impl Future<Output = Option<(Reply, Instant)>>;
}
