//! ICMP and ICMPv6 errors, and the header of our probe they quote.

use std::net::{IpAddr, Ipv6Addr};

use super::tcp::ipv4_header;

/// An ICMP or ICMPv6 message's type and code, and what they mean for a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpKind {
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
}

impl IcmpKind {
    /// Port unreachable: the host was reached and nothing listens (a UDP `closed`).
    pub fn is_port_unreachable(&self) -> bool {
        if self.v6 {
            (self.icmp_type, self.code) == (1, 4)
        } else {
            (self.icmp_type, self.code) == (3, 3)
        }
    }

    /// The codes that mean a filter stopped a TCP probe (ARCHITECTURE.md §3): v4 3/1,2,3,9,10,13; v6
    /// any destination-unreachable.
    pub fn filters_tcp(&self) -> bool {
        if self.v6 {
            self.icmp_type == DEST_UNREACHABLE_V6
        } else {
            self.icmp_type == DEST_UNREACHABLE_V4 && matches!(self.code, 1 | 2 | 3 | 9 | 10 | 13)
        }
    }

    /// `icmp 3/13`, `icmpv6 1/4`: for evidence strings.
    pub fn label(&self) -> String {
        format!(
            "icmp{} {}/{}",
            if self.v6 { "v6" } else { "" },
            self.icmp_type,
            self.code
        )
    }
}

/// An ICMP destination-unreachable error and the probe it quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable {
    /// Who sent the error (the target, or a router on the way).
    pub from: IpAddr,
    pub kind: IcmpKind,
    pub quoted: Quoted,
    /// The error's IP TTL or hop limit as received, where the socket gives it (raw ICMP
    /// sockets; not the UDP error queue).
    pub ttl: Option<u8>,
}

/// The start of our probe as the error quotes it: only the first 8 bytes of the transport
/// header are guaranteed (RFC 792), so ports and, for TCP, the sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// The TCP sequence number (bytes 4-7); for UDP, length and checksum.
    pub word: u32,
}

const DEST_UNREACHABLE_V4: u8 = 3;
const DEST_UNREACHABLE_V6: u8 = 1;

/// An IPv4 packet as a raw ICMP socket delivers it: IP header, ICMP header, quoted IP header,
/// quoted transport bytes.
pub fn parse_v4(buf: &[u8]) -> Option<Unreachable> {
    let (outer_len, protocol, from, _) = ipv4_header(buf)?;
    let icmp = buf.get(outer_len..)?;
    if protocol != 1 || *icmp.first()? != DEST_UNREACHABLE_V4 {
        return None;
    }
    let code = *icmp.get(1)?;
    let inner = icmp.get(8..)?;
    let (inner_len, inner_protocol, src, dst) = ipv4_header(inner)?;
    let quoted = quoted(
        inner_protocol,
        src,
        dst,
        inner.get(inner_len..inner_len + 8)?,
    );
    Some(Unreachable {
        from,
        kind: IcmpKind {
            v6: false,
            icmp_type: DEST_UNREACHABLE_V4,
            code,
        },
        quoted,
        ttl: buf.get(8).copied(),
    })
}

/// An ICMPv6 raw socket delivers the ICMPv6 message alone; the sender and the hop limit come
/// beside it (`recvmsg`). Quoted packets with extension headers are not ours (we send none)
/// and are refused.
pub fn parse_v6(buf: &[u8], from: IpAddr, hop_limit: Option<u8>) -> Option<Unreachable> {
    if *buf.first()? != DEST_UNREACHABLE_V6 {
        return None;
    }
    let code = *buf.get(1)?;
    let inner = buf.get(8..)?;
    if inner.first()? >> 4 != 6 {
        return None;
    }
    let addr = |at: usize| -> Option<IpAddr> {
        let octets: [u8; 16] = inner.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(octets)))
    };
    let quoted = quoted(*inner.get(6)?, addr(8)?, addr(24)?, inner.get(40..48)?);
    Some(Unreachable {
        from,
        ttl: hop_limit,
        kind: IcmpKind {
            v6: true,
            icmp_type: DEST_UNREACHABLE_V6,
            code,
        },
        quoted,
    })
}

fn quoted(protocol: u8, src: IpAddr, dst: IpAddr, transport: &[u8]) -> Quoted {
    let u16_at = |at: usize| u16::from_be_bytes([transport[at], transport[at + 1]]);
    Quoted {
        protocol,
        src,
        dst,
        src_port: u16_at(0),
        dst_port: u16_at(2),
        word: u32::from_be_bytes([transport[4], transport[5], transport[6], transport[7]]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_header(protocol: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip
    }

    #[test]
    fn an_admin_prohibited_error_yields_the_quoted_tcp_probe() {
        let mut packet = v4_header(1, [10, 77, 1, 5], [10, 77, 0, 1]);
        packet.extend_from_slice(&[3, 13, 0, 0, 0, 0, 0, 0]);
        packet.extend_from_slice(&v4_header(6, [10, 77, 0, 1], [10, 77, 1, 5]));
        packet.extend_from_slice(&[0xee, 0x49, 0, 22, 0xde, 0xad, 0xbe, 0xef]);
        let error = parse_v4(&packet).expect("parses");
        assert_eq!(error.kind.code, 13);
        assert!(error.kind.filters_tcp() && !error.kind.is_port_unreachable());
        assert_eq!(
            (
                error.quoted.src_port,
                error.quoted.dst_port,
                error.quoted.word
            ),
            (61001, 22, 0xdead_beef)
        );
        assert_eq!(
            error.quoted.dst,
            "10.77.1.5".parse::<IpAddr>().expect("addr")
        );
        assert_eq!(error.kind.label(), "icmp 3/13");
        // Cut anywhere, it is refused, never a panic.
        for len in 0..packet.len() {
            assert_eq!(parse_v4(&packet[..len]), None, "cut at {len}");
        }
    }

    #[test]
    fn an_icmpv6_port_unreachable_quotes_the_udp_probe() {
        let mut packet = vec![1, 4, 0, 0, 0, 0, 0, 0];
        let mut inner = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        inner.extend_from_slice(&"fd77::1".parse::<Ipv6Addr>().expect("v6").octets());
        inner.extend_from_slice(&"fd77:1::5".parse::<Ipv6Addr>().expect("v6").octets());
        inner.extend_from_slice(&[0xee, 0x49, 0, 53, 0, 8, 0, 0]);
        packet.extend_from_slice(&inner);
        let error = parse_v6(&packet, "fd77:1::5".parse().expect("v6"), Some(63)).expect("parses");
        assert!(error.kind.v6 && error.kind.is_port_unreachable() && error.kind.filters_tcp());
        assert_eq!(error.ttl, Some(63), "the hop limit it arrived with");
        assert_eq!((error.quoted.protocol, error.quoted.dst_port), (17, 53));
        for len in 0..packet.len() {
            assert_eq!(
                parse_v6(&packet[..len], error.from, None),
                None,
                "cut at {len}"
            );
        }
    }
}
