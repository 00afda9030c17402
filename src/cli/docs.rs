//! `sgprobe completions SHELL` and `sgprobe man`: generated from the command line's own
//! definition, so they never fall behind it.

use std::process::ExitCode;

use clap::{Args, CommandFactory};

use super::Cli;

#[derive(Debug, Args)]
#[command(
    about = "Print the shell's completion script",
    after_help = "Examples:\n  sgprobe completions bash > /etc/bash_completion.d/sgprobe\n  sgprobe completions zsh > \"${fpath[1]}/_sgprobe\"\n  sgprobe completions fish > ~/.config/fish/completions/sgprobe.fish"
)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "sgprobe", &mut out);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &out)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
#[command(
    about = "Print the manual page (roff)",
    after_help = "Example:\n  sgprobe man > /usr/local/share/man/man1/sgprobe.1 && man sgprobe"
)]
pub struct ManArgs {}

pub fn man(_: ManArgs) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    std::io::Write::write_all(&mut std::io::stdout().lock(), &out)?;
    Ok(ExitCode::SUCCESS)
}
