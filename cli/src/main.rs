//! `dockyard`: the admin's command. One subcommand per job; today only
//! `install` (issue 4). The others (new, check, status, …; issue 5) become
//! further variants of [`Command`], each in its own module.

mod error;
mod install;

use clap::{Parser, Subcommand};
use error::EXIT_CODES_HELP;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "dockyard",
    version,
    about = "Manage Dockyard: many isolated Docker daemons on one host",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fetch, verify and lay out Docker and sysbox binaries in the versioned store
    #[command(after_help = EXIT_CODES_HELP)]
    Install(install::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Install(args) => install::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("dockyard: error: {failure}");
            ExitCode::from(failure.exit as u8)
        }
    }
}
