//! `sgprobe probe`: packets only, to the targets given.

use std::io::{IsTerminal, Write as _};
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ipnet::{IpNet, Ipv4AddrRange, Ipv6AddrRange};
use serde::Serialize;

use super::BadInput;
use super::eval::{PortList, parse_spec};
use super::output::table;
use crate::config::{RATE, RETRIES, TIMEOUT};
use crate::engine::{
    Counters, Evidence, Method, Observation, Pacer, ProbeProtocol, Settings, Target, probe,
};
use crate::model::{FlowProtocol, PortState};

/// More addresses than this is a typo, not a target list.
const MAX_ADDRESSES: usize = 65_536;
/// The most probes one run takes (addresses × ports): every port of 64 hosts. Checked before
/// anything is allocated for them.
const MAX_PROBES: usize = 1 << 22;

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let (low, high) = TIMEOUT;
    humantime::parse_duration(text)
        .ok()
        .filter(|d| (low..=high).contains(d))
        .ok_or_else(|| {
            format!(
                "{text:?}: expected a duration from {} to {}, such as 500ms",
                humantime::format_duration(low),
                humantime::format_duration(high)
            )
        })
}

fn parse_rate(text: &str) -> Result<u32, String> {
    let (low, high) = RATE;
    text.parse::<u32>()
        .ok()
        .filter(|r| (low..=high).contains(r))
        .ok_or_else(|| format!("{text:?}: expected packets per second from {low} to {high}"))
}

#[derive(Debug, Args)]
#[command(
    about = "Send real TCP SYN, UDP and ICMP probes and report what the packets show",
    after_help = "States: open (SYN-ACK, UDP reply, echo reply), closed (RST, ICMP port unreachable), \
filtered (ICMP unreachable, or silence for TCP and ICMP), open|filtered (UDP silence).\n\n\
Examples:\n  \
sgprobe probe 10.77.1.5 --ports tcp:22,80,443,udp:53,icmp\n  \
sgprobe probe 10.77.1.0/24 --ports tcp:1-1024 --rate 50000 --json\n  \
sgprobe probe 10.77.1.1-254 fd77:1::5 --ports tcp:22 --timeout 500ms --retries 3\n\n\
TCP uses half-open SYN probes over raw sockets (root or CAP_NET_RAW); without them it falls back to \
connect() and says so (method \"connect\"). A target given twice is probed once; every run ends by \
a deadline computed from its settings."
)]
pub struct ProbeArgs {
    /// Addresses, CIDRs (10.77.1.0/24) or last-octet ranges (10.77.1.1-254).
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
    /// What to probe, as tcp:22,80,udp:53,icmp.
    #[arg(long, short = 'p', value_name = "SPEC", value_parser = parse_spec)]
    ports: PortList,
    /// Packets per second, all protocols together (1 to 1,000,000).
    #[arg(long, default_value_t = 10_000, value_name = "PPS", value_parser = parse_rate)]
    rate: u32,
    /// The longest wait for an answer to one attempt, and the wait before any answer has been
    /// seen. Below it, waits follow each host's round-trip time (at least 100 ms), doubling
    /// on each retry.
    /// From 10ms to 1m.
    #[arg(long, default_value = "1s", value_parser = parse_timeout, value_name = "DUR")]
    timeout: Duration,
    /// Further attempts for silent probes, at most: while every answer so far came first
    /// time, the network shows no loss and one retry is made.
    /// At most 10.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=i64::from(RETRIES)))]
    retries: u32,
    /// Probe TCP with connect() even when raw sockets are available.
    #[arg(long)]
    connect: bool,
    /// One JSON array, one object per probe.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ObservationJson<'a> {
    address: IpAddr,
    protocol: &'static str,
    port: Option<u16>,
    state: PortState,
    reachable: Option<bool>,
    rtt_ms: Option<f64>,
    evidence: &'a Evidence,
    attempts: u32,
    method: Method,
}

pub fn run(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let mut addresses = Vec::new();
    for text in &args.targets {
        let found =
            parse_target(text).map_err(|e| BadInput(format!("bad target {text:?}: {e:#}")))?;
        addresses.extend(found);
        if addresses.len() > MAX_ADDRESSES {
            return Err(BadInput(format!(
                "more than {MAX_ADDRESSES} addresses: split the scan"
            ))
            .into());
        }
    }
    let probes = addresses.len().saturating_mul(args.ports.0.len());
    if probes > MAX_PROBES {
        return Err(BadInput(format!(
            "{} addresses × {} ports are {probes} probes, more than the {MAX_PROBES} one run takes: split the scan",
            addresses.len(),
            args.ports.0.len()
        ))
        .into());
    }
    let targets = targets(&addresses, &args.ports.0).map_err(|e| BadInput(format!("{e:#}")))?;
    let settings = Settings {
        rate: args.rate,
        timeout: args.timeout,
        retries: args.retries,
        force_connect: args.connect,
    };
    let counters = Arc::new(Counters::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let started = std::time::Instant::now();
    let report = runtime.block_on(async {
        let progress = (std::io::stderr().is_terminal() && targets.len() > 1000)
            .then(|| tokio::spawn(show_progress(counters.clone(), targets.len())));
        let report = probe(
            &settings,
            &Pacer::new(settings.rate),
            &targets,
            counters.clone(),
        )
        .await;
        if let Some(progress) = progress {
            progress.abort();
            eprint!("\r\x1b[K");
        }
        report
    })?;
    for warning in &report.warnings {
        eprintln!("sgprobe: warning: {warning}");
    }
    let dropped = Counters::get(&counters.dropped);
    if dropped > 0 {
        eprintln!(
            "sgprobe: warning: the kernel dropped {dropped} replies before sgprobe read them (receive buffer full): some ports may read filtered; lower --rate"
        );
    }
    if args.json {
        let json: Vec<ObservationJson> = report.observations.iter().map(to_json).collect();
        outln!("{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        print_table(&report.observations, started.elapsed())?;
        let (duplicates, strays) = (
            Counters::get(&counters.duplicates),
            Counters::get(&counters.strays),
        );
        if duplicates + strays > 0 {
            outln!(
                "{duplicates} duplicate or late replies and {strays} replies that were not ours were ignored"
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(o: &Observation) -> ObservationJson<'_> {
    ObservationJson {
        address: o.target.addr,
        protocol: label(o.target),
        port: o.target.port,
        state: o.state,
        reachable: o.state.reachable(),
        rtt_ms: o.rtt.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
        evidence: &o.evidence,
        attempts: o.attempts,
        method: o.method,
    }
}

fn label(target: Target) -> &'static str {
    match target.protocol {
        ProbeProtocol::Tcp => "tcp",
        ProbeProtocol::Udp => "udp",
        ProbeProtocol::Icmp if target.addr.is_ipv6() => "icmpv6",
        ProbeProtocol::Icmp => "icmp",
    }
}

fn print_table(observations: &[Observation], elapsed: Duration) -> std::io::Result<()> {
    let mut out = table(&[
        "ADDRESS", "PORT", "STATE", "RTT", "EVIDENCE", "ATTEMPTS", "METHOD",
    ]);
    for o in observations {
        let port = match o.target.port {
            Some(port) => format!("{}:{port}", label(o.target).to_uppercase()),
            None => label(o.target).to_uppercase(),
        };
        let rtt = o.rtt.map_or("-".to_string(), |d| {
            format!("{:.2} ms", d.as_secs_f64() * 1e3)
        });
        let method = serde_json::to_value(o.method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.add_row(vec![
            o.target.addr.to_string(),
            port,
            o.state.to_string(),
            rtt,
            o.evidence.to_string(),
            o.attempts.to_string(),
            method,
        ]);
    }
    outln!("{out}")?;
    let count = |state| observations.iter().filter(|o| o.state == state).count();
    let unknown = match count(PortState::Unknown) {
        0 => String::new(),
        n => format!(", {n} unknown (not probed)"),
    };
    outln!(
        "\n{} probes in {:.2} s: {} open, {} closed, {} filtered, {} open|filtered{unknown}",
        observations.len(),
        elapsed.as_secs_f64(),
        count(PortState::Open),
        count(PortState::Closed),
        count(PortState::Filtered),
        count(PortState::OpenFiltered)
    )
}

async fn show_progress(counters: Arc<Counters>, total: usize) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let sent = Counters::get(&counters.sent);
        let answered = Counters::get(&counters.answered);
        eprint!("\r\x1b[Ksent {sent} probes for {total} targets, {answered} answered");
        let _ = std::io::stderr().flush();
    }
}

/// Every (address, spec) pair as an engine target; `all` is no probe.
fn targets(addresses: &[IpAddr], specs: &[crate::model::FlowSpec]) -> anyhow::Result<Vec<Target>> {
    let mut out = Vec::with_capacity(addresses.len() * specs.len());
    for addr in addresses {
        for spec in specs {
            let protocol = match spec.protocol {
                FlowProtocol::Tcp => ProbeProtocol::Tcp,
                FlowProtocol::Udp => ProbeProtocol::Udp,
                FlowProtocol::Icmp => ProbeProtocol::Icmp,
                FlowProtocol::All | FlowProtocol::IcmpMessage { .. } | FlowProtocol::Ip(_) => {
                    bail!(
                        "{spec} is no probe: a probe tells TCP and UDP ports and ICMP echo (icmp); `sgprobe eval` answers for the rest"
                    )
                }
            };
            out.push(Target {
                addr: *addr,
                protocol,
                port: spec.port,
            });
        }
    }
    Ok(out)
}

/// An address, a CIDR (every address in it), or a last-octet range `10.77.1.1-254`.
fn parse_target(text: &str) -> anyhow::Result<Vec<IpAddr>> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(vec![addr]);
    }
    if let Ok(net) = text.parse::<IpNet>() {
        let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
        if host_bits > 16 {
            bail!("{net} holds more than {MAX_ADDRESSES} addresses");
        }
        return Ok(match net.trunc() {
            IpNet::V4(n) => Ipv4AddrRange::new(n.network(), n.broadcast())
                .map(IpAddr::V4)
                .collect(),
            IpNet::V6(n) => Ipv6AddrRange::new(n.network(), n.broadcast())
                .map(IpAddr::V6)
                .collect(),
        });
    }
    if let Some((first, last)) = text.rsplit_once('-')
        && let (Ok(std::net::IpAddr::V4(first)), Ok(last)) =
            (first.parse::<IpAddr>(), last.parse::<u8>())
    {
        let [a, b, c, start] = first.octets();
        if start > last {
            bail!("the range ends ({last}) before it starts ({start})");
        }
        return Ok((start..=last).map(|d| IpAddr::from([a, b, c, d])).collect());
    }
    bail!("expected an address, a CIDR such as 10.77.1.0/24, or a range such as 10.77.1.1-254")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_addresses_cidrs_and_ranges() {
        let a = |s: &str| s.parse::<IpAddr>().expect("address");
        assert_eq!(
            parse_target("10.77.1.5").expect("address"),
            [a("10.77.1.5")]
        );
        assert_eq!(
            parse_target("10.77.1.1-3").expect("range"),
            [a("10.77.1.1"), a("10.77.1.2"), a("10.77.1.3")]
        );
        let cidr = parse_target("10.77.1.0/30").expect("cidr");
        assert_eq!(
            cidr,
            [
                a("10.77.1.0"),
                a("10.77.1.1"),
                a("10.77.1.2"),
                a("10.77.1.3")
            ],
            "every address, as nmap does"
        );
        assert_eq!(
            parse_target("10.77.1.9/32").expect("host"),
            [a("10.77.1.9")]
        );
        assert_eq!(parse_target("fd77::/126").expect("v6").len(), 4);
        assert!(parse_target("10.0.0.0/8").is_err(), "too many");
        assert!(parse_target("10.77.1.9-3").is_err());
        assert!(parse_target("web-1").is_err());
    }
}
