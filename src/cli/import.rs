//! `sgprobe import`: cloud exports to native TOML.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::sources::native::render;
use crate::sources::{Format, Merged, load};

#[derive(Debug, Args)]
#[command(
    about = "Convert cloud exports to native TOML (on stdout)",
    after_help = after_help()
)]
pub struct ImportArgs {
    /// The export format.
    #[arg(value_parser = format_parser())]
    format: Format,
    /// Export files (JSON), merged in order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The id of the object an export belongs to, where the export does not carry it.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    #[command(flatten)]
    keep_going: super::KeepGoingArg,
}

/// The export formats, named from the enum: a new format is offered (and listed in the help)
/// without editing this file.
fn format_parser() -> impl clap::builder::TypedValueParser<Value = Format> {
    PossibleValuesParser::new(Format::exports().map(Format::name))
        .map(|name| Format::parse(&name).expect("a possible value is a format's name"))
}

fn after_help() -> String {
    let mut help = String::from(
        "Formats and the exports each reads (recognised by shape; raw API responses too):\n",
    );
    for format in Format::exports() {
        help += &format!("  {:<10} {}\n", format.name(), format.reads());
    }
    help + "\nSeveral files of one group (pages) merge in order; a rule that differs between them is an error.\n\n\
Example:\n  tccli vpc DescribeSecurityGroupPolicies --SecurityGroupId sg-2ykq3cxa > sg-web.json\n  \
sgprobe import tencent sg-web.json --id sg-2ykq3cxa > sg-web.toml"
}

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut merged = Merged::default();
    for file in &args.files {
        let inventory = load(
            args.format,
            file,
            args.id.as_deref(),
            args.keep_going.reading(),
        )?;
        merged.add(file, inventory)?;
    }
    out!("{}", render(&merged.inventory))?;
    Ok(ExitCode::SUCCESS)
}
