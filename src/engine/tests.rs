//! The matchers over a fake network on tokio's paused clock: no root, no sockets, and time
//! that moves only when every task waits, so deadlines and retries are deterministic.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::rtt::FLOOR as TIMEOUT_FLOOR;
use super::{Counters, Evidence, Observation, Pacer, Settings, Target, probe_over};
use crate::model::PortState;
use crate::net::{Network, Packet, Reply};
use crate::packet::icmp::{IcmpKind, Quoted, Unreachable};
use crate::packet::tcp::TcpReply;

/// How a fake target answers.
#[derive(Debug, Clone, Copy)]
enum Answer {
    SynAck,
    Rst,
    /// ICMP administratively prohibited, quoting the probe.
    Prohibited,
    UdpData,
    PortUnreachable,
    EchoReply,
}

#[derive(Debug, Clone, Copy)]
struct Behaviour {
    answer: Answer,
    after: Duration,
    /// Answer only from this attempt on (1 = every attempt).
    from_attempt: u32,
    /// Copies of each answer.
    copies: usize,
}

fn answers(answer: Answer, after_ms: u64) -> Behaviour {
    Behaviour {
        answer,
        after: Duration::from_millis(after_ms),
        from_attempt: 1,
        copies: 1,
    }
}

const SOURCE: [u8; 4] = [10, 0, 0, 1];

/// Answers as told per target; everything else is silent.
#[derive(Default)]
struct Fake {
    behaviour: HashMap<Target, Behaviour>,
    /// Replies due, with when.
    due: Vec<(Instant, Reply)>,
    /// Every packet sent, with when.
    sent: Vec<(Instant, Packet)>,
    attempts: HashMap<Target, u32>,
    unroutable: Vec<IpAddr>,
    /// Sends to these fail, as an nftables OUTPUT reject makes sendto fail with EPERM.
    refused: Vec<Target>,
    /// Sends never complete.
    stuck: bool,
    /// A stray reply every millisecond, forever.
    flood: bool,
    /// A stray reply at every read, at once: a flood faster than the run reads.
    deluge: bool,
}

impl Fake {
    fn answering(targets: &[(Target, Behaviour)]) -> Self {
        Fake {
            behaviour: targets.iter().copied().collect(),
            ..Fake::default()
        }
    }

    fn sent_to(&self, target: Target) -> usize {
        self.sent
            .iter()
            .filter(|(_, p)| packet_target(p) == target)
            .count()
    }

    fn reply_for(packet: &Packet, answer: Answer) -> Reply {
        let prohibited = |protocol, dst, src_port, dst_port, word| {
            Reply::Unreachable(Unreachable {
                from: dst,
                ttl: None,
                kind: IcmpKind {
                    v6: false,
                    icmp_type: 3,
                    code: 13,
                },
                quoted: Quoted {
                    protocol,
                    src: IpAddr::from(SOURCE),
                    dst,
                    src_port,
                    dst_port,
                    word,
                },
            })
        };
        match (*packet, answer) {
            (Packet::Syn { local, remote, seq }, Answer::SynAck | Answer::Rst) => {
                let synack = matches!(answer, Answer::SynAck);
                Reply::Tcp(TcpReply {
                    remote,
                    ttl: Some(64),
                    local_port: local.port(),
                    local_ip: Some(local.ip()),
                    ack: seq.wrapping_add(1),
                    syn: synack,
                    ack_flag: true,
                    rst: !synack,
                })
            }
            (Packet::Syn { local, remote, seq }, Answer::Prohibited) => {
                prohibited(6, remote.ip(), local.port(), remote.port(), seq)
            }
            (Packet::Udp { remote }, Answer::UdpData) => Reply::Udp {
                from: remote,
                ttl: Some(64),
            },
            (Packet::Udp { remote }, Answer::PortUnreachable) => Reply::Unreachable(Unreachable {
                from: remote.ip(),
                ttl: None,
                kind: IcmpKind {
                    v6: false,
                    icmp_type: 3,
                    code: 3,
                },
                quoted: Quoted {
                    protocol: 17,
                    src: IpAddr::from(SOURCE),
                    dst: remote.ip(),
                    src_port: 40000,
                    dst_port: remote.port(),
                    word: 0,
                },
            }),
            (Packet::Echo { remote, ident, seq }, Answer::EchoReply) => Reply::Echo {
                from: remote,
                ident,
                seq,
            },
            (Packet::Echo { remote, ident, seq }, Answer::Prohibited) => {
                prohibited(1, remote, 0, 0, (u32::from(ident) << 16) | u32::from(seq))
            }
            (packet, answer) => panic!("the test asks {answer:?} of {packet:?}"),
        }
    }
}

fn packet_target(packet: &Packet) -> Target {
    match *packet {
        Packet::Syn { remote, .. } => Target::tcp(remote.ip(), remote.port()),
        Packet::Udp { remote } => Target::udp(remote.ip(), remote.port()),
        Packet::Echo { remote, .. } => Target::icmp(remote),
    }
}

impl Network for Fake {
    fn source_for(&mut self, remote: IpAddr) -> io::Result<IpAddr> {
        if self.unroutable.contains(&remote) {
            return Err(io::ErrorKind::NetworkUnreachable.into());
        }
        Ok(IpAddr::from(SOURCE))
    }

    fn send(&mut self, packet: Packet) -> impl Future<Output = io::Result<()>> {
        let now = Instant::now();
        self.sent.push((now, packet));
        let target = packet_target(&packet);
        let attempt = self.attempts.entry(target).or_default();
        *attempt += 1;
        if let Some(b) = self.behaviour.get(&target)
            && *attempt >= b.from_attempt
        {
            let reply = Fake::reply_for(&packet, b.answer);
            for _ in 0..b.copies {
                self.due.push((now + b.after, reply));
            }
        }
        let (stuck, refused) = (self.stuck, self.refused.contains(&target));
        async move {
            if stuck {
                std::future::pending::<()>().await;
            }
            if refused {
                return Err(io::ErrorKind::PermissionDenied.into());
            }
            Ok(())
        }
    }

    async fn recv(&mut self, until: Instant) -> Option<(Reply, Instant)> {
        if self.deluge {
            // Reading one costs the reader 10 us: time passes only as fast as it reads.
            tokio::time::advance(Duration::from_micros(10)).await;
            return Some((
                Reply::Udp {
                    from: SocketAddr::from(([192, 0, 2, 99], 53)),
                    ttl: Some(64),
                },
                Instant::now(),
            ));
        }
        if self.flood {
            // One stray a millisecond from now: none sooner.
            let at = Instant::now() + Duration::from_millis(1);
            if at > until {
                tokio::time::sleep_until(until).await;
                return None;
            }
            tokio::time::sleep_until(at).await;
            let stray = Reply::Udp {
                from: SocketAddr::from(([192, 0, 2, 99], 53)),
                ttl: Some(64),
            };
            return Some((stray, at));
        }
        let next = self
            .due
            .iter()
            .enumerate()
            .min_by_key(|(_, (at, _))| *at)
            .map(|(i, (at, _))| (i, *at));
        match next {
            Some((i, at)) if at <= until => {
                tokio::time::sleep_until(at).await;
                let (at, reply) = self.due.swap_remove(i);
                Some((reply, at))
            }
            _ => {
                tokio::time::sleep_until(until).await;
                None
            }
        }
    }
}

fn settings(timeout_ms: u64, retries: u32) -> Settings {
    Settings {
        rate: 100_000,
        timeout: Duration::from_millis(timeout_ms),
        retries,
        force_connect: false,
    }
}

fn host(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 1, last])
}

/// Runs the engine over `fake`; fails, rather than hangs, if the run outlives an hour of the
/// paused clock.
async fn run(
    fake: &mut Fake,
    settings: &Settings,
    targets: &[Target],
) -> (Vec<Observation>, Arc<Counters>, Duration) {
    let counters = Arc::new(Counters::default());
    let pacer = Pacer::new(settings.rate);
    let start = Instant::now();
    let found = tokio::time::timeout(
        Duration::from_secs(3600),
        probe_over(fake, settings, &pacer, targets, counters.clone()),
    )
    .await
    .expect("the run ends");
    (found, counters, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_target_given_twice_is_probed_once_and_both_requesters_get_the_answer() {
    let web = Target::tcp(host(1), 22);
    let ping = Target::icmp(host(1));
    let mut fake = Fake::answering(&[
        (web, answers(Answer::SynAck, 5)),
        (ping, answers(Answer::EchoReply, 5)),
    ]);
    let other = Target::tcp(host(1), 80);
    let asked = [web, ping, other, web, ping];
    let (found, _, _) = run(&mut fake, &settings(1000, 2), &asked).await;
    let got: Vec<Target> = found.iter().map(|o| o.target).collect();
    assert_eq!(got, asked, "one answer per requester, in order");
    assert_eq!(found[0].state, PortState::Open);
    assert_eq!(found[1].evidence, Evidence::EchoReply);
    assert_eq!(found[3], found[0], "both requesters get the same answer");
    assert_eq!(found[4], found[1]);
    assert_eq!(
        (fake.sent_to(web), fake.sent_to(ping)),
        (1, 1),
        "probed once"
    );
}

#[tokio::test(start_paused = true)]
async fn duplicate_replies_are_counted_and_change_nothing() {
    let mut thrice = answers(Answer::Rst, 5);
    thrice.copies = 3;
    let t = Target::tcp(host(1), 23);
    // A second probe answered later keeps the run going while the copies arrive.
    let slow = Target::tcp(host(1), 24);
    let mut fake = Fake::answering(&[(t, thrice), (slow, answers(Answer::SynAck, 50))]);
    let (found, counters, _) = run(&mut fake, &settings(1000, 2), &[t, slow]).await;
    assert_eq!(
        (found[0].state, found[0].evidence, found[0].attempts),
        (PortState::Closed, Evidence::Rst, 1)
    );
    assert_eq!(found[1].state, PortState::Open);
    assert_eq!(Counters::get(&counters.answered), 2);
    assert_eq!(Counters::get(&counters.duplicates), 2);
    assert_eq!(Counters::get(&counters.strays), 0);
}

#[tokio::test(start_paused = true)]
async fn an_answer_to_an_earlier_attempt_decides_the_probe_after_its_timeout() {
    // Answers after 1.5 s, beyond the 1 s timeout: the probe is retried, and the late answer
    // to the first attempt still decides it.
    let t = Target::tcp(host(1), 25);
    let mut fake = Fake::answering(&[(t, answers(Answer::SynAck, 1500))]);
    let (found, _, elapsed) = run(&mut fake, &settings(1000, 2), &[t]).await;
    assert_eq!(found[0].state, PortState::Open);
    assert_eq!(found[0].attempts, 2);
    assert_eq!(
        found[0].rtt,
        Some(Duration::from_millis(1500)),
        "from its own send"
    );
    assert_eq!(elapsed, Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn a_reply_after_the_last_timeout_is_late_and_changes_nothing() {
    let t = Target::tcp(host(1), 26);
    let mut fake = Fake::answering(&[(t, answers(Answer::SynAck, 5000))]);
    let (found, counters, elapsed) = run(&mut fake, &settings(1000, 1), &[t]).await;
    assert_eq!(
        (found[0].state, found[0].evidence),
        (PortState::Filtered, Evidence::NoReply)
    );
    assert_eq!(found[0].attempts, 2);
    assert_eq!(
        elapsed,
        Duration::from_secs(2),
        "two attempts, one ceiling each"
    );
    assert_eq!(Counters::get(&counters.answered), 0);
}

#[tokio::test(start_paused = true)]
async fn strays_and_forgeries_are_counted_and_ignored() {
    let t = Target::tcp(host(1), 22);
    let mut fake = Fake::answering(&[]);
    // A SYN-ACK from a target we never probed, one from ours with a wrong cookie, and a UDP
    // datagram from nowhere we sent to.
    let forged = |remote: SocketAddr, ack| {
        Reply::Tcp(TcpReply {
            remote,
            ttl: Some(64),
            local_port: super::syn::Keys::port(0, 1),
            local_ip: None,
            ack,
            syn: true,
            ack_flag: true,
            rst: false,
        })
    };
    let at = Instant::now() + Duration::from_millis(2);
    fake.due.push((at, forged(SocketAddr::new(host(9), 22), 1)));
    fake.due
        .push((at, forged(SocketAddr::new(host(1), 22), 12345)));
    fake.due.push((
        at,
        Reply::Udp {
            from: SocketAddr::new(host(1), 53),
            ttl: Some(64),
        },
    ));
    let (found, counters, _) = run(&mut fake, &settings(200, 0), &[t]).await;
    assert_eq!(found[0].state, PortState::Filtered);
    assert_eq!(Counters::get(&counters.strays), 3);
    assert_eq!(Counters::get(&counters.answered), 0);
}

#[tokio::test(start_paused = true)]
async fn a_reply_for_a_probe_never_sent_is_a_stray() {
    // The echo's third attempt answered while only one was sent; a SYN-ACK for a target the
    // pacer has not let out yet.
    let ping = Target::icmp(host(1));
    let later = Target::tcp(host(2), 22);
    let mut fake = Fake::answering(&[]);
    let at = Instant::now() + Duration::from_micros(10);
    let ident = 0; // unknown to the test: the proof fails on the sequence or the identifier
    fake.due.push((
        at,
        Reply::Echo {
            from: host(1),
            ident,
            seq: 3,
        },
    ));
    fake.due.push((
        at,
        Reply::Tcp(TcpReply {
            remote: SocketAddr::new(host(2), 22),
            ttl: Some(64),
            local_port: super::syn::Keys::port(1, 1),
            local_ip: None,
            ack: 1,
            syn: true,
            ack_flag: true,
            rst: false,
        }),
    ));
    let mut slow = settings(200, 0);
    slow.rate = 1; // one packet now, the next a second later
    let (found, counters, _) = run(&mut fake, &slow, &[ping, later]).await;
    assert_eq!(Counters::get(&counters.strays), 2);
    assert!(found.iter().all(|o| o.state == PortState::Filtered));
}

#[tokio::test(start_paused = true)]
async fn once_an_answer_needed_a_retry_silent_probes_get_every_retry() {
    // `lossy` answers only from its second attempt: the network has shown loss.
    let quiet = Target::tcp(host(1), 1);
    let lossy = Target::tcp(host(1), 2);
    let third = Target::tcp(host(1), 3);
    let open = Target::tcp(host(1), 4);
    let from = |attempt| {
        let mut b = answers(Answer::SynAck, 1);
        b.from_attempt = attempt;
        b
    };
    let mut fake = Fake::answering(&[
        (lossy, from(2)),
        (third, from(3)),
        (open, answers(Answer::SynAck, 1)),
    ]);
    let (found, _, _) = run(&mut fake, &settings(1000, 2), &[quiet, lossy, third, open]).await;
    assert_eq!(
        (found[0].state, found[0].evidence, found[0].attempts),
        (PortState::Filtered, Evidence::NoReply, 3)
    );
    assert_eq!((found[1].state, found[1].attempts), (PortState::Open, 2));
    assert_eq!((found[2].state, found[2].attempts), (PortState::Open, 3));
    assert_eq!((found[3].state, found[3].attempts), (PortState::Open, 1));
    assert_eq!(fake.sent_to(quiet), 3);
    assert_eq!(fake.sent_to(open), 1, "answered probes are not sent again");
}

/// `n` ports of host 1 that answer every attempt at once.
fn answering_ports(n: u16) -> Vec<(Target, Behaviour)> {
    (1..=n)
        .map(|p| (Target::tcp(host(1), 5000 + p), answers(Answer::Rst, 1)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn one_retry_is_enough_only_once_enough_answers_all_came_first_time() {
    // (answers that came first time, attempts a silent probe then gets with 5 retries)
    for (answered, attempts) in [(32, 2), (31, 6)] {
        let quiet = Target::tcp(host(2), 1);
        let answering = answering_ports(answered);
        let mut targets = vec![quiet];
        targets.extend(answering.iter().map(|(t, _)| *t));
        let mut fake = Fake::answering(&answering);
        let (found, _, _) = run(&mut fake, &settings(1000, 5), &targets).await;
        assert_eq!(
            (found[0].evidence, found[0].attempts),
            (Evidence::NoReply, attempts),
            "{answered} answers"
        );
        assert_eq!(fake.sent_to(quiet), attempts as usize);
    }
}

#[tokio::test(start_paused = true)]
async fn with_no_answer_at_all_every_retry_is_made() {
    let quiet = Target::icmp(host(1));
    let mut fake = Fake::answering(&[]);
    let (found, _, elapsed) = run(&mut fake, &settings(1000, 3), &[quiet]).await;
    assert_eq!(
        (found[0].evidence, found[0].attempts),
        (Evidence::NoReply, 4)
    );
    assert_eq!(
        elapsed,
        Duration::from_secs(4),
        "no estimate: the ceiling each time"
    );
}

#[tokio::test(start_paused = true)]
async fn icmp_errors_quoting_our_probes_decide_them_per_protocol() {
    let syn = Target::tcp(host(1), 22);
    let udp_closed = Target::udp(host(1), 53);
    let udp_open = Target::udp(host(1), 123);
    let ping = Target::icmp(host(2));
    let mut fake = Fake::answering(&[
        (syn, answers(Answer::Prohibited, 3)),
        (udp_closed, answers(Answer::PortUnreachable, 3)),
        (udp_open, answers(Answer::UdpData, 3)),
        (ping, answers(Answer::Prohibited, 3)),
    ]);
    let udp_silent = Target::udp(host(1), 161);
    let (found, counters, _) = run(
        &mut fake,
        &settings(1000, 1),
        &[syn, udp_closed, udp_open, ping, udp_silent],
    )
    .await;
    let states: Vec<PortState> = found.iter().map(|o| o.state).collect();
    assert_eq!(
        states,
        [
            PortState::Filtered,
            PortState::Closed,
            PortState::Open,
            PortState::Filtered,
            PortState::OpenFiltered
        ]
    );
    assert!(matches!(found[0].evidence, Evidence::Icmp { kind, .. } if kind.code == 13));
    assert_eq!(found[0].attempts, 1, "an ICMP error decides at once");
    assert_eq!(found[0].evidence.to_string(), "icmp 3/13 from 10.0.1.1");
    assert!(matches!(found[1].evidence, Evidence::Icmp { kind, .. } if kind.is_port_unreachable()));
    assert_eq!(found[4].evidence, Evidence::NoReply);
    assert_eq!(Counters::get(&counters.strays), 0);
}

#[tokio::test(start_paused = true)]
async fn an_error_quoting_a_wrong_sequence_number_is_not_ours() {
    let syn = Target::tcp(host(1), 22);
    let mut fake = Fake::answering(&[]);
    fake.due.push((
        Instant::now() + Duration::from_millis(1),
        Fake::reply_for(
            &Packet::Syn {
                local: SocketAddr::new(IpAddr::from(SOURCE), super::syn::Keys::port(0, 1)),
                remote: SocketAddr::new(host(1), 22),
                seq: 7,
            },
            Answer::Prohibited,
        ),
    ));
    let (found, counters, _) = run(&mut fake, &settings(300, 0), &[syn]).await;
    assert_eq!(found[0].evidence, Evidence::NoReply);
    assert_eq!(Counters::get(&counters.strays), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unroutable_target_is_decided_at_once_without_failing_the_rest() {
    let lost = Target::tcp(host(7), 22);
    let fine = Target::tcp(host(1), 22);
    let mut fake = Fake::answering(&[(fine, answers(Answer::SynAck, 1))]);
    fake.unroutable.push(host(7));
    let (found, _, _) = run(&mut fake, &settings(1000, 2), &[lost, fine]).await;
    assert_eq!(
        found[0].evidence,
        Evidence::Unsendable(io::ErrorKind::NetworkUnreachable)
    );
    assert_eq!(found[0].state, PortState::Filtered);
    assert_eq!(found[1].state, PortState::Open);
    assert_eq!(fake.sent_to(lost), 0);
}

#[tokio::test(start_paused = true)]
async fn a_run_ends_by_its_deadline_when_sends_never_complete() {
    let targets: Vec<Target> = (1..=4).map(|p| Target::tcp(host(1), p)).collect();
    let mut fake = Fake {
        stuck: true,
        ..Fake::default()
    };
    let s = settings(1000, 2);
    let (found, _, elapsed) = run(&mut fake, &s, &targets).await;
    assert!(found.iter().all(|o| o.evidence == Evidence::RunDeadline));
    assert!(found.iter().all(|o| o.state == PortState::Filtered));
    // Three ceilings, the time to send 12 packets, and a second of slack.
    assert!(elapsed <= Duration::from_millis(4001), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_strays_does_not_keep_a_run_alive() {
    let t = Target::tcp(host(1), 22);
    let mut fake = Fake {
        flood: true,
        ..Fake::default()
    };
    let (found, counters, elapsed) = run(&mut fake, &settings(1000, 2), &[t]).await;
    assert_eq!(found[0].evidence, Evidence::NoReply);
    assert_eq!(elapsed, Duration::from_secs(3), "three silent attempts");
    assert!(Counters::get(&counters.strays) > 1000);
}

#[tokio::test(start_paused = true)]
async fn replies_waiting_at_every_read_do_not_keep_a_run_from_reading_the_clock() {
    // Every read finds a stray at once: only the bounds on each turn's reading let the run
    // look at the clock, decide the silent probe and end.
    let t = Target::tcp(host(1), 22);
    let mut fake = Fake {
        deluge: true,
        ..Fake::default()
    };
    let (found, counters, _) = run(&mut fake, &settings(300, 0), &[t]).await;
    assert_eq!(found[0].evidence, Evidence::NoReply);
    assert!(Counters::get(&counters.strays) > 1000);
}

#[tokio::test(start_paused = true)]
async fn silence_costs_the_hosts_round_trip_estimate_not_the_ceiling() {
    // 32 ports of host 1 answer in 1 ms; 50 others, and a host that drops everything, are
    // silent. All are sent at once, before the first answer.
    let answering = answering_ports(32);
    let mut targets: Vec<Target> = answering.iter().map(|(t, _)| *t).collect();
    targets.extend((1..=50).map(|p| Target::tcp(host(1), 1000 + p)));
    targets.extend((1..=50).map(|p| Target::tcp(host(2), p)));
    let mut fake = Fake::answering(&answering);
    let (found, _, elapsed) = run(&mut fake, &settings(1000, 2), &targets).await;
    assert!(found[..32].iter().all(|o| o.state == PortState::Closed));
    assert!(
        found[32..]
            .iter()
            .all(|o| o.evidence == Evidence::NoReply && o.attempts == 2)
    );
    // The floor (the estimate is below it), then twice the floor for the one retry a
    // loss-free network earns: not two ceilings.
    assert_eq!(elapsed, TIMEOUT_FLOOR * 3);
}

#[tokio::test(start_paused = true)]
async fn a_slow_host_is_heard_on_the_retrys_longer_watch_and_keeps_its_own_timeout() {
    // The network answers in 2 ms, host 2 in 250 ms. Host 2's probes first wait the
    // network's estimate (the floor, 100 ms); the retry waits twice that, so the answer to
    // the first attempt still lands. Its silent port's retries, once host 2 has answered,
    // wait host 2's own estimate (3 RTTs), doubled per retry.
    let fast = Target::tcp(host(1), 80);
    let slow = Target::tcp(host(2), 80);
    let slow_silent = Target::tcp(host(2), 81);
    let mut fake = Fake::answering(&[
        (fast, answers(Answer::SynAck, 2)),
        (slow, answers(Answer::SynAck, 250)),
    ]);
    let (found, _, elapsed) = run(&mut fake, &settings(2000, 2), &[fast, slow, slow_silent]).await;
    assert_eq!((found[1].state, found[1].attempts), (PortState::Open, 2));
    assert_eq!(found[1].rtt, Some(Duration::from_millis(250)));
    // Attempt 2 (sent at 100 ms) waits 2 x 750 ms; attempt 3 would wait 4 x 750 ms, but the
    // 2 s ceiling bounds it.
    assert_eq!(
        (found[2].evidence, found[2].attempts),
        (Evidence::NoReply, 3)
    );
    assert_eq!(elapsed, Duration::from_millis(100 + 2 * 750 + 2000));
}

#[tokio::test(start_paused = true)]
async fn packets_the_host_refuses_mid_batch_are_decided_and_the_rest_still_go() {
    let targets: Vec<Target> = (20..26).map(|port| Target::tcp(host(1), port)).collect();
    // Two refusals: the second is met after a partial batch, at an offset into it.
    let refused = [targets[2], targets[4]];
    let answering: Vec<(Target, Behaviour)> = targets
        .iter()
        .filter(|t| !refused.contains(t))
        .map(|t| (*t, answers(Answer::SynAck, 1)))
        .collect();
    let mut fake = Fake::answering(&answering);
    fake.refused.extend(refused);
    let (found, counters, _) = run(&mut fake, &settings(1000, 2), &targets).await;
    for (target, observation) in targets.iter().zip(&found) {
        if refused.contains(target) {
            assert_eq!(
                observation.evidence,
                Evidence::Unsendable(io::ErrorKind::PermissionDenied),
                "{target:?}"
            );
        } else {
            assert_eq!(observation.state, PortState::Open, "{target:?}");
        }
        assert_eq!(fake.sent_to(*target), 1, "{target:?} sent once");
    }
    assert_eq!(Counters::get(&counters.sent), 6);
}
