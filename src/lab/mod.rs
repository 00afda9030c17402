//! The lab: instances and their security groups as network namespaces, veth pairs and
//! nftables rulesets, so real probes meet a real kernel playing the cloud (ARCHITECTURE.md §6).
//!
//! One prober namespace, joined by a veth pair to each target namespace; instance addresses
//! live on the targets' loopback and are routed through one gateway address per target.
//! Nothing touches the host's interfaces or routes, and there is no default route: packets
//! cannot leave. Namespaces go on drop and on SIGINT/SIGTERM; ones left by a killed run
//! (SIGKILL) are swept on the next build.

mod netns;
pub mod nft;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use thiserror::Error;
use tokio::sync::oneshot;

pub use netns::{Netns, interrupted, remove_folder_on_interrupt, stop_on_interrupt};
pub use nft::{HostEffect, HostRule};

use crate::model::{Direction, Inventory, Protocol};
use crate::policy::LinkError;

#[derive(Debug, Error)]
pub enum LabError {
    #[error("the lab needs root (network namespaces, veth pairs and nftables); run it with sudo")]
    NotRoot,
    #[error("cannot {what}: {error}")]
    Io { what: String, error: std::io::Error },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("listener {addr}: {message}")]
    Listener { addr: SocketAddr, message: String },
    #[error("no instance {0:?} in the lab")]
    UnknownInstance(String),
    #[error("the lab needs `{program}`, which is not installed: apt-get install {package}")]
    MissingTool {
        program: &'static str,
        package: &'static str,
    },
}

/// Ports an instance listens on, on every one of its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub instance: String,
    /// `Tcp` accepts connections; `Udp` echoes datagrams back from the probed address.
    pub protocol: Protocol,
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone, Default)]
pub struct LabSpec {
    /// Groups and instances; instance addresses are the lab's own (10.77.x.y, fd77::...).
    pub inventory: Inventory,
    pub listen: Vec<Listen>,
    pub host: Vec<HostRule>,
    /// Packets dropped at random on the way into the targets, in percent.
    pub loss_percent: u8,
    /// One target namespace (one kernel, one ICMP rate limit) per instance; otherwise all
    /// instances share one.
    pub namespace_per_instance: bool,
    /// A second prober behind NAT: a namespace whose probes the prober namespace forwards
    /// with this IPv4 source address (an agent outside the VPC, as the clouds see it).
    pub nat: Option<std::net::Ipv4Addr>,
}

struct Listeners {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

struct Target {
    ns: Netns,
    listeners: Option<Listeners>,
}

/// A running lab. Dropping it stops the listeners and removes every namespace.
pub struct Lab {
    // Field order is drop order: targets (and their listeners) before the probers.
    targets: Vec<Target>,
    behind_nat: Option<Netns>,
    prober: Netns,
    /// Instance name -> (target index, chain index within that target's ruleset).
    placement: BTreeMap<String, (usize, usize)>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("prober", &self.prober.name)
            .field("targets", &self.targets.len())
            .finish()
    }
}

static LABS: AtomicU32 = AtomicU32::new(0);

impl Lab {
    pub fn build(spec: &LabSpec) -> Result<Lab, LabError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(LabError::NotRoot);
        }
        netns::require_tools()?;
        netns::sweep_stale();
        netns::remove_on_interrupt();
        let id = format!(
            "{}{}-{}",
            netns::PREFIX,
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let prober = Netns::create(format!("{id}-p"))?;
        let mut lab = Lab {
            targets: Vec::new(),
            behind_nat: None,
            prober,
            placement: BTreeMap::new(),
        };
        quiet_sysctls(&lab.prober)?;
        // Unprivileged ICMP echo sockets for every group, as distributions allow on hosts: a
        // prober without CAP_NET_RAW can still ping.
        lab.prober.exec(
            "sysctl",
            &["-qw", "net.ipv4.ping_group_range=0 2147483647"],
            None,
        )?;

        let inv = &spec.inventory;
        let groups: Vec<Vec<&crate::model::Instance>> = if spec.namespace_per_instance {
            inv.instances.iter().map(|i| vec![i]).collect()
        } else {
            vec![inv.instances.iter().collect()]
        };
        for (t, instances) in groups.iter().enumerate() {
            let ns = Netns::create(format!("{id}-t{t}"))?;
            quiet_sysctls(&ns)?;
            let (link, peer) = (format!("t{t}"), "p0");
            lab.prober.ip(&[
                "link", "add", &link, "type", "veth", "peer", "name", peer, "netns", &ns.name,
            ])?;
            let (v4_near, v4_far) = (format!("10.76.{t}.1"), format!("10.76.{t}.2"));
            let (v6_near, v6_far) = (format!("fd76:{t:x}::1"), format!("fd76:{t:x}::2"));
            lab.prober
                .ip(&["addr", "add", &format!("{v4_near}/24"), "dev", &link])?;
            lab.prober.ip(&[
                "addr",
                "add",
                &format!("{v6_near}/64"),
                "dev",
                &link,
                "nodad",
            ])?;
            ns.ip(&["addr", "add", &format!("{v4_far}/24"), "dev", peer])?;
            ns.ip(&["addr", "add", &format!("{v6_far}/64"), "dev", peer, "nodad"])?;
            lab.prober.ip(&["link", "set", &link, "up"])?;
            ns.ip(&["link", "set", peer, "up"])?;
            // Packets sent before the carrier is up lose their first neighbour solicitation,
            // and IPv6 retries it only after a second: wait for both ends.
            lab.prober.wait_up(&link)?;
            ns.wait_up(peer)?;
            for (n, instance) in instances.iter().enumerate() {
                lab.placement.insert(instance.name.clone(), (t, n));
                for address in instance.all_addresses() {
                    let (host, via) = match address {
                        IpAddr::V4(_) => (format!("{address}/32"), &v4_far),
                        IpAddr::V6(_) => (format!("{address}/128"), &v6_far),
                    };
                    ns.ip(&["addr", "add", &host, "dev", "lo"])?;
                    lab.prober.ip(&["route", "add", &host, "via", via])?;
                }
            }
            if let [instance] = instances.as_slice() {
                // The namespace is this instance: what it sends leaves from its own address, as
                // on a cloud VM, so its egress rules apply to it.
                for (net, family) in [
                    (format!("10.76.{t}.0/24"), false),
                    (format!("fd76:{t:x}::/64"), true),
                ] {
                    if let Some(own) = instance.addresses.iter().find(|a| a.is_ipv6() == family) {
                        ns.ip(&[
                            "route",
                            "replace",
                            &net,
                            "dev",
                            peer,
                            "src",
                            &own.to_string(),
                        ])?;
                    }
                }
            }
            if let Some(nat) = spec.nat {
                // Replies to the NAT address go back the way probes came.
                ns.ip(&["route", "add", &format!("{nat}/32"), "via", &v4_near])?;
            }
            let ruleset = nft::ruleset(inv, instances, &spec.host, spec.loss_percent)?;
            ns.exec("nft", &["-f", "-"], Some(&ruleset))?;
            let sockets: Vec<(Protocol, SocketAddr)> = spec
                .listen
                .iter()
                .filter(|l| instances.iter().any(|i| i.name == l.instance))
                .flat_map(|l| {
                    let instance = instances
                        .iter()
                        .find(|i| i.name == l.instance)
                        .expect("filtered above");
                    instance.all_addresses().flat_map(move |a| {
                        l.ports
                            .iter()
                            .map(move |p| (l.protocol, SocketAddr::new(*a, *p)))
                    })
                })
                .collect();
            let listeners = if sockets.is_empty() {
                None
            } else {
                Some(listen(&ns, sockets)?)
            };
            lab.targets.push(Target { ns, listeners });
        }
        if let Some(nat) = spec.nat {
            lab.behind_nat = Some(behind_nat(&id, &lab.prober, nat)?);
        }
        Ok(lab)
    }

    /// The namespace behind NAT, if the lab has one: an agent run there is seen by the
    /// targets as `LabSpec::nat`.
    pub fn behind_nat(&self) -> Option<&Netns> {
        self.behind_nat.as_ref()
    }

    /// The namespace probes are sent from.
    pub fn prober(&self) -> &Netns {
        &self.prober
    }

    /// The prober's side of the link to target namespace `index`: interface, address, and the
    /// far end's MAC (the next hop, for tools that build frames themselves, as masscan does).
    pub fn link(&self, index: usize) -> Result<(String, IpAddr, String), LabError> {
        let target = self
            .targets
            .get(index)
            .ok_or_else(|| LabError::UnknownInstance(format!("target namespace {index}")))?;
        let address: IpAddr = format!("10.76.{index}.1").parse().expect("valid literal");
        Ok((format!("t{index}"), address, target.ns.mac("p0")?))
    }

    /// Runs `f` on a thread inside the prober namespace and waits for it.
    pub fn in_prober<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, LabError> {
        let handle = self.prober.spawn(f)?;
        handle.join().map_err(|_| LabError::Io {
            what: "run in the prober namespace".into(),
            error: std::io::Error::other("the thread panicked"),
        })
    }

    /// Opens a port on an instance behind its security groups' back: a rule added by hand.
    pub fn expose(&self, instance: &str, protocol: Protocol, port: u16) -> Result<(), LabError> {
        self.manual(instance, Direction::Inbound, protocol, port, "accept")
    }

    /// Adds a rule by hand before an instance's groups in one direction: `verdict` is
    /// `accept` or `drop`.
    pub fn manual(
        &self,
        instance: &str,
        direction: Direction,
        protocol: Protocol,
        port: u16,
        verdict: &str,
    ) -> Result<(), LabError> {
        let (ns, chain) = self.manual_chain(instance, direction)?;
        let (protocol, port) = (protocol.to_string(), port.to_string());
        ns.exec(
            "nft",
            &[
                "add",
                "rule",
                "inet",
                nft::TABLE,
                &chain,
                "meta",
                "l4proto",
                &protocol,
                "th",
                "dport",
                &port,
                verdict,
            ],
            None,
        )
    }

    /// Makes every TCP and UDP reply from an instance's `port` leave with IP TTL (IPv6: hop
    /// limit) `ttl`: what the prober sees of a box in front of it (a load balancer, a proxy) answering for it.
    pub fn answer_with_ttl(&self, instance: &str, port: u16, ttl: u8) -> Result<(), LabError> {
        let (ns, _) = self.manual_chain(instance, Direction::Inbound)?;
        let table = format!(
            "table inet sgprobe_ttl_{port} {{\n  chain out {{\n    type filter hook output priority 0;\n    meta l4proto {{ tcp, udp }} th sport {port} ip ttl set {ttl}\n    meta l4proto {{ tcp, udp }} th sport {port} ip6 hoplimit set {ttl}\n  }}\n}}\n"
        );
        ns.exec("nft", &["-f", "-"], Some(&table))
    }

    /// Takes back every inbound rule `expose` (or `manual`) added on the instance.
    pub fn unexpose(&self, instance: &str) -> Result<(), LabError> {
        let (ns, chain) = self.manual_chain(instance, Direction::Inbound)?;
        ns.exec("nft", &["flush", "chain", "inet", nft::TABLE, &chain], None)
    }

    /// The namespace an instance lives in: an agent run there runs "on the instance".
    pub fn namespace_of(&self, instance: &str) -> Result<&Netns, LabError> {
        Ok(self.manual_chain(instance, Direction::Inbound)?.0)
    }

    fn manual_chain(
        &self,
        instance: &str,
        direction: Direction,
    ) -> Result<(&Netns, String), LabError> {
        let (t, n) = self
            .placement
            .get(instance)
            .ok_or_else(|| LabError::UnknownInstance(instance.to_string()))?;
        let way = if direction == Direction::Inbound {
            "in"
        } else {
            "out"
        };
        Ok((&self.targets[*t].ns, format!("i{n}_{way}_manual")))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for target in &mut self.targets {
            if let Some(listeners) = target.listeners.take() {
                let _ = listeners.stop.send(());
                let _ = listeners.thread.join();
            }
        }
    }
}

/// A namespace joined to the prober by a veth pair (10.75.0.2, the prober 10.75.0.1), routed
/// to the instances through the prober, which forwards its packets with source `nat`: a
/// router doing NAT. Its only routes lead to the lab's instances.
fn behind_nat(id: &str, prober: &Netns, nat: std::net::Ipv4Addr) -> Result<Netns, LabError> {
    let ns = Netns::create(format!("{id}-n"))?;
    quiet_sysctls(&ns)?;
    prober.ip(&[
        "link", "add", "n0", "type", "veth", "peer", "name", "p0", "netns", &ns.name,
    ])?;
    prober.ip(&["addr", "add", "10.75.0.1/24", "dev", "n0"])?;
    ns.ip(&["addr", "add", "10.75.0.2/24", "dev", "p0"])?;
    prober.ip(&["link", "set", "n0", "up"])?;
    ns.ip(&["link", "set", "p0", "up"])?;
    prober.wait_up("n0")?;
    ns.wait_up("p0")?;
    ns.ip(&["route", "add", "10.77.0.0/16", "via", "10.75.0.1"])?;
    prober.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"], None)?;
    let table = format!(
        "table ip sgprobe_nat {{\n  chain post {{\n    type nat hook postrouting priority srcnat;\n    ip saddr 10.75.0.0/24 snat to {nat}\n  }}\n}}\n"
    );
    prober.exec("nft", &["-f", "-"], Some(&table))?;
    Ok(ns)
}

/// Reverse-path filtering copied from the host would drop replies routed asymmetrically, and
/// duplicate address detection would hold new IPv6 link-local addresses tentative. Set
/// before the veths exist, so they inherit it.
fn quiet_sysctls(ns: &Netns) -> Result<(), LabError> {
    let settings = [
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
    ];
    let mut args = vec!["-qw"];
    args.extend(settings);
    ns.exec("sysctl", &args, None)
}

/// Binds the listeners inside the namespace and serves them on a thread there until stopped:
/// TCP accepts (and closes), UDP echoes back from the probed address (the socket is bound to it).
fn listen(ns: &Netns, sockets: Vec<(Protocol, SocketAddr)>) -> Result<Listeners, LabError> {
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), LabError>>();
    let thread = ns.spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(source) => {
                let _ = ready_tx.send(Err(LabError::Io {
                    what: "start the listener runtime".into(),
                    error: source,
                }));
                return;
            }
        };
        runtime.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (protocol, addr) in sockets {
                let failed = |e: std::io::Error| LabError::Listener {
                    addr,
                    message: e.to_string(),
                };
                if protocol == Protocol::Tcp {
                    match tokio::net::TcpListener::bind(addr).await {
                        Ok(listener) => tasks.spawn(async move {
                            while let Ok((stream, _)) = listener.accept().await {
                                drop(stream);
                            }
                        }),
                        Err(e) => return drop(ready_tx.send(Err(failed(e)))),
                    };
                } else {
                    match tokio::net::UdpSocket::bind(addr).await {
                        Ok(socket) => tasks.spawn(async move {
                            let mut buf = [0u8; 2048];
                            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                                let _ = socket.send_to(&buf[..n], from).await;
                            }
                        }),
                        Err(e) => return drop(ready_tx.send(Err(failed(e)))),
                    };
                }
            }
            let _ = ready_tx.send(Ok(()));
            let _ = stopped.await;
            tasks.abort_all();
        });
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Listeners { stop, thread }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(LabError::Io {
            what: "start listeners".into(),
            error: std::io::Error::other("the listener thread ended"),
        }),
    }
}
