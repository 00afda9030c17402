//! The command line: clap definitions, one file per subcommand. The binary's edge: errors here
//! are `anyhow` with context.

/// `println!` (`out!`: `print!`) that gives the write's error back instead of panicking: a
/// reader that went away (`sgprobe eval … | head -1`) ends the command quietly (see
/// `closed_pipe`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod agent;
mod demo;
mod docs;
mod eval;
mod import;
mod lint;
mod output;
mod probe;
mod remedy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a finding that reaches `--fail-on` (lint), or a flow that drifts (check,
/// drift).
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code for bad input: config, exports, arguments.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for a failure while running: a port in use, a socket error, an agent unreachable.
pub const EXIT_RUNTIME: u8 = 3;

/// An error in what the user gave (an argument, a name, a request the agent refused), as
/// opposed to one met while running: the two exit with different codes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Whether the error is our reader going away (`| head`): then the command ends quietly, as
/// command-line tools do. Only a write of our own output fails bare (`outln!` and `?`); a
/// broken pipe deeper in an error (the agent's socket, say) is a failure like any other.
pub fn closed_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The exit code an error means: bad input (2) if anything in its chain is the user's input,
/// else a runtime failure (3).
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let input = error.chain().any(|e| {
        e.is::<BadInput>()
            || e.is::<crate::config::ConfigError>()
            || e.is::<crate::sources::SourceError>()
            || e.is::<crate::policy::LinkError>()
    });
    if input { EXIT_BAD_INPUT } else { EXIT_RUNTIME }
}

#[derive(Debug, Parser)]
#[command(
    name = "sgprobe",
    version = env!("SGPROBE_VERSION"),
    about = "Checks that cloud security groups do what they say",
    long_about = "sgprobe reads an instance's security-group rules, predicts for each flow whether it \
is open (and which rule decides), and reports every mismatch with what packets show.\n\n\
Exit codes: 0 success, 1 lint findings at --fail-on severity or a drifting flow (check, drift), 2 bad input or usage (arguments, \
config, exports), 3 a failure while running (a port in use, a socket error, the agent unreachable)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Eval(eval::EvalArgs),
    Lint(lint::LintArgs),
    Import(import::ImportArgs),
    Probe(probe::ProbeArgs),
    Run(agent::RunArgs),
    Check(agent::CheckArgs),
    /// Show the running agent's status.
    #[command(after_help = "Example:\n  sgprobe status --socket /run/sgprobe/sgprobe.sock")]
    Status(agent::QueryArgs),
    /// List the flows whose drift the running agent has confirmed.
    #[command(after_help = "Example:\n  sgprobe drift --json")]
    Drift(agent::QueryArgs),
    Demo(demo::DemoArgs),
    Completions(docs::CompletionsArgs),
    Man(docs::ManArgs),
}

/// Where the config comes from, shared by the subcommands that read one.
#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The config file (TOML): agent settings, [[source]] exports, [[instance]] targets.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
}

/// Whether an export with rules sgprobe cannot read is refused (the default of the commands
/// a person runs) or read around.
#[derive(Debug, clap::Args)]
pub struct KeepGoingArg {
    /// Load an export even where some of its groups or rules cannot be read: the rest is
    /// read, each unreadable part may match anything, and flows that depend on one are
    /// `unknown`. Without it, the first unreadable field is an error naming file and path.
    #[arg(long)]
    pub keep_going: bool,
}

impl KeepGoingArg {
    pub fn reading(&self) -> crate::sources::Reading {
        if self.keep_going {
            crate::sources::Reading::KeepGoing
        } else {
            crate::sources::Reading::Strict
        }
    }
}

/// Runs a parsed command line; the caller prints the error and exits with `exit_code`.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Eval(args) => eval::run(args),
        Command::Lint(args) => lint::run(args),
        Command::Import(args) => import::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Run(args) => agent::run(args),
        Command::Check(args) => agent::check(args),
        Command::Status(args) => agent::status(args),
        Command::Drift(args) => agent::drift(args),
        Command::Demo(args) => demo::run(args),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
