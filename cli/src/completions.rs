//! `dockyard completions SHELL`: completion scripts generated from the
//! command definitions, so they never fall behind. `make install` writes
//! them where bash-completion, zsh and fish look.
//!
//! Instance names cannot be in a generated script: they are whatever the
//! host has when the admin presses Tab. Each script gets a small hook
//! that, for the NAME of `status`, `verify`, `destroy` and `env`, asks
//! `dockyard instance-names` (hidden; the instances `status` would list)
//! and leaves every other word to clap's completion.

use crate::error::{Failure, Result};
use clap::CommandFactory;
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell to complete for
    pub shell: clap_complete::Shell,
}

/// The subcommands whose positional NAME is an existing instance.
pub const NAME_SUBCOMMANDS: &[&str] = &["status", "verify", "destroy", "env"];

pub fn run(args: &Args) -> Result<()> {
    let mut cmd = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "dockyard", &mut out);
    let script = String::from_utf8_lossy(&out).into_owned();
    let script = with_instance_names(args.shell, script);
    std::io::stdout()
        .write_all(script.as_bytes())
        .map_err(|e| Failure::failed(format!("cannot write the completion script: {e}")))
}

/// `dockyard instance-names`: one known instance name per line.
pub fn print_names() -> Result<()> {
    let mut out = String::new();
    for k in crate::probe::host::known_instances() {
        out.push_str(k.name.as_str());
        out.push('\n');
    }
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| Failure::failed(format!("cannot write the names: {e}")))
}

/// The generated script with the hook for instance names.
pub fn with_instance_names(shell: clap_complete::Shell, script: String) -> String {
    let subs = NAME_SUBCOMMANDS.join(" ");
    let subs_bar = NAME_SUBCOMMANDS.join("|");
    match shell {
        clap_complete::Shell::Bash => format!(
            "{script}
# Instance names for {subs} (dockyard completions, man dockyard).
_dockyard_with_instances() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}}
    if [[ $COMP_CWORD -ge 2 && $cur != -* ]]; then
        case ${{COMP_WORDS[1]}} in
        {subs_bar})
            local w named=0
            for w in \"${{COMP_WORDS[@]:2:COMP_CWORD-2}}\"; do [[ $w == -* ]] || named=1; done
            if ((named == 0)); then
                COMPREPLY=($(compgen -W \"$(dockyard instance-names 2>/dev/null)\" -- \"$cur\"))
                return 0
            fi
            ;;
        esac
    fi
    _dockyard \"$@\"
}}
complete -F _dockyard_with_instances -o bashdefault -o default dockyard
"
        ),
        clap_complete::Shell::Zsh => {
            // clap leaves a NAME to _default; point it at the instances.
            let mut out = String::with_capacity(script.len() + 256);
            for line in script.lines() {
                let is_name = line.starts_with("':name -- The instance")
                    || line.starts_with("'::name -- Only this instance");
                if is_name {
                    out.push_str(&line.replace(":_default'", ":_dockyard_instances'"));
                } else {
                    out.push_str(line);
                }
                out.push('\n');
            }
            let hook = "\n(( $+functions[_dockyard_instances] )) ||\n_dockyard_instances() {\n    local -a names\n    names=(${(f)\"$(dockyard instance-names 2>/dev/null)\"})\n    _describe -t instances 'instance' names\n}\n";
            // Defined before the script runs its own dispatch at the end.
            match out.rfind("\nif [ \"$funcstack[1]\" = \"_dockyard\" ]") {
                Some(at) => {
                    out.insert_str(at, hook);
                    out
                }
                None => out + hook,
            }
        }
        clap_complete::Shell::Fish => format!(
            "{script}complete -c dockyard -n \"__fish_seen_subcommand_from {subs}\" -f -a \"(dockyard instance-names 2>/dev/null)\" -d instance\n"
        ),
        _ => script,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: clap_complete::Shell) -> String {
        let mut cmd = crate::Cli::command();
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "dockyard", &mut out);
        with_instance_names(shell, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn every_shell_asks_for_instance_names() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            assert!(
                script(shell).contains("dockyard instance-names"),
                "{shell:?}"
            );
        }
        let zsh = script(clap_complete::Shell::Zsh);
        // status, verify, destroy, env: their NAME completes instances.
        assert_eq!(zsh.matches(":_dockyard_instances'").count(), 4, "{zsh}");
    }
}
