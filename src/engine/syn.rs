//! What the SYN matcher needs beyond the shared state machine: which source port each attempt
//! uses, and the cookie in the sequence number that proves a reply answers our SYN (as zmap
//! and masscan do), so the send side keeps no per-packet state.

use std::collections::hash_map::RandomState;
use std::net::SocketAddr;

use crate::model::catalog::PROBE_SOURCE_PORTS;
use crate::packet::Cookie;

const SPAN: u32 = (PROBE_SOURCE_PORTS.last - PROBE_SOURCE_PORTS.first) as u32 + 1;

/// One run's secret cookie key.
#[derive(Debug)]
pub struct Keys {
    cookie: Cookie<RandomState>,
}

impl Keys {
    pub fn new() -> Self {
        Keys {
            cookie: Cookie::new(RandomState::new()),
        }
    }

    pub fn seq(&self, local: SocketAddr, remote: SocketAddr) -> u32 {
        self.cookie.seq(local, remote)
    }

    pub fn answers(&self, local: SocketAddr, remote: SocketAddr, ack: u32, rst: bool) -> bool {
        self.cookie.answers(local, remote, ack, rst)
    }

    /// The source port of attempt `attempt` (from 1) of the probe in `slot`: a fresh one per
    /// attempt, so a retry is a new 4-tuple, clear of any state the first left on the target.
    pub fn port(slot: usize, attempt: u32) -> u16 {
        let offset = (slot as u32)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(attempt)
            % SPAN;
        PROBE_SOURCE_PORTS.first + offset as u16
    }

    /// Which of the first `attempts` attempts of `slot` used `port`, if any.
    pub fn attempt_of(slot: usize, port: u16, attempts: usize) -> Option<usize> {
        (1..=attempts).find(|k| Self::port(slot, *k as u32) == port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_use_distinct_ports_inside_the_probe_range_and_are_found_again() {
        for slot in [0, 1, 65_534, 1 << 20] {
            let ports: Vec<u16> = (1..=4).map(|k| Keys::port(slot, k)).collect();
            for (i, port) in ports.iter().enumerate() {
                assert!((PROBE_SOURCE_PORTS.first..=PROBE_SOURCE_PORTS.last).contains(port));
                assert_eq!(Keys::attempt_of(slot, *port, 4), Some(i + 1));
            }
            assert_eq!(Keys::attempt_of(slot, ports[3], 3), None, "not sent yet");
        }
    }
}
