//! The real network under the engine's matchers: raw TCP sockets for SYNs and their replies,
//! raw ICMP sockets for the errors SYNs draw, one unconnected UDP socket per family whose
//! error queue (IP_RECVERR) says which ICMP error a datagram drew and for which destination,
//! and surge-ping for echoes. One receive task per socket feeds one channel.

use std::io::{self, ErrorKind, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmsg, sendmmsg,
};
use pnet_packet::icmp::IcmpTypes;
use pnet_packet::icmpv6::Icmpv6Types;
use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::network::{Network, Packet, Reply};
use super::{Family, NetError, kernel_drops, raw_icmp, raw_tcp, read_error, udp_socket};
use crate::packet::icmp::{self, IcmpKind, Quoted, Unreachable};
use crate::packet::tcp::{self, build_syn};

/// What a run will send, so only the sockets it needs are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Syn,
    Udp,
    Echo,
}

type Inbox = mpsc::UnboundedSender<(Reply, Instant)>;

/// Most replies a receive task reads before it lets other tasks run.
const READ_BURST: usize = 4096;

/// Sockets per family (v4, v6).
struct PerFamily<T>([Option<T>; 2]);

impl<T> Default for PerFamily<T> {
    fn default() -> Self {
        PerFamily([None, None])
    }
}

impl<T> PerFamily<T> {
    fn get(&self, family: Family) -> Option<&T> {
        self.0[family as usize].as_ref()
    }

    fn has(&self, family: Family) -> bool {
        self.get(family).is_some()
    }

    fn set(&mut self, family: Family, value: T) {
        self.0[family as usize] = Some(value);
    }
}

pub struct Sockets {
    syn: PerFamily<Arc<UdpSocket>>,
    udp: PerFamily<Arc<UdpSocket>>,
    /// In an `Arc`: dropping any clone of a surge-ping `Client` shuts its replies off.
    echo: PerFamily<Arc<Client>>,
    /// How long an echo waits for its reply in surge-ping: the engine's ceiling.
    echo_timeout: Duration,
    inbox: Inbox,
    replies: mpsc::UnboundedReceiver<(Reply, Instant)>,
    receivers: JoinSet<()>,
    echoes: JoinSet<()>,
}

impl std::fmt::Debug for Sockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sockets").finish_non_exhaustive()
    }
}

impl Sockets {
    /// Opens the sockets `needs` asks for (and starts their receive tasks).
    pub fn open(
        needs: impl IntoIterator<Item = (Kind, Family)>,
        echo_timeout: Duration,
    ) -> Result<Self, NetError> {
        let (inbox, replies) = mpsc::unbounded_channel();
        let mut sockets = Sockets {
            syn: PerFamily::default(),
            udp: PerFamily::default(),
            echo: PerFamily::default(),
            echo_timeout,
            inbox,
            replies,
            receivers: JoinSet::new(),
            echoes: JoinSet::new(),
        };
        for (kind, family) in needs {
            match kind {
                Kind::Syn if !sockets.syn.has(family) => {
                    let tcp = Arc::new(raw_tcp(family)?);
                    let errors = raw_icmp(family)?;
                    let inbox = sockets.inbox.clone();
                    sockets
                        .receivers
                        .spawn(receive_tcp(tcp.clone(), family, inbox));
                    let inbox = sockets.inbox.clone();
                    sockets
                        .receivers
                        .spawn(receive_tcp_errors(errors, family, inbox));
                    sockets.syn.set(family, tcp);
                }
                Kind::Udp if !sockets.udp.has(family) => {
                    let udp = Arc::new(udp_socket(family)?);
                    let inbox = sockets.inbox.clone();
                    sockets.receivers.spawn(receive_udp(udp.clone(), inbox));
                    sockets.udp.set(family, udp);
                }
                Kind::Echo if !sockets.echo.has(family) => {
                    let icmp = match family {
                        Family::V4 => ICMP::V4,
                        Family::V6 => ICMP::V6,
                    };
                    // Raw where permitted, else an unprivileged ICMP socket.
                    let config = Config::builder()
                        .kind(icmp)
                        .sock_type_hint(socket2::Type::RAW)
                        .build();
                    let client = Client::new(&config).map_err(|source| NetError::Raw {
                        what: "ICMP echo",
                        error: source,
                    })?;
                    sockets.echo.set(family, Arc::new(client));
                }
                _ => {}
            }
        }
        Ok(sockets)
    }

    /// Replies the kernel dropped because a raw socket's receive buffer was full.
    pub fn kernel_drops(&self) -> u64 {
        [Family::V4, Family::V6]
            .into_iter()
            .filter_map(|f| kernel_drops(self.syn.get(f)?, f))
            .sum()
    }

    /// SYNs of one family in one `sendmmsg` call: at 100,000 probes a second, a system call
    /// per packet is what caps the rate. Returns how many the kernel took (at least one).
    async fn send_syns(&self, syns: &[Packet]) -> io::Result<usize> {
        let mut frames = Vec::with_capacity(syns.len());
        let mut addresses = Vec::with_capacity(syns.len());
        for packet in syns {
            let Packet::Syn { local, remote, seq } = *packet else {
                unreachable!("syn_run counts SYNs only");
            };
            frames.push(build_syn(local, remote, seq));
            // Port 0: IPv6 raw sockets refuse any port but 0 or their protocol.
            addresses.push(Some(SockaddrStorage::from(SocketAddr::new(remote.ip(), 0))));
        }
        let Some(Packet::Syn { remote, .. }) = syns.first() else {
            return Ok(0);
        };
        let socket = self
            .syn
            .get(Family::of(remote.ip()))
            .ok_or_else(|| Self::missing("raw TCP"))?;
        let slices: Vec<[IoSlice; 1]> = frames.iter().map(|f| [IoSlice::new(f)]).collect();
        socket
            .async_io(Interest::WRITABLE, || {
                let mut headers = MultiHeaders::preallocate(slices.len(), None);
                let none: [ControlMessage; 0] = [];
                let sent = sendmmsg(
                    socket.as_raw_fd(),
                    &mut headers,
                    &slices,
                    &addresses,
                    none,
                    MsgFlags::empty(),
                )?;
                Ok(sent.count())
            })
            .await
    }

    fn missing(what: &str) -> io::Error {
        io::Error::new(
            ErrorKind::NotConnected,
            format!("no {what} socket was opened"),
        )
    }
}

impl Network for Sockets {
    fn source_for(&mut self, remote: IpAddr) -> io::Result<IpAddr> {
        super::source_for(remote).map_err(|e| match e {
            NetError::NoRoute { error, .. } => error,
            other => io::Error::other(other.to_string()),
        })
    }

    async fn send(&mut self, packet: Packet) -> io::Result<()> {
        match packet {
            Packet::Syn { local, remote, seq } => {
                let socket = self
                    .syn
                    .get(Family::of(remote.ip()))
                    .ok_or_else(|| Self::missing("raw TCP"))?;
                let syn = build_syn(local, remote, seq);
                // Port 0: IPv6 raw sockets refuse any port but 0 or their protocol.
                socket
                    .send_to(&syn, SocketAddr::new(remote.ip(), 0))
                    .await?;
            }
            Packet::Udp { remote } => {
                let socket = self
                    .udp
                    .get(Family::of(remote.ip()))
                    .ok_or_else(|| Self::missing("UDP"))?;
                // An ICMP error an earlier probe drew is also reported (and cleared) by the
                // next send on the socket: that send failed for another probe's reason, so
                // it is tried again. An error of its own repeats.
                let mut tries = 0;
                while let Err(error) = socket.send_to(&[], remote).await {
                    tries += 1;
                    if tries == 3 {
                        return Err(error);
                    }
                }
            }
            Packet::Echo { remote, ident, seq } => {
                let client = self
                    .echo
                    .get(Family::of(remote))
                    .ok_or_else(|| Self::missing("ICMP echo"))?
                    .clone();
                while self.echoes.try_join_next().is_some() {}
                let (inbox, timeout) = (self.inbox.clone(), self.echo_timeout);
                // surge-ping sends and waits in one call: the wait runs on its own task, and
                // the matcher, not surge-ping, decides when silence means filtered.
                self.echoes.spawn(async move {
                    let mut pinger = client.pinger(remote, PingIdentifier(ident)).await;
                    pinger.timeout(timeout);
                    if let Ok((packet, _)) = pinger.ping(PingSequence(seq), &[0; 16]).await {
                        let reply = echo_reply(&packet, remote, ident, seq);
                        let _ = inbox.send((reply, Instant::now()));
                    }
                });
            }
        }
        Ok(())
    }

    async fn send_all(&mut self, packets: &[Packet]) -> (usize, Option<io::Error>) {
        let mut done = 0;
        while done < packets.len() {
            let rest = &packets[done..];
            let syns = syn_run(rest);
            let result = if syns > 1 {
                self.send_syns(&rest[..syns]).await
            } else {
                self.send(rest[0]).await.map(|()| 1)
            };
            match result {
                Ok(sent) => done += sent,
                Err(error) => return (done, Some(error)),
            }
        }
        (done, None)
    }

    async fn recv(&mut self, until: Instant) -> Option<(Reply, Instant)> {
        // What is already here is taken without arming a timer: this is the hot path.
        if let Ok(reply) = self.replies.try_recv() {
            return Some(reply);
        }
        if until <= Instant::now() {
            return None;
        }
        tokio::select! {
            biased;
            reply = self.replies.recv() => reply,
            () = tokio::time::sleep_until(until) => None,
        }
    }
}

/// An echo's answer as a reply: surge-ping also returns the errors that quote our request.
fn echo_reply(packet: &IcmpPacket, remote: IpAddr, ident: u16, seq: u16) -> Reply {
    let (kind, from, protocol, unspecified): (IcmpKind, IpAddr, u8, IpAddr) = match packet {
        IcmpPacket::V4(p) if p.get_icmp_type() == IcmpTypes::EchoReply => {
            return Reply::Echo {
                from: remote,
                ident,
                seq,
            };
        }
        IcmpPacket::V6(p) if p.get_icmpv6_type() == Icmpv6Types::EchoReply => {
            return Reply::Echo {
                from: remote,
                ident,
                seq,
            };
        }
        IcmpPacket::V4(p) => (
            IcmpKind {
                v6: false,
                icmp_type: p.get_icmp_type().0,
                code: p.get_icmp_code().0,
            },
            p.get_source().into(),
            1,
            Ipv4Addr::UNSPECIFIED.into(),
        ),
        IcmpPacket::V6(p) => (
            IcmpKind {
                v6: true,
                icmp_type: p.get_icmpv6_type().0,
                code: p.get_icmpv6_code().0,
            },
            p.get_source().into(),
            58,
            Ipv6Addr::UNSPECIFIED.into(),
        ),
    };
    Reply::Unreachable(Unreachable {
        from,
        ttl: None,
        kind,
        quoted: Quoted {
            protocol,
            src: unspecified,
            dst: remote,
            src_port: 0,
            dst_port: 0,
            word: (u32::from(ident) << 16) | u32::from(seq),
        },
    })
}

/// How many packets at the front are SYNs of one family: what one `sendmmsg` can carry.
fn syn_run(packets: &[Packet]) -> usize {
    let family = |p: &Packet| match p {
        Packet::Syn { remote, .. } => Some(Family::of(remote.ip())),
        _ => None,
    };
    match packets.first().and_then(family) {
        Some(first) => packets
            .iter()
            .take_while(|p| family(p) == Some(first))
            .count(),
        None => 0,
    }
}

/// One packet from a raw socket, if one is queued: its length, its sender, and for IPv6
/// the hop limit it came with (IPv4 packets carry their TTL in the header they come with).
fn try_recv_raw(
    socket: &UdpSocket,
    family: Family,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    match family {
        Family::V4 => socket.try_recv_from(buf).map(|(n, from)| (n, from, None)),
        Family::V6 => try_recv_with_ttl(socket, buf),
    }
}

/// One datagram, if one is queued, with the IP TTL or hop limit it arrived with, where the
/// socket asked for it (IP_RECVTTL, IPV6_RECVHOPLIMIT): how far its sender is (`cause`).
fn try_recv_with_ttl(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<u8>)> {
    socket.try_io(Interest::READABLE, || {
        let mut iov = [IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!(i32);
        let message = recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT,
        )?;
        let from = message
            .address
            .and_then(|a| match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Some(v4), _) => Some(SocketAddr::from(*v4)),
                (_, Some(v6)) => Some(SocketAddr::from(*v6)),
                _ => None,
            })
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, "no IP sender"))?;
        // A control message cut short costs the TTL, never the reply.
        let ttl = message
            .cmsgs()
            .ok()
            .and_then(|mut cmsgs| cmsgs.find_map(ttl_of));
        Ok((message.bytes, from, ttl))
    })
}

/// The IP TTL or hop limit a control message carries, if it is one.
pub(super) fn ttl_of(control: ControlMessageOwned) -> Option<u8> {
    match control {
        ControlMessageOwned::Ipv4Ttl(ttl) | ControlMessageOwned::Ipv6HopLimit(ttl) => {
            u8::try_from(ttl).ok()
        }
        _ => None,
    }
}

async fn receive_tcp(socket: Arc<UdpSocket>, family: Family, inbox: Inbox) {
    let mut buf = vec![0u8; 4096];
    // Everything queued is read at each wake-up, not one datagram per poll: at 100,000
    // replies a second one per poll lets the backlog grow until replies still waiting in the
    // kernel are taken for silence. Bounded, so other tasks still run under a flood.
    while socket.readable().await.is_ok() {
        for _ in 0..READ_BURST {
            let (n, from, hop_limit) = match try_recv_raw(&socket, family, &mut buf) {
                Ok(read) => read,
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                // One packet that cannot be read is skipped, not the socket.
                Err(error) if error.kind() == ErrorKind::InvalidData => continue,
                Err(_) => return,
            };
            let reply = match family {
                Family::V4 => tcp::parse_v4(&buf[..n]),
                Family::V6 => tcp::parse_v6(&buf[..n], from.ip(), hop_limit),
            };
            if let Some(reply) = reply
                && inbox.send((Reply::Tcp(reply), Instant::now())).is_err()
            {
                return;
            }
        }
        tokio::task::yield_now().await;
    }
}

/// ICMP errors quoting TCP: UDP's arrive on the UDP socket's error queue instead.
async fn receive_tcp_errors(socket: UdpSocket, family: Family, inbox: Inbox) {
    let mut buf = vec![0u8; 4096];
    while socket.readable().await.is_ok() {
        let (n, from, hop_limit) = match try_recv_raw(&socket, family, &mut buf) {
            Ok(read) => read,
            Err(error)
                if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::InvalidData) =>
            {
                continue;
            }
            Err(_) => return,
        };
        let error = match family {
            Family::V4 => icmp::parse_v4(&buf[..n]),
            Family::V6 => icmp::parse_v6(&buf[..n], from.ip(), hop_limit),
        };
        if let Some(error) = error.filter(|e| e.quoted.protocol == 6)
            && inbox
                .send((Reply::Unreachable(error), Instant::now()))
                .is_err()
        {
            return;
        }
    }
}

/// Datagrams and queued ICMP errors of the UDP socket.
async fn receive_udp(socket: Arc<UdpSocket>, inbox: Inbox) {
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok(ready) = socket.ready(Interest::READABLE | Interest::ERROR).await else {
            return;
        };
        let mut replies = Vec::new();
        while let Ok(report) = socket.try_io(Interest::ERROR, || {
            read_error(&*socket)?.ok_or_else(|| ErrorKind::WouldBlock.into())
        }) {
            let (Some(destination), Some(from)) = (report.destination, report.offender) else {
                continue;
            };
            replies.push(Reply::Unreachable(Unreachable {
                from,
                ttl: report.ttl,
                kind: report.kind,
                quoted: Quoted {
                    protocol: 17,
                    src: from,
                    dst: destination.ip(),
                    src_port: 0,
                    dst_port: destination.port(),
                    word: 0,
                },
            }));
        }
        if ready.is_readable() {
            loop {
                match try_recv_with_ttl(&socket, &mut buf) {
                    Ok((_, from, ttl)) => replies.push(Reply::Udp { from, ttl }),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // A pending socket error, reported (and cleared) by this call: its details
                    // wait on the error queue, read on the next turn.
                    Err(_) => break,
                }
            }
        }
        let at = Instant::now();
        for reply in replies {
            if inbox.send((reply, at)).is_err() {
                return;
            }
        }
    }
}
