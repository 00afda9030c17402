//! Packet headers: build SYNs, parse replies and ICMP errors. Pure, and no input makes a
//! parser panic: every length is checked before a header is read.

pub mod icmp;
pub mod tcp;

use std::hash::BuildHasher;
use std::net::SocketAddr;

/// Sequence numbers that prove a SYN-ACK answers our SYN, without keeping state: a keyed hash
/// of the 4-tuple, as zmap and masscan do.
#[derive(Debug, Clone)]
pub struct Cookie<S> {
    key: S,
}

impl<S: BuildHasher> Cookie<S> {
    /// `key` must be secret and random per run (`std::collections::hash_map::RandomState`).
    pub fn new(key: S) -> Self {
        Cookie { key }
    }

    /// The sequence number for a SYN from `local` to `remote`.
    pub fn seq(&self, local: SocketAddr, remote: SocketAddr) -> u32 {
        let hash = self.key.hash_one((local, remote));
        (hash ^ (hash >> 32)) as u32
    }

    /// Whether a reply's acknowledgement answers our SYN: `seq + 1` for a SYN-ACK; a RST may
    /// carry `seq` or `seq + 1`.
    pub fn answers(&self, local: SocketAddr, remote: SocketAddr, ack: u32, rst: bool) -> bool {
        let seq = self.seq(local, remote);
        ack == seq.wrapping_add(1) || (rst && ack == seq)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;

    use super::*;

    #[test]
    fn cookies_differ_per_tuple_and_per_key_and_accept_only_their_ack() {
        let cookie = Cookie::new(RandomState::new());
        let (a, b): (SocketAddr, SocketAddr) = (
            "10.0.0.1:61001".parse().expect("a"),
            "10.0.0.2:22".parse().expect("b"),
        );
        let c: SocketAddr = "10.0.0.2:23".parse().expect("c");
        assert_ne!(cookie.seq(a, b), cookie.seq(a, c));
        assert_eq!(cookie.seq(a, b), cookie.seq(a, b));
        let seq = cookie.seq(a, b);
        assert!(cookie.answers(a, b, seq.wrapping_add(1), false));
        assert!(
            !cookie.answers(a, b, seq, false),
            "a SYN-ACK must ack seq+1"
        );
        assert!(cookie.answers(a, b, seq, true), "a RST may carry seq");
        assert!(!cookie.answers(a, c, seq.wrapping_add(1), false));
        assert_ne!(
            Cookie::new(RandomState::new()).seq(a, b),
            seq,
            "keys are per run"
        );
    }
}
