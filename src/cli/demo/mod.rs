//! `sgprobe demo`: the whole loop on a lab, no cloud account needed.

use std::net::Shutdown;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::lab::{
    HostEffect, HostRule, Lab, LabSpec, Listen, interrupted, remove_folder_on_interrupt,
    stop_on_interrupt,
};
use crate::model::Protocol;
use crate::sources::native;

/// The demo's groups and instances (Tencent semantics), embedded.
const LAB: &str = include_str!("lab.toml");
const SOCKET: &str = "/run/sgprobe/demo.sock";
const METRICS: &str = "127.0.0.1:9477";

#[derive(Debug, Args)]
#[command(
    about = "Build a small lab (needs root), run the agent against it, and show drift as it is found",
    after_help = "The lab: web-1, web-2 and db-1 behind Tencent-style groups in network namespaces of their own.\n\
Two drifts are made on purpose: a rule added by hand opens web-1's TCP 8080, which the groups close \
(exposed), and a host firewall on web-2 drops TCP 443, which the groups open (blocked).\n\n\
Example:\n  sudo sgprobe demo\nthen, in another terminal:\n  sudo sgprobe check web-1 --socket /run/sgprobe/demo.sock\n  curl -s http://127.0.0.1:9477/metrics | grep sgprobe_flow_drift\n\nCtrl-C stops the agent and removes the lab."
)]
pub struct DemoArgs {
    /// Seconds between the agent's cycles.
    #[arg(long, default_value_t = 5)]
    interval: u64,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let inventory = native::parse(Path::new("demo lab.toml"), LAB).context("the embedded lab")?;
    let listen = |instance: &str, ports: &[u16]| Listen {
        instance: instance.into(),
        protocol: Protocol::Tcp,
        ports: ports.to_vec(),
    };
    let spec = LabSpec {
        inventory,
        listen: vec![
            listen("web-1", &[22, 80, 443, 8080]),
            listen("web-2", &[22, 80, 443]),
            listen("db-1", &[22, 3306]),
        ],
        host: vec![HostRule {
            instance: "web-2".into(),
            protocol: Protocol::Tcp,
            port: Some(443),
            effect: HostEffect::Drop,
        }],
        ..LabSpec::default()
    };
    println!(
        "Building the lab: web-1 10.77.1.10, web-2 10.77.1.11, db-1 10.77.1.20 (groups sg-web, sg-db)..."
    );
    let lab = Lab::build(&spec).context("cannot build the lab")?;
    lab.expose("web-1", Protocol::Tcp, 8080)
        .context("cannot add the hand-made rule")?;
    println!(
        "Drift made on purpose: a rule added by hand opens web-1 TCP 8080; a host firewall on web-2 drops TCP 443.\n"
    );

    let dir = std::env::temp_dir().join(format!("sgprobe-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("cannot create a scratch directory")?;
    // Kept while the agent runs (it reloads from it), removed with the lab on Ctrl-C.
    remove_folder_on_interrupt(&dir);
    let config = dir.join("sgprobe.toml");
    let log = dir.join("agent.log");
    let agent = format!(
        "[agent]\ninterval = \"{}s\"\nmetrics_listen = \"{METRICS}\"\ncontrol_socket = \"{SOCKET}\"\ntimeout = \"300ms\"\nretries = 1\n\n",
        args.interval
    );
    std::fs::write(&config, format!("{agent}{LAB}")).context("cannot write the agent's config")?;
    let exe = std::env::current_exe().context("cannot find sgprobe itself")?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.prober().name])
        .arg(&exe)
        .args(["run", "--config"])
        .arg(&config)
        .stderr(std::fs::File::create(&log).context("cannot create the agent's log")?)
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the agent")?;
    stop_on_interrupt(child.id());
    let _forwarder = forward_metrics(&lab).context("cannot forward the metrics port")?;

    println!(
        "The agent runs in the lab's prober namespace (a cycle every {}s; drift is confirmed after 2 agreeing looks, the second seconds after the first).\nIts config: {}; its log: {}",
        args.interval,
        config.display(),
        log.display()
    );
    let started = Instant::now();
    let rows = loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the agent stopped ({status}); its log is {}", log.display());
        }
        let out = Command::new(&exe)
            .args(["drift", "--socket", SOCKET])
            .output();
        // `drift` exits 1 when flows drift: that is what the demo waits for.
        if let Ok(out) = out
            && out.status.code() == Some(1)
            && String::from_utf8_lossy(&out.stdout).lines().count() >= 3
        {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if started.elapsed() > Duration::from_secs(args.interval * 6 + 30) {
            bail!("no drift confirmed after {:?}", started.elapsed());
        }
    };
    println!(
        "\nConfirmed drift after {:.1}s:\n\n{rows}",
        started.elapsed().as_secs_f64()
    );
    println!("Try:");
    println!("  sudo {} check web-1 --socket {SOCKET}", exe.display());
    println!("  sudo {} status --socket {SOCKET}", exe.display());
    println!("  curl -s http://{METRICS}/metrics | grep sgprobe_flow_drift");
    println!("\nCtrl-C stops the agent and removes the lab.");
    // The lab's interrupt handler stops the agent and removes the namespaces; until then, wait.
    let status = child.wait().context("waiting for the agent")?;
    if interrupted() {
        // Ctrl-C: the handler is removing the lab and ends the process itself.
        loop {
            std::thread::park();
        }
    }
    bail!("the agent stopped ({status}); its log is {}", log.display())
}

/// Serves the agent's metrics port on the host's loopback: the agent listens inside the
/// prober namespace, where a browser or curl on the host cannot reach.
fn forward_metrics(lab: &Lab) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let listener =
        std::net::TcpListener::bind(METRICS).with_context(|| format!("{METRICS} is taken"))?;
    let prober = lab.prober().name.clone();
    Ok(std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let prober = prober.clone();
            std::thread::spawn(move || {
                // The upstream socket is made by a thread inside the prober namespace.
                let Ok(netns) = std::fs::File::open(format!("/run/netns/{prober}")) else {
                    return;
                };
                let upstream = std::thread::spawn(move || {
                    nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
                    std::net::TcpStream::connect(METRICS).ok()
                })
                .join()
                .ok()
                .flatten();
                let Some(upstream) = upstream else { return };
                let (Ok(mut client_read), Ok(mut upstream_write)) =
                    (client.try_clone(), upstream.try_clone())
                else {
                    return;
                };
                // Each direction closes its far side when it ends, so an HTTP/1.0 client sees
                // the end of the reply, and both threads and all four descriptors go.
                let copy = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client_read, &mut upstream_write);
                    let _ = upstream_write.shutdown(Shutdown::Write);
                });
                let (mut upstream_read, mut client_write) = (upstream, client);
                let _ = std::io::copy(&mut upstream_read, &mut client_write);
                let _ = client_write.shutdown(Shutdown::Both);
                let _ = copy.join();
            });
        }
    }))
}
