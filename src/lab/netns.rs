//! Named network namespaces: created, entered by a thread, removed on drop.

use std::fs::File;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use nix::sched::{CloneFlags, setns};

use super::LabError;

/// A network namespace this process created; deleted (with its interfaces) on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

/// Namespaces are named `sgp-<pid>-<lab>-<role>`, so a later run can tell which ones a dead
/// process left behind.
pub const PREFIX: &str = "sgp-";

/// Namespaces alive in this process, for the interrupt handler: Drop does not run on Ctrl-C.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<String>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Processes this process started inside a namespace, stopped before the namespaces go: a
/// process keeps a deleted namespace alive.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Folders removed with the lab on an interrupt: the demo's config and its agent's log.
static FOLDERS: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

/// Registers a folder to be removed on SIGINT or SIGTERM, after the children have stopped.
pub fn remove_folder_on_interrupt(folder: &std::path::Path) {
    FOLDERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(folder.to_path_buf());
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether SIGINT or SIGTERM arrived: the handler is removing the lab and will end the process.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Registers a child (by PID) to be stopped on SIGINT or SIGTERM.
pub fn stop_on_interrupt(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(pid);
}

/// On SIGINT or SIGTERM, stops registered children, removes every namespace still alive and
/// the registered folders, then exits with 130. Installed
/// once per process; a process that has its own handler keeps it (and cleans up itself).
pub fn remove_on_interrupt() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            for pid in CHILDREN
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .drain(..)
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
            for name in live().drain(..) {
                let _ = run("ip", &["netns", "del", &name], None);
            }
            for folder in FOLDERS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .drain(..)
            {
                let _ = std::fs::remove_dir_all(folder);
            }
            std::process::exit(130);
        });
    });
}

impl Netns {
    pub fn create(name: String) -> Result<Netns, LabError> {
        run("ip", &["netns", "add", &name], None)?;
        live().push(name.clone());
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ARGS...`
    pub fn ip(&self, args: &[&str]) -> Result<(), LabError> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all, None)
    }

    /// Waits (up to 5 s) until an interface's operational state is UP.
    pub fn wait_up(&self, interface: &str) -> Result<(), LabError> {
        for _ in 0..100 {
            let output = Command::new("ip")
                .args(["-n", &self.name, "-o", "link", "show", "dev", interface])
                .output()
                .map_err(|source| LabError::Io {
                    what: format!("ask {interface}'s state"),
                    error: source,
                })?;
            if String::from_utf8_lossy(&output.stdout).contains(" state UP ") {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(LabError::Command {
            command: format!("ip -n {} link show dev {interface}", self.name),
            stderr: "not UP after 5 s".into(),
        })
    }

    /// An interface's MAC address.
    pub fn mac(&self, interface: &str) -> Result<String, LabError> {
        let output = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show", "dev", interface])
            .output()
            .map_err(|source| LabError::Io {
                what: format!("ask {interface}'s address"),
                error: source,
            })?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .map(str::to_string)
            .ok_or_else(|| LabError::Command {
                command: format!("ip -n {} link show dev {interface}", self.name),
                stderr: "no MAC address".into(),
            })
    }

    /// Runs a program inside the namespace, feeding it `stdin`.
    pub fn exec(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), LabError> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all, stdin)
    }

    /// Runs `f` on a new thread inside the namespace: sockets it opens belong to the namespace
    /// and stay there whichever thread uses them later.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<T>, LabError> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|source| LabError::Io {
            what: format!("open {path}"),
            error: source,
        })?;
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(format!("netns {name}"))
            .spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns into {name}: {e}"));
                f()
            })
            .map_err(|source| LabError::Io {
                what: "spawn a thread".into(),
                error: source,
            })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        live().retain(|n| *n != self.name);
        if let Err(e) = run("ip", &["netns", "del", &self.name], None) {
            eprintln!("sgprobe lab: {e}");
        }
    }
}

pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), LabError> {
    let command_line = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Io {
            what: format!("run {command_line}"),
            error: source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|source| LabError::Io {
                what: format!("feed {command_line}"),
                error: source,
            })?;
    }
    let output = child.wait_with_output().map_err(|source| LabError::Io {
        what: format!("wait for {command_line}"),
        error: source,
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: command_line,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// The programs the lab runs, and the Debian package of each.
const TOOLS: [(&str, &str); 3] = [
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("sysctl", "procps"),
];

/// Fails, naming the package, if a program the lab runs is missing: a fresh machine may
/// have no nftables, and `ip netns exec` would only say that an exec failed.
pub fn require_tools() -> Result<(), LabError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for (program, package) in TOOLS {
        if !std::env::split_paths(&path).any(|dir| dir.join(program).is_file()) {
            return Err(LabError::MissingTool { program, package });
        }
    }
    Ok(())
}

/// Removes namespaces left by processes that are gone (killed before their drop ran).
pub fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", &name], None);
        }
    }
}
