//! A 53 MB export, loaded and reloaded twelve times by an agent held to the unit's
//! `MemoryMax=256M`: a kernel memory limit where this machine lets a test set one (a cgroup),
//! and the agent's peak resident memory measured either way.
//!
//! A test binary of its own: its loads keep both cores busy for a minute and a half, which
//! would skew the timing of the other agent tests if they ran beside it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sgprobe::lab::LabSpec;
use sgprobe::sources::native;

const LIMIT: u64 = 256 << 20;
const GROUPS: usize = 11_000;
const METRICS_PORT: u16 = 19_611;

/// The lab's own instance: one group, one port.
const INVENTORY: &str = "[[group]]\nid = \"sg-web\"\ncloud = \"tencent\"\n[[group.ingress]]\naction = \"accept\"\nprotocol = \"tcp\"\nports = \"22\"\npeer = \"0.0.0.0/0\"\n\n[[instance]]\nname = \"web\"\naddresses = [\"10.77.1.10\"]\nsecurity_groups = [\"sg-web\"]\nserves = \"tcp:22\"\n";

/// `aws ec2 describe-security-groups` output of `GROUPS` groups of 21 ingress rules and one
/// egress rule, each with the fields the CLI prints; the first group has `extra` rules more,
/// so each rewrite is a different export, and its rule count tells which one was loaded.
fn export(extra: usize) -> String {
    let mut text = String::with_capacity(54 << 20);
    text.push_str("{\"SecurityGroups\": [");
    for g in 0..GROUPS {
        if g > 0 {
            text.push_str(", ");
        }
        let rules = 20 + if g == 0 { extra } else { 0 };
        let mut permissions: Vec<String> = (0..rules)
            .map(|r| {
                format!(
                    "{{\"IpProtocol\": \"tcp\", \"FromPort\": {port}, \"ToPort\": {port}, \"IpRanges\": [{{\"CidrIp\": \"10.{}.{}.0/24\", \"Description\": \"service {r} from office network {g}\"}}], \"Ipv6Ranges\": [], \"PrefixListIds\": [], \"UserIdGroupPairs\": []}}",
                    g % 250,
                    r % 250,
                    port = 1000 + r
                )
            })
            .collect();
        permissions.push(format!(
            "{{\"IpProtocol\": \"tcp\", \"FromPort\": 22, \"ToPort\": 22, \"IpRanges\": [], \"Ipv6Ranges\": [], \"PrefixListIds\": [], \"UserIdGroupPairs\": [{{\"GroupId\": \"sg-{:017x}\", \"UserId\": \"123456789012\", \"Description\": \"bastion\"}}]}}",
            (g + 1) % GROUPS
        ));
        text.push_str(&format!(
            "{{\"Description\": \"group {g} managed by terraform\", \"GroupName\": \"group-{g}\", \"GroupId\": \"sg-{g:017x}\", \"OwnerId\": \"123456789012\", \"VpcId\": \"vpc-0123456789abcdef0\", \"IpPermissions\": [{}], \"IpPermissionsEgress\": [{{\"IpProtocol\": \"-1\", \"IpRanges\": [{{\"CidrIp\": \"0.0.0.0/0\"}}], \"Ipv6Ranges\": [], \"PrefixListIds\": [], \"UserIdGroupPairs\": []}}]}}",
            permissions.join(", ")
        ));
    }
    text.push_str("]}\n");
    text
}

/// Rules the agent reads from `export(extra)`.
fn rules(extra: usize) -> usize {
    GROUPS * 22 + extra
}

/// Replaces the export whole (written aside, then renamed), as a tool that saves it should.
fn write_export(path: &Path, extra: usize) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, export(extra)).expect("write the export");
    std::fs::rename(&aside, path).expect("move the export in place");
}

/// A memory cgroup limited to `LIMIT`, removed when dropped (after the agent in it is gone).
/// `None` where this machine lets no test make one (no writable memory controller).
struct MemoryLimit {
    dir: PathBuf,
}

impl MemoryLimit {
    fn new() -> Option<MemoryLimit> {
        let name = format!("sgprobe-test-{}", std::process::id());
        // cgroup v2, then v1's memory hierarchy. The control file must come with the folder:
        // where /sys/fs/cgroup is a plain tmpfs, a folder made there limits nothing.
        for (root, control) in [
            ("/sys/fs/cgroup", "memory.max"),
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes"),
        ] {
            let dir = Path::new(root).join(&name);
            if std::fs::create_dir(&dir).is_err() {
                continue;
            }
            if dir.join(control).exists()
                && std::fs::write(dir.join(control), LIMIT.to_string()).is_ok()
            {
                return Some(MemoryLimit { dir });
            }
            let _ = std::fs::remove_dir(&dir);
        }
        None
    }
}

impl MemoryLimit {
    /// How often the cgroup's charge reached the limit (v2 `memory.events` max, v1
    /// `memory.failcnt`): each time, the kernel reclaimed or refused memory to keep the agent
    /// under it. A peak read against the limit it is capped by could not show that.
    fn limit_reached(&self) -> Option<u64> {
        if let Ok(events) = std::fs::read_to_string(self.dir.join("memory.events")) {
            return events
                .lines()
                .find_map(|l| l.strip_prefix("max "))
                .and_then(|n| n.trim().parse().ok());
        }
        std::fs::read_to_string(self.dir.join("memory.failcnt"))
            .ok()
            .and_then(|n| n.trim().parse().ok())
    }

    /// The most the cgroup has held, as the kernel counts it against the limit (what a
    /// unit's MemoryMax enforces): unlike the agent's VmHWM it leaves out the pages of files
    /// it maps that another cgroup brought in (its own executable, from the build).
    fn peak(&self) -> Option<u64> {
        ["memory.peak", "memory.max_usage_in_bytes"]
            .iter()
            .find_map(|file| std::fs::read_to_string(self.dir.join(file)).ok())
            .and_then(|text| text.trim().parse().ok())
    }
}

impl Drop for MemoryLimit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A field of /proc/PID/status, in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The agent's `sgprobe_source_rules` for the export; `None` until the agent answers.
fn loaded_rules(lab: &sgprobe::lab::Lab) -> Option<usize> {
    let text = lab
        .in_prober(|| {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", METRICS_PORT)).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .ok()?;
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut text = String::new();
            stream.read_to_string(&mut text).ok()?;
            Some(text)
        })
        .ok()??;
    text.lines()
        .find_map(|l| l.strip_prefix("sgprobe_source_rules{source=\"big\"} "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the agent reports `want` rules, failing at once if it died (the kernel's
/// memory limit kills it with SIGKILL).
fn wait_for_rules(lab: &sgprobe::lab::Lab, agent: &mut Child, want: usize, what: &str) {
    common::wait_for(what, Duration::from_secs(120), || {
        if let Ok(Some(status)) = agent.try_wait() {
            panic!("the agent died ({status}) before {what}: past its memory limit?");
        }
        loaded_rules(lab) == Some(want)
    });
}

#[test]
fn a_53_mb_export_loads_and_reloads_twelve_times_within_256_mib() {
    let inventory = native::parse(Path::new("lab.toml"), INVENTORY).expect("valid");
    // Nothing listens on 22, which web serves: the drift the first cycle finds has the
    // export fetched again before it is confirmed, one more load beside the test's own.
    let Some(lab) = common::lab(&LabSpec {
        inventory,
        ..LabSpec::default()
    }) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let export_path = dir.path().join("groups.json");
    write_export(&export_path, 0);
    let size = std::fs::metadata(&export_path).expect("written").len();
    assert!(size > 53_000_000, "the export is the issue's size: {size}");
    let (config, socket) = common::agent_config(
        dir.path(),
        &format!("interval = \"60s\"\nmetrics_listen = \"127.0.0.1:{METRICS_PORT}\""),
        &format!(
            "[[source]]\nname = \"big\"\nformat = \"aws\"\npath = \"{}\"\n\n{INVENTORY}",
            export_path.display()
        ),
    );
    let limit = MemoryLimit::new();
    match &limit {
        Some(limit) => eprintln!("held to {LIMIT} bytes by {}", limit.dir.display()),
        None => eprintln!(
            "no memory cgroup can be made here: the limit is not enforced, the peak is still measured"
        ),
    }
    // The agent joins the cgroup before it starts, so every page it takes is charged there.
    let join = limit.as_ref().map_or(String::new(), |l| {
        format!("echo $$ > {}/cgroup.procs && ", l.dir.display())
    });
    // Outside the namespace: `ip netns exec` mounts a sysfs of its own, without the cgroup.
    let inside = common::agent_command(&lab.prober().name, &config, &[]);
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("{join}exec \"$0\" \"$@\""))
        .arg(inside.get_program())
        .args(inside.get_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut agent = common::start_agent(command, &socket);
    let pid = agent.0[0].id();
    wait_for_rules(&lab, &mut agent.0[0], rules(0), "the first load");
    let first = memory(pid, "VmRSS:");
    for round in 1..=12 {
        write_export(&export_path, round);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP");
        wait_for_rules(&lab, &mut agent.0[0], rules(round), "a reload");
    }
    // The new rule count shows before the old rules are freed and the memory handed back:
    // give that a moment.
    let settled = |rss: u64| rss < first + first / 4;
    let waited = std::time::Instant::now();
    while !settled(memory(pid, "VmRSS:")) && waited.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (after, resident_peak) = (memory(pid, "VmRSS:"), memory(pid, "VmHWM:"));
    let charged_peak = limit.as_ref().and_then(MemoryLimit::peak);
    eprintln!(
        "a {size}-byte export: {} MiB resident after the first load, {} MiB after 12 reloads, peak {} MiB resident, {} MiB charged to the cgroup",
        first >> 20,
        after >> 20,
        resident_peak >> 20,
        charged_peak.map_or("no cgroup: not".to_string(), |p| (p >> 20).to_string())
    );
    // Held to the limit: what the kernel charged. Without a cgroup: the resident peak, which
    // counts more (the executable's pages too).
    let peak = charged_peak.unwrap_or(resident_peak);
    assert!(
        agent.0[0].try_wait().expect("wait").is_none(),
        "the agent runs"
    );
    assert!(peak > 0 && peak < LIMIT, "peak memory {peak} bytes");
    if let Some(limit) = &limit {
        assert_eq!(
            limit.limit_reached(),
            Some(0),
            "the kernel held the agent at its limit: it needed more than {LIMIT} bytes"
        );
    }
    assert!(
        settled(after),
        "reloads give back what they took: {first} bytes after the first load, {after} after 12 reloads"
    );
}
