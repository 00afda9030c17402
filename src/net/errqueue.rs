//! The socket error queue: which ICMP error a UDP probe drew. errno alone cannot tell
//! admin-prohibited from host-unreachable; the queued `sock_extended_err` can.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};

use crate::packet::icmp::IcmpKind;

/// An ICMP error the kernel queued for a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpReport {
    pub kind: IcmpKind,
    /// Who sent it.
    pub offender: Option<IpAddr>,
    /// Where the datagram that drew it was going: on an unconnected socket, the probe it
    /// answers.
    pub destination: Option<SocketAddr>,
    /// The error's own IP TTL or hop limit as received, where the socket asks for it
    /// (IP_RECVTTL): the kernel reads it from the error's outer header.
    pub ttl: Option<u8>,
}

const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;

/// Takes one queued error, if any (never blocks).
pub fn read_error(socket: &impl AsRawFd) -> io::Result<Option<IcmpReport>> {
    let mut data = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut data)];
    // Room for the TTL the socket asks to be told of each datagram (IP_RECVTTL), which the
    // kernel puts before the error (of the error itself): without it the error is cut off.
    let mut cmsg = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6, i32);
    let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
    let message =
        match recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
            Ok(message) => message,
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
    let destination = message.address.and_then(|a: SockaddrStorage| {
        a.as_sockaddr_in()
            .map(|v4| SocketAddr::from((v4.ip(), v4.port())))
            .or_else(|| {
                a.as_sockaddr_in6()
                    .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
            })
    });
    let controls: Vec<ControlMessageOwned> = message.cmsgs()?.collect();
    let ttl = controls.iter().cloned().find_map(super::sockets::ttl_of);
    for control in controls {
        let (error, offender, v6) = match control {
            ControlMessageOwned::Ipv4RecvErr(error, addr) => (
                error,
                addr.map(|a| IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes())),
                false,
            ),
            ControlMessageOwned::Ipv6RecvErr(error, addr) => {
                (error, addr.map(|a| IpAddr::from(a.sin6_addr.s6_addr)), true)
            }
            _ => continue,
        };
        if error.ee_origin == SO_EE_ORIGIN_ICMP || error.ee_origin == SO_EE_ORIGIN_ICMP6 {
            return Ok(Some(IcmpReport {
                kind: IcmpKind {
                    v6,
                    icmp_type: error.ee_type,
                    code: error.ee_code,
                },
                offender,
                destination,
                ttl,
            }));
        }
    }
    Ok(None)
}
