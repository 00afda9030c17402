//! The probe state machine: no I/O. Replies and clock readings go in; packets to send, wake
//! times and, at the end, one observation per target come out. `drive` runs it over a
//! `Network`; tests run it over a fake one on a paused clock.
//!
//! Every probe is owned by one slot (targets are unique here: the engine deduplicates them
//! before they enter). A slot's probe is sent, waits its host's adaptive timeout, and is sent
//! again while it stays silent and has attempts left. An answer to any of its attempts
//! decides it. Each run has a hard deadline computed from its settings: whatever the network
//! does, the run ends by then.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

use super::rtt::Timeouts;
use super::udp::IcmpBudget;
use super::{
    Counters, Evidence, Method, Observation, Pacer, PortState, ProbeProtocol, Settings, Target,
    echo, syn,
};
use crate::net::{Network, Packet, Reply};
use crate::packet::icmp::Unreachable;

/// Most packets sent in one turn of the loop, so replies are read between batches.
const BATCH: usize = 256;

/// Most replies read before each turn judges silence: several turns' worth.
const DRAIN: usize = 4 * BATCH;
/// Answers, all to a first attempt, that show a network without loss.
const LOSS_FREE_EVIDENCE: u32 = 32;
/// Room the hard deadline leaves above the sum of the planned waits.
const DEADLINE_SLACK: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Probe {
    target: Target,
    attempts: u32,
    /// When the first and the latest attempt left: a middle attempt's answer (only loss
    /// makes one) has no round-trip time, and gives no sample.
    first: Instant,
    last: Instant,
    decided: Option<Decision>,
}

impl Probe {
    fn sent(&self, attempt: usize) -> Option<Instant> {
        if attempt == self.attempts as usize {
            Some(self.last)
        } else {
            (attempt == 1).then_some(self.first)
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Decision {
    state: PortState,
    evidence: Evidence,
    rtt: Option<Duration>,
    /// The deciding reply's IP TTL as received.
    ttl: Option<u8>,
}

/// What a reply says about the probe it answers.
struct Heard {
    target: Target,
    proof: Proof,
    state: PortState,
    evidence: Evidence,
    ttl: Option<u8>,
}

/// What a reply carries that only an answer to our probe can.
enum Proof {
    /// A TCP reply to our source port: the acknowledgement must match the SYN's cookie.
    Ack {
        local_port: u16,
        ack: u32,
        rst: bool,
    },
    /// An ICMP error quoting our SYN: the quoted sequence number is the cookie.
    QuotedSyn { local_port: u16, seq: u32 },
    /// UDP has no cookie: the 4-tuple is the proof.
    Tuple,
    /// An echo's identifier and sequence number (the attempt).
    Echo { ident: u16, seq: u16 },
}

#[derive(Debug)]
pub struct Matcher {
    probes: Vec<Probe>,
    slots: HashMap<Target, usize>,
    /// Slots to send, first attempts in order, then retries.
    queue: VecDeque<usize>,
    /// UDP slots waiting for their host's ICMP error budget.
    deferred: BinaryHeap<Reverse<(Instant, usize)>>,
    /// (when, slot, attempt): an attempt's timeout, checked again when it comes due.
    deadlines: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    timeouts: Timeouts,
    /// The wait for unheard hosts when the deadlines were last laid: when it halves, they are
    /// laid again, or probes sent before the first answer would wait the full ceiling.
    laid_with: Duration,
    sources: HashMap<IpAddr, Result<IpAddr, io::ErrorKind>>,
    budgets: HashMap<IpAddr, IcmpBudget>,
    syn: syn::Keys,
    echo: echo::Idents,
    max_attempts: u32,
    /// The highest attempt number that drew an answer (0: none yet), and how many answers.
    best_attempt: u32,
    answers: u32,
    deadline: Instant,
    undecided: usize,
    counters: std::sync::Arc<Counters>,
}

impl Matcher {
    /// `slots` maps each of `targets`, which must be unique, to its index; `sources` maps
    /// each target address to the local address probes to it leave from, or why none can.
    pub fn new(
        targets: &[Target],
        slots: HashMap<Target, usize>,
        settings: &Settings,
        sources: HashMap<IpAddr, Result<IpAddr, io::ErrorKind>>,
        now: Instant,
        counters: std::sync::Arc<Counters>,
    ) -> Self {
        debug_assert_eq!(slots.len(), targets.len(), "targets are deduplicated first");
        let max_attempts = settings.retries.saturating_add(1);
        Matcher {
            probes: targets
                .iter()
                .map(|t| Probe {
                    target: *t,
                    attempts: 0,
                    first: now,
                    last: now,
                    decided: None,
                })
                .collect(),
            slots,
            queue: (0..targets.len()).collect(),
            deferred: BinaryHeap::new(),
            deadlines: BinaryHeap::new(),
            timeouts: Timeouts::new(settings.timeout),
            laid_with: settings.timeout,
            sources,
            budgets: HashMap::new(),
            syn: syn::Keys::new(),
            echo: echo::Idents::new(),
            max_attempts,
            best_attempt: 0,
            answers: 0,
            deadline: now + run_deadline(targets, settings),
            undecided: targets.len(),
            counters,
        }
    }

    pub fn is_done(&self) -> bool {
        self.undecided == 0
    }

    /// The run's hard deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Probes waiting to be sent now.
    pub fn ready(&self) -> usize {
        self.queue.len()
    }

    /// When the matcher next needs the clock, if nothing arrives before.
    pub fn next_wake(&self) -> Instant {
        let deadline = self.deadlines.peek().map(|d| d.0.0);
        let deferred = self.deferred.peek().map(|d| d.0.0);
        [deadline, deferred]
            .into_iter()
            .flatten()
            .fold(self.deadline, Instant::min)
    }

    /// The next packet to send, now, or `None` if nothing is due. Takes the attempt as made.
    pub fn next_packet(&mut self, now: Instant) -> Option<(usize, Packet)> {
        while let Some(slot) = self.queue.pop_front() {
            let probe = &self.probes[slot];
            if probe.decided.is_some() {
                continue;
            }
            let target = probe.target;
            let source = match self.sources.get(&target.addr) {
                Some(Ok(source)) => *source,
                Some(Err(kind)) => {
                    self.decide(
                        slot,
                        PortState::Filtered,
                        Evidence::Unsendable(*kind),
                        None,
                        None,
                    );
                    continue;
                }
                None => {
                    let kind = io::ErrorKind::AddrNotAvailable;
                    self.decide(
                        slot,
                        PortState::Filtered,
                        Evidence::Unsendable(kind),
                        None,
                        None,
                    );
                    continue;
                }
            };
            if target.protocol == ProbeProtocol::Udp {
                let budget = self
                    .budgets
                    .entry(target.addr)
                    .or_insert_with(|| IcmpBudget::new(now));
                if let Err(refill) = budget.take(now) {
                    self.deferred.push(Reverse((refill, slot)));
                    continue;
                }
            }
            let probe = &mut self.probes[slot];
            probe.attempts += 1;
            if probe.attempts == 1 {
                probe.first = now;
            }
            probe.last = now;
            let attempt = probe.attempts;
            let remote = SocketAddr::new(target.addr, target.port.unwrap_or(0));
            let packet = match target.protocol {
                ProbeProtocol::Tcp => {
                    let local = SocketAddr::new(source, syn::Keys::port(slot, attempt));
                    Packet::Syn {
                        local,
                        remote,
                        seq: self.syn.seq(local, remote),
                    }
                }
                ProbeProtocol::Udp => Packet::Udp { remote },
                ProbeProtocol::Icmp => Packet::Echo {
                    remote: target.addr,
                    ident: self.echo.ident(slot),
                    seq: attempt as u16,
                },
            };
            let wait = self.timeouts.wait(target.addr, attempt);
            self.deadlines.push(Reverse((now + wait, slot, attempt)));
            return Some((slot, packet));
        }
        None
    }

    /// A packet that could not leave this host: the probe is decided, it would fare no better
    /// a second time.
    pub fn unsendable(&mut self, slot: usize, error: &io::Error) {
        self.decide(
            slot,
            PortState::Filtered,
            Evidence::Unsendable(error.kind()),
            None,
            None,
        );
    }

    /// Matches a reply to the probe it answers, and decides that probe.
    pub fn on_reply(&mut self, reply: &Reply, at: Instant) {
        let Some(heard) = hear(reply) else {
            return;
        };
        let Some(&slot) = self.slots.get(&heard.target) else {
            Counters::add(&self.counters.strays, 1);
            return;
        };
        let probe = &self.probes[slot];
        let Some(attempt) = self.answered_attempt(slot, &heard.proof) else {
            // Not an answer to anything we sent: not ours, or forged.
            Counters::add(&self.counters.strays, 1);
            return;
        };
        if probe.decided.is_some() {
            Counters::add(&self.counters.duplicates, 1);
            return;
        }
        Counters::add(&self.counters.answered, 1);
        let latest = probe.attempts as usize;
        // An answer to an unknown attempt may be to the latest: loss is not ruled out.
        self.best_attempt = self.best_attempt.max(attempt.unwrap_or(latest) as u32);
        self.answers += 1;
        // Karn: only an answer known to belong to the latest attempt gives a clean sample.
        let sent = attempt.map_or(Some(probe.last), |k| probe.sent(k));
        let rtt = sent.and_then(|sent| at.checked_duration_since(sent));
        if let Some(rtt) = rtt
            && (attempt.is_some() || latest == 1)
        {
            self.timeouts.sample(heard.target.addr, rtt);
            self.relay_if_shorter();
        }
        self.decide(slot, heard.state, heard.evidence, rtt, heard.ttl);
    }

    /// Expires the timeouts due by `now`: a silent probe is sent again or, out of attempts,
    /// decided by its silence. At the run's deadline everything still open is decided.
    pub fn on_time(&mut self, now: Instant) {
        while let Some(Reverse((due, slot))) = self.deferred.peek().copied() {
            if due > now {
                break;
            }
            self.deferred.pop();
            self.queue.push_back(slot);
        }
        while let Some(Reverse((due, slot, attempt))) = self.deadlines.peek().copied() {
            if due > now {
                break;
            }
            self.deadlines.pop();
            let probe = &self.probes[slot];
            if probe.decided.is_some() || probe.attempts != attempt {
                continue;
            }
            // The estimate may have grown since this timeout was laid: wait the new one.
            let now_due = probe.last + self.timeouts.wait(probe.target.addr, attempt);
            if now_due > now {
                self.deadlines.push(Reverse((now_due, slot, attempt)));
            } else if attempt < self.attempts_allowed() {
                self.queue.push_back(slot);
            } else {
                self.decide_silent(slot, Evidence::NoReply);
            }
        }
        if now >= self.deadline {
            for slot in 0..self.probes.len() {
                self.decide_silent(slot, Evidence::RunDeadline);
            }
            self.queue.clear();
        }
    }

    /// One observation per target, in the order given.
    pub fn finish(self) -> Vec<Observation> {
        self.probes
            .into_iter()
            .map(|p| {
                let decision = p.decided.unwrap_or(Decision {
                    state: silence(p.target.protocol),
                    evidence: Evidence::RunDeadline,
                    rtt: None,
                    ttl: None,
                });
                Observation {
                    target: p.target,
                    state: decision.state,
                    rtt: decision.rtt,
                    evidence: decision.evidence,
                    ttl: decision.ttl,
                    attempts: p.attempts,
                    method: method(p.target.protocol),
                }
            })
            .collect()
    }

    /// Which attempt of `slot`'s probe the proof answers (`Some(None)`: one of them, which is
    /// not known), or `None` if it answers none.
    fn answered_attempt(&self, slot: usize, proof: &Proof) -> Option<Option<usize>> {
        let probe = &self.probes[slot];
        let target = probe.target;
        let remote = SocketAddr::new(target.addr, target.port.unwrap_or(0));
        let attempts = probe.attempts as usize;
        let source = || self.sources.get(&target.addr)?.ok();
        match *proof {
            Proof::Ack {
                local_port,
                ack,
                rst,
            } => {
                let k = syn::Keys::attempt_of(slot, local_port, attempts)?;
                let local = SocketAddr::new(source()?, local_port);
                self.syn.answers(local, remote, ack, rst).then_some(Some(k))
            }
            Proof::QuotedSyn { local_port, seq } => {
                let k = syn::Keys::attempt_of(slot, local_port, attempts)?;
                let local = SocketAddr::new(source()?, local_port);
                (self.syn.seq(local, remote) == seq).then_some(Some(k))
            }
            Proof::Tuple => (attempts > 0).then_some(None),
            Proof::Echo { ident, seq } => {
                let k = usize::from(seq);
                (ident == self.echo.ident(slot) && (1..=attempts).contains(&k)).then_some(Some(k))
            }
        }
    }

    /// Attempts a silent probe gets. While enough answers have come, all to a first attempt,
    /// the network shows no loss, and one retry is enough (nmap caps its retransmissions by
    /// the highest attempt that ever drew an answer the same way); once any answer needed a
    /// retry, or with too few answers to tell, all of them. (At 10% loss, 32 answers all
    /// coming first time has odds of 0.1%.)
    fn attempts_allowed(&self) -> u32 {
        if self.best_attempt == 1 && self.answers >= LOSS_FREE_EVIDENCE {
            self.max_attempts.min(2)
        } else {
            self.max_attempts
        }
    }

    /// When the wait for unheard hosts has halved since the deadlines were laid, lays them
    /// again: probes sent before the first answers must not all wait the ceiling.
    fn relay_if_shorter(&mut self) {
        let unheard = self.timeouts.unheard();
        if unheard * 2 > self.laid_with {
            return;
        }
        self.laid_with = unheard;
        let pending = std::mem::take(&mut self.deadlines);
        self.deadlines = pending
            .into_iter()
            .map(|Reverse((due, slot, attempt))| {
                let probe = &self.probes[slot];
                let relaid = if probe.decided.is_none() && probe.attempts == attempt {
                    due.min(probe.last + self.timeouts.wait(probe.target.addr, attempt))
                } else {
                    due
                };
                Reverse((relaid, slot, attempt))
            })
            .collect();
    }

    fn decide_silent(&mut self, slot: usize, evidence: Evidence) {
        let state = silence(self.probes[slot].target.protocol);
        self.decide(slot, state, evidence, None, None);
    }

    fn decide(
        &mut self,
        slot: usize,
        state: PortState,
        evidence: Evidence,
        rtt: Option<Duration>,
        ttl: Option<u8>,
    ) {
        let probe = &mut self.probes[slot];
        if probe.decided.is_none() {
            probe.decided = Some(Decision {
                state,
                evidence,
                rtt,
                ttl,
            });
            self.undecided -= 1;
        }
    }
}

/// What silence means: a dropped SYN or echo is filtered; a UDP probe may also have reached a
/// listener that does not answer.
fn silence(protocol: ProbeProtocol) -> PortState {
    match protocol {
        ProbeProtocol::Udp => PortState::OpenFiltered,
        ProbeProtocol::Tcp | ProbeProtocol::Icmp => PortState::Filtered,
    }
}

fn method(protocol: ProbeProtocol) -> Method {
    match protocol {
        ProbeProtocol::Tcp => Method::Syn,
        ProbeProtocol::Udp => Method::Udp,
        ProbeProtocol::Icmp => Method::Icmp,
    }
}

/// The longest a run can need: every attempt sent at the rate, each waiting the full
/// timeout, UDP spread over each host's ICMP error budget; plus slack.
fn run_deadline(targets: &[Target], settings: &Settings) -> Duration {
    let attempts = u64::from(settings.retries) + 1;
    let packets = targets.len() as u64 * attempts;
    let sending = Duration::from_secs_f64(packets as f64 / f64::from(settings.rate.max(1)));
    let mut udp_per_host: HashMap<IpAddr, u64> = HashMap::new();
    for t in targets.iter().filter(|t| t.protocol == ProbeProtocol::Udp) {
        *udp_per_host.entry(t.addr).or_default() += attempts;
    }
    let udp = udp_per_host
        .values()
        .map(|n| IcmpBudget::time_for(*n))
        .max()
        .unwrap_or_default();
    let waits = settings
        .timeout
        .saturating_mul(attempts.min(u64::from(u32::MAX)) as u32);
    sending + udp + waits + DEADLINE_SLACK
}

/// What a reply says, and about which target.
fn hear(reply: &Reply) -> Option<Heard> {
    match *reply {
        Reply::Tcp(r) => {
            let (state, evidence) = if r.syn && r.ack_flag {
                (PortState::Open, Evidence::SynAck)
            } else if r.rst {
                (PortState::Closed, Evidence::Rst)
            } else {
                return None;
            };
            Some(Heard {
                target: Target::tcp(r.remote.ip(), r.remote.port()),
                proof: Proof::Ack {
                    local_port: r.local_port,
                    ack: r.ack,
                    rst: r.rst,
                },
                state,
                evidence,
                ttl: r.ttl,
            })
        }
        Reply::Udp { from, ttl } => Some(Heard {
            target: Target::udp(from.ip(), from.port()),
            proof: Proof::Tuple,
            state: PortState::Open,
            evidence: Evidence::UdpReply,
            ttl,
        }),
        Reply::Echo { from, ident, seq } => Some(Heard {
            target: Target::icmp(from),
            proof: Proof::Echo { ident, seq },
            state: PortState::Open,
            evidence: Evidence::EchoReply,
            ttl: None,
        }),
        Reply::Unreachable(error) => hear_error(&error),
    }
}

/// An ICMP error, by the protocol of the probe it quotes (ARCHITECTURE.md §3's table).
fn hear_error(error: &Unreachable) -> Option<Heard> {
    let q = &error.quoted;
    let evidence = Evidence::Icmp {
        kind: error.kind,
        from: Some(error.from),
    };
    let (target, proof, state) = match q.protocol {
        6 if error.kind.filters_tcp() => (
            Target::tcp(q.dst, q.dst_port),
            Proof::QuotedSyn {
                local_port: q.src_port,
                seq: q.word,
            },
            PortState::Filtered,
        ),
        17 => (
            Target::udp(q.dst, q.dst_port),
            Proof::Tuple,
            if error.kind.is_port_unreachable() {
                PortState::Closed
            } else {
                PortState::Filtered
            },
        ),
        1 | 58 => (
            Target::icmp(q.dst),
            Proof::Echo {
                ident: (q.word >> 16) as u16,
                seq: q.word as u16,
            },
            PortState::Filtered,
        ),
        _ => return None,
    };
    Some(Heard {
        target,
        proof,
        state,
        evidence,
        ttl: error.ttl,
    })
}

/// Runs the matcher over `network` until every target is decided or the run's deadline.
/// `slots` as for `Matcher::new`.
pub async fn drive<N: Network>(
    network: &mut N,
    targets: &[Target],
    slots: HashMap<Target, usize>,
    settings: &Settings,
    pacer: &Pacer,
    counters: std::sync::Arc<Counters>,
) -> Vec<Observation> {
    let mut sources = HashMap::new();
    for t in targets {
        sources
            .entry(t.addr)
            .or_insert_with(|| network.source_for(t.addr).map_err(|e| e.kind()));
    }
    let now = Instant::now();
    let mut matcher = Matcher::new(targets, slots, settings, sources, now, counters.clone());
    let deadline = matcher.deadline();
    while !matcher.is_done() {
        // What has already arrived is read before silence is judged: at a high rate one
        // turn's sends draw more replies than the turn reads, and a reply waiting in the
        // queue is not silence. The receivers run first (on a single-threaded runtime they
        // run only when this task yields); the reading is bounded, so a flood cannot keep the
        // clock from being read.
        tokio::task::yield_now().await;
        for _ in 0..DRAIN {
            let Some((reply, at)) = network.recv(Instant::now()).await else {
                break;
            };
            matcher.on_reply(&reply, at);
        }
        matcher.on_time(Instant::now());
        let want = matcher.ready().min(BATCH);
        let granted = if want > 0 { pacer.take(want) } else { 0 };
        let now = Instant::now();
        let (slots, packets): (Vec<usize>, Vec<Packet>) =
            std::iter::from_fn(|| matcher.next_packet(now))
                .take(granted)
                .unzip();
        pacer.give_back(granted - packets.len());
        Counters::add(&counters.sent, packets.len() as u64);
        // The whole batch in as few system calls as the network allows; a packet that cannot
        // leave is decided as such and the rest still go.
        let mut from = 0;
        while from < packets.len() {
            match tokio::time::timeout_at(deadline, network.send_all(&packets[from..])).await {
                Ok((_, None)) => break,
                Ok((sent, Some(error))) => {
                    matcher.unsendable(slots[from + sent], &error);
                    from += sent + 1;
                }
                // A send stuck past the deadline: the next turn ends the run.
                Err(_) => break,
            }
        }
        if matcher.is_done() {
            break;
        }
        let wake = if matcher.ready() > 0 {
            (Instant::now() + pacer.next_in()).min(matcher.next_wake())
        } else {
            matcher.next_wake()
        };
        // Wait for a reply or the wake, then read a batch of what else is already here: a
        // flood of replies must not keep the clock from being looked at.
        if let Some((reply, at)) = network.recv(wake).await {
            matcher.on_reply(&reply, at);
            for _ in 1..BATCH {
                if matcher.is_done() {
                    break;
                }
                let Some((reply, at)) = network.recv(Instant::now()).await else {
                    break;
                };
                matcher.on_reply(&reply, at);
            }
        }
    }
    matcher.finish()
}
