//! A `[[source]]`: where its rules come from (a file, a command's output, a cloud's API),
//! how often the agent fetches them again, and the fetch itself.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::model::Inventory;
use crate::sources::{Format, MAX_FILE_BYTES, SourceError, read};

/// Where a source's text comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Read again whenever the file changes (checked before every cycle).
    File(PathBuf),
    /// Run every `refresh`, within `timeout`; its stdout is the export.
    Command(Vec<String>),
    /// A native API client, run every `refresh`.
    Api {
        api: Api,
        region: String,
        endpoint: Option<String>,
    },
}

impl Origin {
    /// Fetched again every `refresh` (a command, an API), not when a file changes.
    pub fn is_periodic(&self) -> bool {
        !matches!(self, Origin::File(_))
    }
}

/// The clouds whose API sgprobe reads itself.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum Api {
    Tencent,
    QingCloud,
    /// Only in builds with the `aws-api` feature.
    Aws,
}

crate::model::named_by_variants!(Api);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// How metrics and logs name it: `name`, else the path or the command.
    pub name: String,
    pub format: Format,
    pub origin: Origin,
    pub id: Option<String>,
    /// For a command: how often it runs.
    pub refresh: Duration,
    /// For a command: how long it may run.
    pub timeout: Duration,
}

/// A file's identity, content version and permissions, as cheap to read as a `stat`: the
/// change time moves with every write and every chmod, so a file made readable again is
/// read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
    mode: u32,
    inode: u64,
}

impl Fingerprint {
    pub fn of(file: &Path) -> Option<Fingerprint> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(file).ok()?;
        Some(Fingerprint {
            len: meta.len(),
            modified: meta.modified().ok(),
            changed: (meta.ctime(), meta.ctime_nsec()),
            mode: meta.mode(),
            inode: meta.ino(),
        })
    }
}

impl SourceSpec {
    /// The source's inventory now: the file read, the command run (killed past `timeout`)
    /// and its output read, or the API read. An export's text lives only while it is read.
    pub fn fetch(&self) -> Result<Inventory, SourceError> {
        let export = |text: String| read(self.format, &self.file(), &text, self.id.as_deref());
        let mut inventory = match &self.origin {
            Origin::File(path) => export(crate::sources::read_text(path)?)?,
            Origin::Command(argv) => export(run(&self.name, argv, self.timeout)?)?,
            Origin::Api {
                api,
                region,
                endpoint,
            } => fetch_api(*api, region, endpoint.clone(), self.timeout, self.refresh).map_err(
                |error| SourceError::Api {
                    file: self.file(),
                    source_name: self.name.clone(),
                    error: Box::new(error),
                },
            )?,
        };
        // Settled before it is shared: configs assembled from it hold its groups, not copies.
        inventory.settle();
        Ok(inventory)
    }

    /// Whether `other` fetches the same rules: the same origin, read the same way. Its name,
    /// refresh and timeout may differ.
    pub fn fetches_as(&self, other: &SourceSpec) -> bool {
        (&self.origin, self.format, &self.id) == (&other.origin, other.format, &other.id)
    }

    /// The longest its fetch can take before the fetch's own bounds end it: past this, a
    /// fetch is stuck (the watchdog's business).
    pub fn fetch_bound(&self) -> Duration {
        match &self.origin {
            Origin::File(_) => FILE_READ,
            Origin::Command(_) => self.timeout,
            Origin::Api { .. } => api_deadline(self.timeout, self.refresh),
        }
    }

    /// The file that names this source in errors: the path, or the command as written.
    pub fn file(&self) -> PathBuf {
        match &self.origin {
            Origin::File(path) => path.clone(),
            Origin::Command(argv) => PathBuf::from(format!("`{}`", shown_command(argv))),
            Origin::Api { api, region, .. } => {
                PathBuf::from(format!("api:{}/{region}", api.name()))
            }
        }
    }
}

/// What an API gives: each request within `timeout`, the whole fetch within
/// its deadline and the default limits, and no credential in any error.
fn fetch_api(
    api: Api,
    region: &str,
    endpoint: Option<String>,
    timeout: Duration,
    refresh: Duration,
) -> Result<Inventory, crate::cloudapi::ApiError> {
    use crate::cloudapi::{Budget, qingcloud, tencent};
    let refresh = api_deadline(timeout, refresh);
    match api {
        Api::Tencent => {
            let credentials = tencent::credentials()?;
            tencent::Client {
                credentials: credentials.clone(),
                region: region.to_string(),
                endpoint,
                clock: tencent::now,
                timeout,
                budget: Budget::new(refresh),
            }
            .fetch()
            .map_err(|e| e.redacted(&credentials))
        }
        Api::QingCloud => {
            let credentials = qingcloud::credentials()?;
            qingcloud::Client {
                credentials: credentials.clone(),
                zone: region.to_string(),
                endpoint,
                clock: tencent::now,
                timeout,
                budget: Budget::new(refresh),
            }
            .fetch()
            .map_err(|e| e.redacted(&credentials))
        }
        #[cfg(feature = "aws-api")]
        Api::Aws => crate::cloudapi::aws::fetch(region, endpoint, timeout, refresh),
        // The config refuses `api = "aws"` in a build without the SDK.
        #[cfg(not(feature = "aws-api"))]
        Api::Aws => unreachable!("refused when the config loads"),
    }
}

/// Reads a command's pipe on a thread of its own, which sends what it read when the pipe
/// closes: a process that left the command's group (setsid) and holds the pipe open is
/// waited for only until the command's deadline. Past `cap` it drains the rest, so the
/// command never blocks on a full pipe.
fn read_pipe<R: std::io::Read + Send + 'static>(
    mut pipe: R,
    cap: u64,
) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut text = Vec::new();
        let _ = (&mut pipe).take(cap).read_to_end(&mut text);
        let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        let _ = sender.send(text);
    });
    receiver
}

/// How much of a failing command's stderr its error shows, in characters, from the end.
const STDERR_SHOWN: usize = 1024;

/// The fewest request timeouts a fetch's deadline holds.
const FETCH_TIMEOUTS: u32 = 10;

/// How long an API fetch may take: a fetch slower than its refresh could never keep up, and
/// ten requests' time is the least a short refresh leaves a slow API.
fn api_deadline(timeout: Duration, refresh: Duration) -> Duration {
    refresh.max(timeout * FETCH_TIMEOUTS)
}

/// The longest reading and parsing a file source may take (a regular file of at most 256 MiB).
const FILE_READ: Duration = Duration::from_secs(60);

/// The process groups of the commands sources are running, so that an agent that stops
/// kills them rather than leave them to init.
static RUNNING: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// One command's process group, registered until its command is reaped.
#[derive(Debug)]
struct Running(u32);

/// The agent is stopping: a command started now is killed at once.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Running {
    fn register(pid: u32) -> Running {
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
            kill_group(pid);
        }
        running.push(pid);
        Running(pid)
    }

    /// Kills the group and unregisters it, before its command is reaped: until then the
    /// group's id is the command's and cannot be another's.
    fn end(self) {
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kill_group(self.0);
        running.retain(|pid| *pid != self.0);
    }

    /// Whether the command has exited, leaving it unreaped.
    fn exited(&self) -> nix::Result<bool> {
        use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.0).unwrap_or(i32::MAX));
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        Ok(!matches!(
            waitid(Id::Pid(pid), flags)?,
            WaitStatus::StillAlive
        ))
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Kills every command a source is running, with its children, and any started from now
/// on: the agent is stopping. Under the lock, so that no group is unregistered (and its id
/// freed) meanwhile.
pub fn kill_running_commands() {
    let running = RUNNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
    for pid in running.iter() {
        kill_group(*pid);
    }
}

/// Words that, in an option's or a field's name, say its value is a credential (`sig`: an
/// Azure SAS signature; `pass`: password, passwd, passphrase).
const SECRET_WORDS: [&str; 10] = [
    "token",
    "secret",
    "pass",
    "pwd",
    "key",
    "auth",
    "credential",
    "sig",
    "cookie",
    "bearer",
];

fn names_a_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// Options whose value is a credential whatever they are called: curl's header and user, and
/// the `-p` of database clients.
const SECRET_OPTIONS: [&str; 5] = ["-H", "--header", "-u", "--user", "-p"];

/// A command as errors, logs and a default source name show it: as written, but for what
/// looks like a credential, which reads `<secret>`: the value of an option that names one
/// (`--token X`, `--api-key=X`) or of a header, user or password option (`-H X`, `-uX`), a
/// `NAME=value` whose name names one (also inside an option's value), an `Authorization:`
/// header or bearer token anywhere, a URL's user information and its query values that name
/// one. A script (`sh -c "..."`) is read word by word the same way. A command line is visible
/// to `ps` on the host; logs, metrics and replies need not carry it further.
pub fn shown_command(argv: &[String]) -> String {
    let mut hide_next = false;
    let shown: Vec<String> = argv
        .iter()
        .map(|arg| shown_word(arg, &mut hide_next))
        .collect();
    shown.join(" ")
}

/// One argument (or one word of a script), given whether the option before it takes a
/// credential.
fn shown_word(arg: &str, hide_next: &mut bool) -> String {
    const SECRET: &str = "<secret>";
    if std::mem::take(hide_next) {
        return SECRET.to_string();
    }
    let lower = arg.to_ascii_lowercase();
    if lower.contains("authorization:") || lower.contains("bearer") {
        return SECRET.to_string();
    }
    if arg.split_whitespace().nth(1).is_some() {
        // A script: its words, each judged as an argument.
        let mut inner = false;
        let words: Vec<String> = arg
            .split_whitespace()
            .map(|word| shown_word(word, &mut inner))
            .collect();
        return words.join(" ");
    }
    if arg.starts_with('-') {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg, None),
        };
        // `-uUSER:PASS`, `-pPASS`: a short option with its value joined.
        if let Some(short) = SECRET_OPTIONS
            .iter()
            .find(|o| o.len() == 2 && arg.len() > 2 && arg.starts_with(*o))
        {
            return format!("{short}{SECRET}");
        }
        if names_a_secret(name) || SECRET_OPTIONS.contains(&name) {
            return match value {
                Some(_) => format!("{name}={SECRET}"),
                None => {
                    *hide_next = true;
                    arg.to_string()
                }
            };
        }
        return match value {
            Some(value) => format!("{name}={}", shown_word(value, &mut false)),
            None => arg.to_string(),
        };
    }
    if arg.contains("://") {
        return shown_url(arg);
    }
    match arg.split_once('=') {
        Some((name, _)) if names_a_secret(name) => format!("{name}={SECRET}"),
        _ => arg.to_string(),
    }
}

/// A URL with its user information (a password, or a token given as the user) and the query
/// values that name a credential hidden.
fn shown_url(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://<secret>@{host}{path}"),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if query.is_empty() {
        return base;
    }
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if names_a_secret(name) => format!("{name}=<secret>"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// Runs a command with no stdin, its stdout captured (at most `MAX_FILE_BYTES`), its stderr
/// kept for the error; past `timeout` it is killed. Its credentials are the user's own: the
/// environment and the CLI's profile files, passed through untouched and never logged.
fn run(name: &str, argv: &[String], timeout: Duration) -> Result<String, SourceError> {
    let file = PathBuf::from(format!("`{}`", shown_command(argv)));
    let failed = |message: String| SourceError::Command {
        file: file.clone(),
        source_name: name.to_string(),
        message,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| failed("an empty command".into()))?;
    // In a process group of its own: killed, its children die with it, and no grandchild
    // holding its stdout keeps the readers (and the load) waiting.
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| failed(format!("cannot start: {e}")))?;
    let group = Running::register(child.id());
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    // Readers on their own threads: a full pipe must not stall the child past its deadline.
    let out = read_pipe(stdout, MAX_FILE_BYTES + 1);
    let err = read_pipe(stderr, 64 * 1024);
    let deadline = Instant::now() + timeout;
    loop {
        // Seen exited but not reaped: while it is a zombie its pid, the group's id, cannot be
        // taken by another process, so killing the group reaches only what it left behind.
        match group.exited() {
            Ok(true) => break,
            Ok(false) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(false) | Err(_) => {
                group.end();
                let _ = child.wait();
                return Err(failed(format!(
                    "killed after {}",
                    humantime::format_duration(timeout)
                )));
            }
        }
    }
    group.end();
    let status = child
        .wait()
        .map_err(|e| failed(format!("cannot wait for it: {e}")))?;
    let left = || deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
    let text = out
        .recv_timeout(left())
        .map_err(|_| failed("its output never ended: a process it started holds it open".into()))?;
    let errors = String::from_utf8_lossy(&err.recv_timeout(left()).unwrap_or_default())
        .trim()
        .to_string();
    if !status.success() {
        // Its last lines say why; a CLI's debug output before them may hold its credentials.
        let start = errors
            .char_indices()
            .rev()
            .nth(STDERR_SHOWN - 1)
            .map_or(0, |(at, _)| at);
        return Err(failed(format!(
            "exited with {status}: {}",
            &errors[start..]
        )));
    }
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(failed(format!("printed more than {MAX_FILE_BYTES} bytes")));
    }
    String::from_utf8(text).map_err(|_| failed("printed something other than UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a command source's command printed.
    fn output(source: &SourceSpec) -> Result<String, SourceError> {
        let Origin::Command(argv) = &source.origin else {
            panic!("a command source")
        };
        run(&source.name, argv, source.timeout)
    }

    #[test]
    fn a_command_is_shown_without_what_looks_like_a_credential() {
        let shown =
            |argv: &[&str]| shown_command(&argv.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        assert_eq!(
            shown(&[
                "aws",
                "ec2",
                "describe-security-groups",
                "--region",
                "eu-west-1",
                "--filters",
                "Name=vpc-id,Values=vpc-1"
            ]),
            "aws ec2 describe-security-groups --region eu-west-1 --filters Name=vpc-id,Values=vpc-1",
            "nothing secret: shown as written"
        );
        for (argv, hidden) in [
            (&["tool", "--token", "T1"][..], "T1"),
            (&["tool", "--api-key=T2"], "T2"),
            (
                &["curl", "-H", "Authorization: Bearer T3", "https://x/"],
                "T3",
            ),
            (&["curl", "-u", "me:T4", "https://x/"], "T4"),
            (&["env", "AWS_SECRET_ACCESS_KEY=T5", "aws"], "T5"),
            (&["curl", "https://me:T6@example.com/groups"], "T6"),
            (
                &[
                    "curl",
                    "https://example.com/x?region=a&Signature=T7&X-Amz-Security-Token=T8",
                ],
                "T7",
            ),
            (
                &[
                    "curl",
                    "https://example.com/x?region=a&Signature=T7&X-Amz-Security-Token=T8",
                ],
                "T8",
            ),
            (
                &["sh", "-c", "curl -H 'Authorization: Bearer T9' https://x/"],
                "T9",
            ),
            (
                &["curl", "-HAuthorization: Bearer T10", "https://x/"],
                "T10",
            ),
            (&["curl", "-ume:T11", "https://x/"], "T11"),
            (&["mysql", "-pT12"], "T12"),
            (&["git", "clone", "https://T13@github.com/o/r"], "T13"),
            (
                &[
                    "curl",
                    "https://acct.blob.core.windows.net/c?sv=2024&sig=T14",
                ],
                "T14",
            ),
            (&["curl", "--data=token=T15", "https://x/"], "T15"),
            (&["sh", "-c", "curl -u me:T16 https://x/"], "T16"),
            (&["sh", "-c", "curl https://me:T17@x/"], "T17"),
        ] {
            let text = shown(argv);
            assert!(!text.contains(hidden), "{hidden} in {text}");
            assert!(text.contains("<secret>"), "{text}");
        }
        assert_eq!(
            shown(&["curl", "https://example.com/x?region=a&Signature=T7"]),
            "curl https://example.com/x?region=a&Signature=<secret>"
        );
    }

    fn command(argv: &[&str], timeout: Duration) -> SourceSpec {
        SourceSpec {
            name: "t".into(),
            format: Format::Aws,
            origin: Origin::Command(argv.iter().map(|a| a.to_string()).collect()),
            id: None,
            refresh: Duration::from_secs(60),
            timeout,
        }
    }

    #[test]
    fn what_a_command_leaves_behind_dies_with_its_group_and_holds_up_nothing() {
        // A grandchild keeps the command's stdout open after the command has printed and
        // exited: the fetch ends with the command, and the grandchild with its group.
        let dir = tempfile::tempdir().expect("temp dir");
        let pidfile = dir.path().join("sleeper.pid");
        let script = format!("sleep 300 & echo $! > {}; echo '{{}}'", pidfile.display());
        let left = command(&["sh", "-c", &script], Duration::from_secs(60));
        assert_eq!(output(&left).expect("runs").trim(), "{}");
        let sleeper = std::fs::read_to_string(&pidfile).expect("pid");
        // SIGKILL takes effect as the kernel next schedules it: look for up to 2 s.
        let running = || {
            let state = std::fs::read_to_string(format!("/proc/{}/stat", sleeper.trim()))
                .unwrap_or_default();
            state
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .is_some_and(|s| s != 'Z')
        };
        let looked = Instant::now();
        while running() && looked.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!running(), "the grandchild outlived the fetch");
    }

    #[test]
    fn a_command_gives_its_stdout_and_fails_by_name() {
        let ok = command(&["sh", "-c", "echo '{\"a\": 1}'"], Duration::from_secs(5));
        assert_eq!(output(&ok).expect("runs").trim(), "{\"a\": 1}");
        // Its output is an export, read into the model by the source's format.
        let export = command(
            &[
                "sh",
                "-c",
                "echo '{\"SecurityGroups\": [{\"GroupId\": \"sg-1\", \"IpPermissions\": [], \"IpPermissionsEgress\": []}]}'",
            ],
            Duration::from_secs(5),
        );
        let inventory = export.fetch().expect("an AWS export");
        assert_eq!(
            inventory.groups.keys().map(|k| &**k).collect::<Vec<_>>(),
            ["sg-1"]
        );
        let failing = command(
            &["sh", "-c", "echo denied >&2; exit 3"],
            Duration::from_secs(5),
        );
        let error = failing.fetch().expect_err("fails").to_string();
        assert!(
            error.contains("exited with exit status: 3: denied"),
            "{error}"
        );
        let missing = command(&["/nonexistent/aws"], Duration::from_secs(5));
        assert!(
            missing
                .fetch()
                .expect_err("no program")
                .to_string()
                .contains("cannot start")
        );
    }

    #[test]
    fn a_command_past_its_timeout_is_killed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let marker = dir.path().join("finished");
        let script = format!("sleep 1; touch {}", marker.display());
        let slow = command(&["sh", "-c", &script], Duration::from_millis(200));
        let error = slow.fetch().expect_err("times out").to_string();
        assert!(error.contains("killed after 200ms"), "{error}");
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!marker.exists(), "the command ran on after its timeout");
    }
}
