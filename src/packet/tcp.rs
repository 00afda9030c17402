//! TCP: the SYN we send and the replies we read.

use std::net::{IpAddr, SocketAddr};

use pnet_packet::tcp::{MutableTcpPacket, TcpFlags, TcpPacket, ipv4_checksum, ipv6_checksum};

/// A SYN with an MSS option, as every real stack sends: some middleboxes drop bare SYNs.
pub const SYN_LEN: usize = 24;
const MSS_OPTION: [u8; 4] = [2, 4, 0x05, 0xb4];

/// The TCP header of a SYN from `local` to `remote`, checksum included. (For IPv6 we do not
/// ask the kernel to fill it with `IPV6_CHECKSUM`: that option also makes it verify received
/// checksums, and veth delivers replies with partial ones, which it would then drop.)
pub fn build_syn(local: SocketAddr, remote: SocketAddr, seq: u32) -> [u8; SYN_LEN] {
    let mut buf = [0u8; SYN_LEN];
    buf[20..].copy_from_slice(&MSS_OPTION);
    let mut tcp = MutableTcpPacket::new(&mut buf).expect("SYN_LEN holds a TCP header");
    tcp.set_source(local.port());
    tcp.set_destination(remote.port());
    tcp.set_sequence(seq);
    tcp.set_data_offset((SYN_LEN / 4) as u8);
    tcp.set_flags(TcpFlags::SYN);
    tcp.set_window(64240);
    let checksum = match (local.ip(), remote.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => ipv4_checksum(&tcp.to_immutable(), &src, &dst),
        (IpAddr::V6(src), IpAddr::V6(dst)) => ipv6_checksum(&tcp.to_immutable(), &src, &dst),
        _ => 0,
    };
    tcp.set_checksum(checksum);
    buf
}

/// What a TCP reply says, enough to match it to a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpReply {
    /// The probed end: the reply's source.
    pub remote: SocketAddr,
    /// Our end: the reply's destination port (and address, where the packet carries it).
    pub local_port: u16,
    pub local_ip: Option<IpAddr>,
    pub ack: u32,
    pub syn: bool,
    pub ack_flag: bool,
    pub rst: bool,
    /// The IP TTL or IPv6 hop limit as received: how far the sender is, for telling the
    /// instance's own answers from another box's.
    pub ttl: Option<u8>,
}

/// An IPv4 packet as a raw TCP socket delivers it: IP header, then TCP.
pub fn parse_v4(buf: &[u8]) -> Option<TcpReply> {
    let (header_len, protocol, src, dst) = ipv4_header(buf)?;
    if protocol != 6 {
        return None;
    }
    parse_tcp(buf.get(header_len..)?, src, Some(dst), buf.get(8).copied())
}

/// An IPv6 raw TCP socket delivers the TCP header alone; the source and the hop limit come
/// beside it (`recvmsg`).
pub fn parse_v6(buf: &[u8], from: IpAddr, hop_limit: Option<u8>) -> Option<TcpReply> {
    parse_tcp(buf, from, None, hop_limit)
}

/// Only fixed header fields are read: never the options of an untrusted packet (libpnet #221).
fn parse_tcp(buf: &[u8], src: IpAddr, dst: Option<IpAddr>, ttl: Option<u8>) -> Option<TcpReply> {
    let tcp = TcpPacket::new(buf)?;
    let flags = tcp.get_flags();
    Some(TcpReply {
        remote: SocketAddr::new(src, tcp.get_source()),
        local_port: tcp.get_destination(),
        local_ip: dst,
        ack: tcp.get_acknowledgement(),
        syn: flags & TcpFlags::SYN != 0,
        ack_flag: flags & TcpFlags::ACK != 0,
        rst: flags & TcpFlags::RST != 0,
        ttl,
    })
}

/// Header length, protocol, source and destination of an IPv4 header, checked against the
/// buffer.
pub(crate) fn ipv4_header(buf: &[u8]) -> Option<(usize, u8, IpAddr, IpAddr)> {
    let first = *buf.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 || buf.len() < header_len {
        return None;
    }
    let addr = |at: usize| -> Option<IpAddr> {
        let octets: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        Some(IpAddr::from(octets))
    };
    Some((header_len, buf[9], addr(12)?, addr(16)?))
}

#[cfg(test)]
mod tests {
    use pnet_packet::Packet;

    use super::*;

    fn ipv4_packet(src: [u8; 4], dst: [u8; 4], tcp: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(tcp);
        ip
    }

    #[test]
    fn a_syn_parses_back_and_its_v4_checksum_verifies() {
        let (local, remote): (SocketAddr, SocketAddr) = (
            "10.77.0.1:61001".parse().expect("l"),
            "10.77.1.5:22".parse().expect("r"),
        );
        let syn = build_syn(local, remote, 0xdead_beef);
        let tcp = TcpPacket::new(&syn).expect("header");
        assert_eq!(
            (tcp.get_source(), tcp.get_destination(), tcp.get_sequence()),
            (61001, 22, 0xdead_beef)
        );
        assert_eq!(tcp.get_flags(), TcpFlags::SYN);
        assert_eq!(
            tcp.payload(),
            b"",
            "options are inside the header, no payload"
        );
        let (IpAddr::V4(s), IpAddr::V4(d)) = (local.ip(), remote.ip()) else {
            unreachable!()
        };
        assert_eq!(tcp.get_checksum(), ipv4_checksum(&tcp, &s, &d));
        assert_ne!(tcp.get_checksum(), 0);
        // A reply travelling the other way parses with the roles swapped.
        let reply = parse_v4(&ipv4_packet([10, 77, 1, 5], [10, 77, 0, 1], &syn)).expect("parses");
        assert_eq!(
            reply.remote,
            "10.77.1.5:61001".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(reply.local_port, 22);
        assert!(reply.syn && !reply.rst && !reply.ack_flag);
        assert_eq!(reply.ttl, Some(64), "the TTL the IP header carries");
    }

    #[test]
    fn short_or_foreign_packets_are_refused() {
        assert_eq!(parse_v4(&[]), None);
        assert_eq!(parse_v4(&[0x4f; 30]), None, "IHL says 60 bytes, 30 given");
        assert_eq!(
            parse_v4(&ipv4_packet([1, 1, 1, 1], [2, 2, 2, 2], &[0; 10])),
            None,
            "TCP header cut short"
        );
        let mut udp = ipv4_packet([1, 1, 1, 1], [2, 2, 2, 2], &[0; 20]);
        udp[9] = 17;
        assert_eq!(parse_v4(&udp), None);
        assert_eq!(
            parse_v6(&[0; 19], "::1".parse().expect("v6"), Some(64)),
            None
        );
    }
}
