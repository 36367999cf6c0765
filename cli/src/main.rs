//! `dockyard`: the admin's command. One subcommand per job, each a variant
//! of [`Command`] with its own module: install, new, check, import, status,
//! verify, destroy, env, completions.

mod check;
mod completions;
mod confwrite;
mod destroy;
mod env;
mod error;
mod import;
mod install;
mod new;
mod probe;
mod status;
mod verify;

use clap::{Parser, Subcommand};
use error::{EXIT_CODES_HELP, TOP_EXIT_CODES_HELP};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "dockyard",
    version,
    about = "Manage Dockyard: many isolated Docker daemons on one host",
    after_help = TOP_EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fetch, verify and lay out Docker and sysbox binaries in the versioned store
    #[command(after_help = EXIT_CODES_HELP, long_about = install::LONG_ABOUT)]
    Install(install::Args),
    /// Write a new instance's conf with networks nothing else uses
    #[command(after_help = new::EXIT_CODES_HELP)]
    New(new::Args),
    /// Validate confs exactly as the generator does
    #[command(after_help = check::EXIT_CODES_HELP)]
    Check(check::Args),
    /// Convert a dockyard.env of the bash tool into a conf, without running it
    #[command(after_help = import::EXIT_CODES_HELP)]
    Import(import::Args),
    /// Print a shell completion script
    Completions(completions::Args),
    /// Show each instance: unit, socket, bridge, firewall rules, containers, Docker version
    #[command(after_help = status::EXIT_CODES_HELP)]
    Status(status::Args),
    /// Smoke-test an instance: API, socket permissions, outbound NAT, a container run
    #[command(after_help = verify::EXIT_CODES_HELP)]
    Verify(verify::Args),
    /// Stop an instance and remove everything of it (data unless --keep-data)
    #[command(after_help = destroy::EXIT_CODES_HELP)]
    Destroy(destroy::Args),
    /// The known instance names, one a line (for shell completion)
    #[command(hide = true)]
    InstanceNames,
    /// Print DOCKER_HOST and a PATH with the instance's own docker CLI, for eval
    #[command(after_help = env::EXIT_CODES_HELP)]
    Env(env::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Install(args) => install::run(&args),
        Command::New(args) => new::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Completions(args) => completions::run(&args),
        Command::Status(args) => match status::run(&args) {
            Ok(code) => return code,
            Err(f) => Err(f),
        },
        Command::Verify(args) => verify::run(&args),
        Command::Destroy(args) => destroy::run(&args),
        Command::InstanceNames => completions::print_names(),
        Command::Env(args) => env::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("dockyard: error: {failure}");
            ExitCode::from(failure.exit as u8)
        }
    }
}
