//! sgprobe against nmap and masscan, in one lab, in one run: wall time, probes/s, peak RSS
//! and accuracy against the lab's truth. Run with `bench/run.sh` (root).
//!
//! Every packet stays inside namespaces this program creates; every tool run is bounded by
//! `timeout`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use sgprobe::lab::{HostEffect, HostRule, Lab, LabSpec, Listen};
use sgprobe::model::Protocol;
use sgprobe::sources::native;

/// A port's truth: dropped by the groups, or else open if something listens, else closed.
fn truth_of(dropped: bool, listening: bool) -> Truth {
    match (dropped, listening) {
        (true, _) => Truth::Filtered,
        (false, true) => Truth::Open,
        (false, false) => Truth::Closed,
    }
}

/// The state a port is in, as the lab built it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Truth {
    Open,
    Closed,
    Filtered,
}

struct Workload {
    name: String,
    spec: LabSpec,
    /// (address, port or 0 for ICMP) -> truth.
    truth: BTreeMap<(IpAddr, u16), Truth>,
    sgprobe: Vec<String>,
    nmap: Vec<String>,
    masscan: Vec<String>,
}

struct Run {
    tool: &'static str,
    seconds: f64,
    rss_kib: u64,
    /// (address, port) -> state the tool reported; ports it did not report are absent.
    found: BTreeMap<(IpAddr, u16), Truth>,
    /// The state of a host's ports the tool summarised rather than listed (nmap's extraports).
    rest: BTreeMap<IpAddr, Truth>,
    /// Why the tool failed, if it did: its last line of error output.
    failed: Option<String>,
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the benchmarks build a lab: run bench/run.sh as root");
        std::process::exit(2);
    }
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut report = String::new();
    let workloads = [false, true].into_iter().flat_map(|v6| {
        [
            one_host_all_ports(v6),
            one_host_dropping(v6),
            hosts_by_100_ports(v6),
            hosts_mostly_silent(v6),
            udp_hosts(v6),
            echo_hosts(v6),
        ]
    });
    for workload in workloads {
        if filter
            .as_deref()
            .is_some_and(|f| !workload.name.contains(f))
        {
            continue;
        }
        let lab = Lab::build(&workload.spec).expect("the lab builds");
        // The previous lab's namespaces are torn down by kernel workers: let them finish
        // before anything is timed.
        std::thread::sleep(std::time::Duration::from_secs(2));
        let runs: Vec<Run> = [
            ("sgprobe", &workload.sgprobe),
            ("nmap", &workload.nmap),
            ("masscan", &workload.masscan),
        ]
        .into_iter()
        .filter(|(_, args)| !args.is_empty())
        .map(|(tool, args)| run(&lab, tool, &with_adapter(&lab, tool, args)))
        .collect();
        report.push_str(&table(&workload, &runs));
        drop(lab);
    }
    if filter.as_deref().is_none_or(|f| "rate".contains(f)) {
        report.push_str(&rate_sweep());
    }
    if filter.as_deref().is_none_or(|f| "agent".contains(f)) {
        report.push_str(&agent_cycle_and_rate());
        report.push_str(&agent_memory());
        report.push_str(&agent_big_export());
    }
    println!("{report}");
}

/// The agent's config for `instances`, with `extra` keys in `[agent]`.
fn agent_config(dir: &Path, port: u16, extra: &str, inventory: &str) -> std::path::PathBuf {
    let path = dir.join("sgprobe.toml");
    let text = format!(
        "[agent]\nmetrics_listen = \"127.0.0.1:{port}\"\ncontrol_socket = \"{}\"\n{extra}\n{inventory}",
        dir.join("sgprobe.sock").display()
    );
    std::fs::write(&path, text).expect("write the config");
    path
}

/// `sgprobe run` in the prober namespace, stopped by PID when dropped.
struct Agent(std::process::Child);

impl Agent {
    fn start(lab: &Lab, config: &Path) -> Agent {
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.prober().name])
            .arg(env!("CARGO_BIN_EXE_sgprobe"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the agent starts");
        Agent(child)
    }

    /// `GET /v1/status` over the control socket, once it answers.
    fn status(socket: &Path) -> Option<serde_json::Value> {
        use std::io::{Read, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .ok()?;
        stream
            .write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).ok()?;
        serde_json::from_str(reply.split("\r\n\r\n").nth(1)?).ok()
    }

    /// Waits (at most `limit`) until the agent has completed `cycles` cycles.
    fn wait_cycles(socket: &Path, cycles: u64, limit: std::time::Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            if let Some(status) = Self::status(socket)
                && status["cycles"].as_u64() >= Some(cycles)
            {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "the agent did not complete {cycles} cycles"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// (current, peak) resident memory in KiB, from /proc.
    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("the agent runs");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

/// Probes the target namespace of `instance` has received so far: SYNs, echo requests and
/// UDP datagrams, counted by an nftables table of the benchmark's own (the RSTs the prober's
/// kernel sends after each SYN-ACK are not probes).
fn probes_received(lab: &Lab, instance: &str) -> u64 {
    let ns = &lab.namespace_of(instance).expect("placed").name;
    let nft = |args: &str| {
        Command::new("ip")
            .args(["netns", "exec", ns, "nft"])
            .args(args.split(' '))
            .output()
            .expect("nft runs")
    };
    let listed = nft("list table inet sgprobe_bench_count");
    if !listed.status.success() {
        for rule in [
            "add table inet sgprobe_bench_count",
            "add chain inet sgprobe_bench_count c { type filter hook prerouting priority -400 ; }",
            "add rule inet sgprobe_bench_count c tcp flags & (syn|ack|rst) == syn counter",
            "add rule inet sgprobe_bench_count c meta l4proto udp counter",
            "add rule inet sgprobe_bench_count c icmp type echo-request counter",
            "add rule inet sgprobe_bench_count c icmpv6 type echo-request counter",
        ] {
            assert!(nft(rule).status.success(), "nft {rule}");
        }
        return 0;
    }
    let text = String::from_utf8_lossy(&listed.stdout);
    text.split("packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// 508 instances behind a group that accepts TCP 22, 80, 443 and ICMP: of the common set,
/// TCP 20, 21 and 3389 meet silence. One agent cycle over them, against nmap scanning the
/// same flows; then the agent's rate, counted in the target namespace while a cycle and
/// two on-demand checks share it.
fn agent_cycle_and_rate() -> String {
    let group = "[[group]]\nid = \"sg-web\"\ncloud = \"aws\"\n[[group.ingress]]\naction = \"accept\"\nprotocol = \"tcp\"\nports = \"22,80,443\"\npeer = \"all\"\n[[group.ingress]]\naction = \"accept\"\nprotocol = \"icmp\"\npeer = \"all\"\n[[group.egress]]\naction = \"accept\"\npeer = \"all\"\n";
    let mut inventory = group.to_string();
    let mut listen = Vec::new();
    for net in [6, 7] {
        for host in 1..=254u32 {
            let name = format!("a{net}-{host}");
            inventory.push_str(&instance_toml(&name, &address(false, net, host), "sg-web"));
            listen.push(Listen {
                instance: name,
                protocol: Protocol::Tcp,
                ports: vec![22, 80],
            });
        }
    }
    let (_, spec) = workload(String::new(), inventory.clone(), listen, Vec::new(), false);
    let lab = Lab::build(&spec).expect("the lab builds");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("sgprobe.sock");
    let mut out = String::from(
        "\nAgent: one cycle over 508 instances planned from the common set (ICMP, TCP 20, 21, 22, 80, 443, 3389, and the ports at the edges of the group's rules); TCP 20, 21 and 3389 meet silence\n",
    );
    let config = agent_config(
        dir.path(),
        19590,
        "interval = \"2s\"\ntimeout = \"500ms\"\nrate = 20000",
        &inventory,
    );
    let agent = Agent::start(&lab, &config);
    let status = Agent::wait_cycles(&socket, 3, std::time::Duration::from_secs(60));
    let cycle = status["cycle_seconds"].as_f64().unwrap_or(f64::NAN);
    let (flows, drifting) = (
        status["flows"].as_u64().unwrap_or(0),
        status["drifting"].as_u64().unwrap_or(0),
    );
    let (rss, _) = agent.rss_kib();
    drop(agent);
    let hosts: Vec<String> = [6, 7]
        .into_iter()
        .flat_map(|net| host_args(false, net, 254, false))
        .collect();
    let nmap = run(
        &lab,
        "nmap",
        &[
            strings(&[
                "-sS",
                "-PE",
                "-n",
                "-T4",
                "--min-rate",
                "10000",
                "-p",
                "20,21,22,80,443,3389",
                "-oX",
                "-",
            ]),
            hosts,
        ]
        .concat(),
    );
    let _ = writeln!(
        out,
        "| tool | wall s | flows | accuracy | RSS MiB | vs sgprobe (time) |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    let _ = writeln!(
        out,
        "| sgprobe agent (rate 20,000) | {cycle:.2} (cycle_seconds, 3rd cycle) | {flows} | {:.2}% (flows without drift) | {:.1} | 1.00x |",
        100.0 * (flows - drifting) as f64 / flows.max(1) as f64,
        rss as f64 / 1024.0
    );
    match &nmap.failed {
        Some(reason) => {
            let _ = writeln!(out, "| nmap | failed: {reason} | | | | |");
        }
        None => {
            let _ = writeln!(
                out,
                "| nmap -sS -PE | {:.2} (wall, process) | {} | | {:.1} | {:.2}x |",
                nmap.seconds,
                nmap.found.len(),
                nmap.rss_kib as f64 / 1024.0,
                nmap.seconds / cycle
            );
        }
    }

    // The rate as a ceiling: a 2,000 pps agent mid-cycle, and two checks of 400 ports each
    // asked over its socket at the same time, all counted where they arrive.
    let rate = 2000u64;
    let config = agent_config(
        dir.path(),
        19591,
        &format!("interval = \"1s\"\ntimeout = \"300ms\"\nrate = {rate}"),
        &inventory,
    );
    let agent = Agent::start(&lab, &config);
    Agent::wait_cycles(&socket, 1, std::time::Duration::from_secs(60));
    let window = std::time::Duration::from_secs(4);
    probes_received(&lab, "a6-1");
    let before = probes_received(&lab, "a6-1");
    let started = Instant::now();
    let checkers: Vec<std::thread::JoinHandle<u32>> = ["a6-10", "a7-20"]
        .into_iter()
        .map(|instance| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut checks = 0;
                while started.elapsed() < window {
                    let ok = Command::new(env!("CARGO_BIN_EXE_sgprobe"))
                        .args(["check", instance, "--ports", "tcp:1000-1399", "--socket"])
                        .arg(&socket)
                        .stdout(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    checks += u32::from(ok);
                }
                checks
            })
        })
        .collect();
    let checks: u32 = checkers.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    let elapsed = started.elapsed().as_secs_f64();
    let packets = probes_received(&lab, "a6-1") - before;
    drop(agent);
    let _ = writeln!(
        out,
        "\nRate ceiling: agent rate {rate} pps, a cycle running and {checks} on-demand checks of 400 ports completed beside it in {elapsed:.1} s: {packets} probes reached the target namespace, {:.0} pps ({:.2}x the rate)",
        packets as f64 / elapsed,
        packets as f64 / elapsed / rate as f64
    );
    out
}

/// The agent's memory with about 100,000 planned flows (254 instances x 403 ports), the
/// series ceiling at its default.
fn agent_memory() -> String {
    let mut inventory = groups("");
    for host in 1..=254u32 {
        inventory.push_str(&instance_toml(
            &format!("m{host}"),
            &address(false, 8, host),
            "sg",
        ));
        inventory.push_str("ports = \"tcp:1-400\"\n");
    }
    let (_, spec) = workload(
        String::new(),
        inventory.clone(),
        Vec::new(),
        Vec::new(),
        false,
    );
    let lab = Lab::build(&spec).expect("the lab builds");
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("sgprobe.sock");
    let config = agent_config(
        dir.path(),
        19592,
        "interval = \"5s\"\nrate = 200000",
        &inventory,
    );
    let agent = Agent::start(&lab, &config);
    let status = Agent::wait_cycles(&socket, 2, std::time::Duration::from_secs(120));
    let (rss, peak) = agent.rss_kib();
    format!(
        "\nAgent memory: {} planned flows, after {} cycles: RSS {:.1} MiB, peak {:.1} MiB (cycle {:.2} s)\n",
        status["flows"],
        status["cycles"],
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        status["cycle_seconds"].as_f64().unwrap_or(f64::NAN)
    )
}

fn run(lab: &Lab, tool: &'static str, args: &[String]) -> Run {
    let program = if tool == "sgprobe" {
        env!("CARGO_BIN_EXE_sgprobe").to_string()
    } else {
        tool.to_string()
    };
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args([
            "-f",
            "%M",
            "timeout",
            "300",
            "ip",
            "netns",
            "exec",
            &lab.prober().name,
            &program,
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!(
            "--- {tool} stdout (head)\n{}\n--- {tool} stderr (tail)\n{}",
            stdout.chars().take(1500).collect::<String>(),
            stderr.lines().rev().take(5).collect::<Vec<_>>().join("\n")
        );
    }
    // GNU time's line comes last, but may share it with a tool's unterminated status line.
    let rss_kib = stderr
        .split_whitespace()
        .last()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let (found, rest) = match tool {
        "sgprobe" => (parse_sgprobe(&stdout), BTreeMap::new()),
        "nmap" => parse_nmap(&stdout),
        _ => (parse_masscan(&stdout), BTreeMap::new()),
    };
    let failed = (!output.status.success()).then(|| {
        let last = stderr.lines().rev().find(|l| {
            !l.trim().is_empty()
                && !l.starts_with("Command exited")
                && l.trim().parse::<u64>().is_err()
        });
        last.unwrap_or("").trim().to_string()
    });
    Run {
        tool,
        seconds,
        rss_kib,
        found,
        rest,
        failed,
    }
}

/// masscan builds frames itself: with no default route it must be told the interface, its
/// address and the next hop's MAC.
fn with_adapter(lab: &Lab, tool: &str, args: &[String]) -> Vec<String> {
    let mut args = args.to_vec();
    if tool == "masscan" {
        let (interface, address, mac) = lab.link(0).expect("the lab has a target");
        args.extend([
            "--adapter".into(),
            interface,
            "--adapter-ip".into(),
            address.to_string(),
            "--router-mac".into(),
            mac,
        ]);
    }
    args
}

fn table(workload: &Workload, runs: &[Run]) -> String {
    let total = workload.truth.len();
    let open = workload
        .truth
        .values()
        .filter(|t| **t == Truth::Open)
        .count();
    let mut out = format!("\n{} ({total} probes, {open} open)\n", workload.name);
    let _ = writeln!(
        out,
        "| tool | wall s | probes/s | peak RSS MiB | accuracy | open found | vs sgprobe (time) |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |");
    let base = runs.first().map_or(1.0, |r| r.seconds);
    for run in runs {
        if let Some(reason) = &run.failed {
            let _ = writeln!(out, "| {} | failed: {reason} | | | | | |", run.tool);
            continue;
        }
        let correct = correct(workload, run);
        let open_found = workload
            .truth
            .iter()
            .filter(|(k, t)| **t == Truth::Open && run.found.get(k) == Some(&Truth::Open))
            .count();
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.0} | {:.1} | {:.2}% | {open_found}/{open} | {:.2}x |",
            run.tool,
            run.seconds,
            total as f64 / run.seconds,
            run.rss_kib as f64 / 1024.0,
            100.0 * correct as f64 / total as f64,
            run.seconds / base
        );
    }
    out
}

/// How many of the workload's probes the run answered as the lab's truth has them.
fn correct(workload: &Workload, run: &Run) -> usize {
    // A tool that reports only open ports (masscan) is scored on open vs not open.
    let reports_closed = run.found.values().any(|s| *s != Truth::Open);
    let seen = |key: &(IpAddr, u16)| run.found.get(key).or_else(|| run.rest.get(&key.0)).copied();
    workload
        .truth
        .iter()
        .filter(|(key, truth)| match seen(key) {
            Some(seen) => {
                seen == **truth
                    || (!reports_closed && **truth != Truth::Open && seen != Truth::Open)
            }
            None => !reports_closed && **truth != Truth::Open,
        })
        .count()
}

/// The rate setting against what is delivered: one host's 65,535 TCP ports, every one
/// answering (so a run ends with its last send), at rising `--rate`, counted where they land
/// (nftables in the target namespace). Delivered = probes counted / wall time, process start
/// included, so it understates the send rate a little.
fn rate_sweep() -> String {
    let workload = one_host_all_ports(false);
    let lab = Lab::build(&workload.spec).expect("the lab builds");
    std::thread::sleep(std::time::Duration::from_secs(2));
    probes_received(&lab, "h");
    let host = address(false, 1, 5);
    let mut out = format!(
        "\nRate delivered: {} ({} probes), sgprobe --timeout 500ms --retries 0\n",
        workload.name,
        workload.truth.len()
    );
    let _ = writeln!(
        out,
        "| --rate | wall s | probes counted at the target | delivered probes/s | delivered / rate | accuracy |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for rate in [50_000u32, 100_000, 150_000, 200_000, 300_000] {
        let before = probes_received(&lab, "h");
        let rate_arg = rate.to_string();
        let args = strings(&[
            "probe",
            &host,
            "--ports",
            "1-65535",
            "--rate",
            &rate_arg,
            "--timeout",
            "500ms",
            "--retries",
            "0",
            "--json",
        ]);
        let run = run(&lab, "sgprobe", &args);
        let packets = probes_received(&lab, "h") - before;
        let delivered = packets as f64 / run.seconds;
        let _ = writeln!(
            out,
            "| {rate} | {:.2} | {packets} | {delivered:.0} | {:.2} | {:.2}% |",
            run.seconds,
            delivered / f64::from(rate),
            100.0 * correct(&workload, &run) as f64 / workload.truth.len() as f64
        );
    }
    out
}

fn parse_sgprobe(stdout: &str) -> BTreeMap<(IpAddr, u16), Truth> {
    let rows: serde_json::Value = serde_json::from_str(stdout).unwrap_or(serde_json::Value::Null);
    let mut found = BTreeMap::new();
    for row in rows.as_array().into_iter().flatten() {
        let (Some(addr), port) = (
            row["address"].as_str().and_then(|a| a.parse().ok()),
            row["port"].as_u64().unwrap_or(0) as u16,
        ) else {
            continue;
        };
        let state = match row["state"].as_str() {
            Some("open") => Truth::Open,
            Some("closed") => Truth::Closed,
            _ => Truth::Filtered,
        };
        found.insert((addr, port), state);
    }
    found
}

/// nmap's XML: listed ports, plus `extraports` for the rest of each host when only one kind
/// of state was summarised.
fn parse_nmap(stdout: &str) -> (BTreeMap<(IpAddr, u16), Truth>, BTreeMap<IpAddr, Truth>) {
    let mut found = BTreeMap::new();
    let mut rest = BTreeMap::new();
    // Each chunk up to `</host>` holds one whole host element.
    for host in stdout.split("</host>") {
        let Some(addr) = attr(host, "<address addr=").and_then(|a| a.parse::<IpAddr>().ok()) else {
            continue;
        };
        let up = host.contains("<status state=\"up\"");
        for port in host.split("<port ").skip(1) {
            let number: u16 = attr(port, "portid=")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let state = match attr(port, "<state state=").as_deref() {
                Some("open") => Truth::Open,
                Some("closed") => Truth::Closed,
                _ => Truth::Filtered,
            };
            found.insert((addr, number), state);
        }
        if !host.contains("<ports>") && !host.contains("<port ") {
            // A ping scan: the host itself.
            found.insert((addr, 0), if up { Truth::Open } else { Truth::Filtered });
        }
        if let Some(extra) = attr(host, "<extraports state=") {
            rest.insert(
                addr,
                if extra == "closed" {
                    Truth::Closed
                } else {
                    Truth::Filtered
                },
            );
        }
    }
    (found, rest)
}

fn attr(text: &str, key: &str) -> Option<String> {
    let start = text.find(key)? + key.len() + 1;
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_string())
}

/// masscan's list output: `open tcp 22 10.77.1.5 1700000000`, open ports only.
fn parse_masscan(stdout: &str) -> BTreeMap<(IpAddr, u16), Truth> {
    let mut found = BTreeMap::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let ["open", _protocol, port, addr, ..] = fields.as_slice()
            && let (Ok(port), Ok(addr)) = (port.parse::<u16>(), addr.parse::<IpAddr>())
        {
            found.insert((addr, port), Truth::Open);
        }
    }
    found
}

fn groups(extra: &str) -> String {
    format!(
        "[[group]]\nid = \"sg\"\ncloud = \"aws\"\n[[group.ingress]]\naction = \"accept\"\npeer = \"all\"\n[[group.egress]]\naction = \"accept\"\npeer = \"all\"\n{extra}"
    )
}

fn workload(
    name: String,
    toml: String,
    listen: Vec<Listen>,
    host: Vec<HostRule>,
    per_instance: bool,
) -> (Workload, LabSpec) {
    let inventory = native::parse(Path::new("bench.toml"), &toml).expect("valid");
    let spec = LabSpec {
        inventory,
        listen,
        host,
        namespace_per_instance: per_instance,
        ..LabSpec::default()
    };
    let w = Workload {
        name,
        spec: spec.clone(),
        truth: BTreeMap::new(),
        sgprobe: Vec::new(),
        nmap: Vec::new(),
        masscan: Vec::new(),
    };
    (w, spec)
}

/// Deterministic "random" open ports: a multiplicative hash, so every run builds the same lab.
fn scattered(count: usize, modulo: u32, salt: u32) -> BTreeSet<u16> {
    (0..count as u32)
        .map(|i| {
            (1 + (i
                .wrapping_mul(2_654_435_761)
                .wrapping_add(salt.wrapping_mul(40_503))
                % modulo)) as u16
        })
        .collect()
}

/// One `[[instance]]` of a workload's native TOML.
fn instance_toml(name: &str, address: &str, group: &str) -> String {
    format!(
        "[[instance]]\nname = \"{name}\"\naddresses = [\"{address}\"]\nsecurity_groups = [\"{group}\"]\n"
    )
}

/// An instance address: 10.77.NET.HOST, or fd77:NET::HOST.
fn address(v6: bool, net: u32, host: u32) -> String {
    if v6 {
        format!("fd77:{net:x}::{host:x}")
    } else {
        format!("10.77.{net}.{host}")
    }
}

fn family(v6: bool) -> &'static str {
    if v6 { "IPv6" } else { "IPv4" }
}

/// The targets of hosts 1..=count on NET: a range where every tool reads one, else a list.
fn host_args(v6: bool, net: u32, count: u32, masscan: bool) -> Vec<String> {
    match (v6, masscan) {
        (false, false) => vec![format!("10.77.{net}.1-{count}")],
        (false, true) => vec![format!("10.77.{net}.1-10.77.{net}.{count}")],
        (true, _) => (1..=count).map(|h| address(true, net, h)).collect(),
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The three tools on a TCP scan of `ports` (`1-100`): nmap `-sS -T4 --min-rate 10000`,
/// masscan at 200,000 packets/s (IPv4 only: Debian's masscan 1.3.2 takes no IPv6 targets),
/// sgprobe with `options`. `targets` as sgprobe and nmap spell them, then as masscan does.
fn tcp_scan(
    w: &mut Workload,
    v6: bool,
    ports: &str,
    options: &[&str],
    (targets, masscan_targets): (Vec<String>, Vec<String>),
) {
    let spec = format!("tcp:{ports}");
    w.sgprobe = [
        strings(&["probe", "--ports", &spec]),
        strings(options),
        strings(&["--json"]),
        targets.clone(),
    ]
    .concat();
    w.nmap = [
        strings(&[
            "-sS",
            "-n",
            "-Pn",
            "-T4",
            "--min-rate",
            "10000",
            "-p",
            ports,
        ]),
        strings(&["-oX", "-"]),
        targets,
    ]
    .concat();
    w.masscan = [
        strings(&[
            &format!("-p{ports}"),
            "--rate",
            "200000",
            "--wait",
            "1",
            "-oL",
            "-",
        ]),
        masscan_targets,
    ]
    .concat();
    if v6 {
        w.nmap.insert(0, "-6".into());
        w.masscan.clear();
    }
}

fn one_host_all_ports(v6: bool) -> Workload {
    let open = scattered(100, 65_535, 1);
    let host = address(v6, 1, 5);
    let toml = groups(&instance_toml("h", &host, "sg"));
    let listen = vec![Listen {
        instance: "h".into(),
        protocol: Protocol::Tcp,
        ports: open.iter().copied().collect(),
    }];
    let (mut w, _) = workload(
        format!("1 host x 65,535 TCP ports, {}", family(v6)),
        toml,
        listen,
        Vec::new(),
        false,
    );
    let addr: IpAddr = host.parse().expect("address");
    for port in 1..=65_535u16 {
        w.truth
            .insert((addr, port), truth_of(false, open.contains(&port)));
    }
    tcp_scan(
        &mut w,
        v6,
        "1-65535",
        &["--rate", "200000", "--timeout", "500ms", "--retries", "1"],
        (vec![host.clone()], vec![host]),
    );
    w
}

fn hosts_by_100_ports(v6: bool) -> Workload {
    let mut toml = groups("");
    let mut listen = Vec::new();
    let mut truth = BTreeMap::new();
    for host in 1..=254u32 {
        toml.push_str(&instance_toml(
            &format!("h{host}"),
            &address(v6, 2, host),
            "sg",
        ));
        let open = scattered(4, 100, host);
        listen.push(Listen {
            instance: format!("h{host}"),
            protocol: Protocol::Tcp,
            ports: open.iter().copied().collect(),
        });
        let addr: IpAddr = address(v6, 2, host).parse().expect("address");
        for port in 1..=100u16 {
            truth.insert((addr, port), truth_of(false, open.contains(&port)));
        }
    }
    let (mut w, _) = workload(
        format!("254 hosts x 100 TCP ports, {}", family(v6)),
        toml,
        listen,
        Vec::new(),
        false,
    );
    w.truth = truth;
    tcp_scan(
        &mut w,
        v6,
        "1-100",
        &["--rate", "200000", "--timeout", "500ms", "--retries", "1"],
        (host_args(v6, 2, 254, false), host_args(v6, 2, 254, true)),
    );
    w
}

fn udp_hosts(v6: bool) -> Workload {
    // Each host its own kernel (its own ICMP rate limit), as in a cloud.
    let ports = [53u16, 67, 123, 161, 500, 1194, 4500, 5353];
    let mut extra = String::from(
        "[[group]]\nid = \"sg-half\"\ncloud = \"aws\"\n[[group.ingress]]\naction = \"accept\"\nprotocol = \"udp\"\nports = \"53-500\"\npeer = \"all\"\n[[group.egress]]\naction = \"accept\"\npeer = \"all\"\n",
    );
    let mut listen = Vec::new();
    let mut truth = BTreeMap::new();
    for host in 1..=16u32 {
        extra.push_str(&instance_toml(
            &format!("u{host}"),
            &address(v6, 3, host),
            "sg-half",
        ));
        let open: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|p| (u32::from(*p) + host) % 3 == 0)
            .collect();
        listen.push(Listen {
            instance: format!("u{host}"),
            protocol: Protocol::Udp,
            ports: open.clone(),
        });
        let addr: IpAddr = address(v6, 3, host).parse().expect("address");
        for port in ports {
            let state = truth_of(port > 500, open.contains(&port));
            truth.insert((addr, port), state);
        }
    }
    let (mut w, _) = workload(
        format!("16 hosts x 8 UDP ports, {}", family(v6)),
        extra,
        listen,
        Vec::new(),
        true,
    );
    w.truth = truth;
    let list = ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    w.sgprobe = [
        strings(&[
            "probe",
            "--ports",
            &format!("udp:{list}"),
            "--timeout",
            "500ms",
            "--retries",
            "1",
            "--json",
        ]),
        host_args(v6, 3, 16, false),
    ]
    .concat();
    w.nmap = [
        strings(&["-sU", "-n", "-Pn", "-T4", "-p", &list, "-oX", "-"]),
        host_args(v6, 3, 16, false),
    ]
    .concat();
    if v6 {
        w.nmap.insert(0, "-6".into());
    }
    // masscan is left out: one adapter, and these hosts sit behind 16 links.
    w
}

/// Silence dominates, as behind a security group: one host whose group accepts TCP 1-45535
/// only, so 20,000 of its ports are dropped. sgprobe runs with its default timeout and
/// retries (1 s, 2): silence costs the adaptive wait, not three seconds.
fn one_host_dropping(v6: bool) -> Workload {
    let open: BTreeSet<u16> = scattered(100, 45_535, 3);
    let host = address(v6, 1, 6);
    let toml = format!(
        "[[group]]\nid = \"sg-low\"\ncloud = \"aws\"\n[[group.ingress]]\naction = \"accept\"\nprotocol = \"tcp\"\nports = \"1-45535\"\npeer = \"all\"\n[[group.egress]]\naction = \"accept\"\npeer = \"all\"\n{}",
        instance_toml("d", &host, "sg-low")
    );
    let listen = vec![Listen {
        instance: "d".into(),
        protocol: Protocol::Tcp,
        ports: open.iter().copied().collect(),
    }];
    let (mut w, _) = workload(
        format!("1 host x 65,535 TCP ports, 20,000 dropped, {}", family(v6)),
        toml,
        listen,
        Vec::new(),
        false,
    );
    let addr: IpAddr = host.parse().expect("address");
    for port in 1..=65_535u16 {
        w.truth
            .insert((addr, port), truth_of(port > 45_535, open.contains(&port)));
    }
    // sgprobe with its default timeout and retries.
    tcp_scan(
        &mut w,
        v6,
        "1-65535",
        &["--rate", "200000"],
        (vec![host.clone()], vec![host]),
    );
    w
}

/// 254 hosts x 100 ports where most probes meet silence: three hosts in four accept TCP
/// 1-30 only, every fourth drops everything (19,700 of 25,400 probes go unanswered).
fn hosts_mostly_silent(v6: bool) -> Workload {
    let mut toml = String::from(
        "[[group]]\nid = \"sg-30\"\ncloud = \"aws\"\n[[group.ingress]]\naction = \"accept\"\nprotocol = \"tcp\"\nports = \"1-30\"\npeer = \"all\"\n[[group.egress]]\naction = \"accept\"\npeer = \"all\"\n\
[[group]]\nid = \"sg-none\"\ncloud = \"aws\"\n[[group.ingress]]\naction = \"accept\"\nprotocol = \"udp\"\nports = \"9\"\npeer = \"all\"\n[[group.egress]]\naction = \"accept\"\npeer = \"all\"\n",
    );
    let mut listen = Vec::new();
    let mut truth = BTreeMap::new();
    for host in 1..=254u32 {
        let dark = host % 4 == 0;
        toml.push_str(&instance_toml(
            &format!("s{host}"),
            &address(v6, 5, host),
            if dark { "sg-none" } else { "sg-30" },
        ));
        let open = scattered(4, 30, host);
        if !dark {
            listen.push(Listen {
                instance: format!("s{host}"),
                protocol: Protocol::Tcp,
                ports: open.iter().copied().collect(),
            });
        }
        let addr: IpAddr = address(v6, 5, host).parse().expect("address");
        for port in 1..=100u16 {
            let state = truth_of(dark || port > 30, open.contains(&port));
            truth.insert((addr, port), state);
        }
    }
    let (mut w, _) = workload(
        format!("254 hosts x 100 TCP ports, mostly silent, {}", family(v6)),
        toml,
        listen,
        Vec::new(),
        false,
    );
    w.truth = truth;
    tcp_scan(
        &mut w,
        v6,
        "1-100",
        &["--rate", "200000"],
        (host_args(v6, 5, 254, false), host_args(v6, 5, 254, true)),
    );
    w
}

fn echo_hosts(v6: bool) -> Workload {
    let mut toml = groups("");
    let mut host_rules = Vec::new();
    let mut truth = BTreeMap::new();
    for host in 1..=254u32 {
        toml.push_str(&instance_toml(
            &format!("e{host}"),
            &address(v6, 4, host),
            "sg",
        ));
        let silent = host % 5 < 2;
        if silent {
            host_rules.push(HostRule {
                instance: format!("e{host}"),
                protocol: Protocol::Icmp,
                port: None,
                effect: HostEffect::Drop,
            });
        }
        truth.insert(
            (address(v6, 4, host).parse().expect("address"), 0),
            if silent { Truth::Filtered } else { Truth::Open },
        );
    }
    let (mut w, _) = workload(
        format!("ICMP echo to 254 hosts, 102 silent, {}", family(v6)),
        toml,
        Vec::new(),
        host_rules,
        false,
    );
    w.truth = truth;
    w.sgprobe = [
        strings(&["probe", "--ports", "icmp", "--json"]),
        host_args(v6, 4, 254, false),
    ]
    .concat();
    w.nmap = [
        strings(&["-sn", "-PE", "-n", "-T4", "--min-rate", "10000", "-oX", "-"]),
        host_args(v6, 4, 254, false),
    ]
    .concat();
    if v6 {
        w.nmap.insert(0, "-6".into());
    }
    w
}

/// An AWS describe-security-groups export of about 50 MB (22,000 groups), as `aws ec2
/// describe-security-groups` prints it.
fn big_aws_export() -> String {
    let mut groups = Vec::new();
    for i in 0..22_000u32 {
        let permissions: Vec<serde_json::Value> = [22u16, 80, 443, 8080, 9000]
            .iter()
            .map(|p| {
                serde_json::json!({
                    "IpProtocol": "tcp", "FromPort": p, "ToPort": p,
                    "IpRanges": [{"CidrIp": format!("10.{}.{}.0/24", i % 256, p % 256), "Description": "x"}],
                    "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []
                })
            })
            .collect();
        groups.push(serde_json::json!({
            "GroupId": format!("sg-{i:08x}"), "GroupName": format!("g{i}"),
            "Description": "generated", "VpcId": "vpc-1", "OwnerId": "123456789012",
            "IpPermissions": permissions,
            "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}],
            "Tags": [{"Key": "team", "Value": "web"}]
        }));
    }
    serde_json::to_string_pretty(&serde_json::json!({ "SecurityGroups": groups }))
        .expect("serialises")
}

/// The agent with a 50 MB export: peak RSS while it loads, and RSS after a reload to a small
/// config.
fn agent_big_export() -> String {
    let instance = instance_toml("web", &address(false, 9, 10), "sg-00000000");
    let small = format!(
        "{}{instance}",
        groups("").replace("id = \"sg\"", "id = \"sg-00000000\"")
    );
    let (_, spec) = workload(String::new(), small.clone(), Vec::new(), Vec::new(), false);
    let lab = Lab::build(&spec).expect("the lab builds");
    let dir = tempfile::tempdir().expect("temp dir");
    let export = big_aws_export();
    std::fs::write(dir.path().join("sg.json"), &export).expect("write the export");
    let socket = dir.path().join("sgprobe.sock");
    let big = format!("[[source]]\nformat = \"aws\"\npath = \"sg.json\"\n\n{instance}");
    let config = agent_config(dir.path(), 19593, "interval = \"5s\"", &big);
    let agent = Agent::start(&lab, &config);
    Agent::wait_cycles(&socket, 1, std::time::Duration::from_secs(120));
    let (_, peak) = agent.rss_kib();
    agent_config(dir.path(), 19593, "interval = \"5s\"", &small);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.0.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    );
    let cycles = Agent::status(&socket)
        .and_then(|s| s["cycles"].as_u64())
        .unwrap_or(0);
    Agent::wait_cycles(&socket, cycles + 2, std::time::Duration::from_secs(60));
    let (after, _) = agent.rss_kib();
    format!(
        "\nAgent with a {:.1} MB AWS export (22,000 groups): peak RSS {:.1} MiB ({:.1}x the file); after a reload to a one-group config: RSS {:.1} MiB\n",
        export.len() as f64 / 1e6,
        peak as f64 / 1024.0,
        peak as f64 * 1024.0 / export.len() as f64,
        after as f64 / 1024.0
    )
}
