//! `dockyard completions SHELL`: completion scripts generated from the
//! command definitions, so they never fall behind. `make install` writes
//! them where bash-completion, zsh and fish look.

use crate::error::{Failure, Result};
use clap::CommandFactory;
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell to complete for
    pub shell: clap_complete::Shell,
}

pub fn run(args: &Args) -> Result<()> {
    let mut cmd = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "dockyard", &mut out);
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| Failure::failed(format!("cannot write the completion script: {e}")))
}
