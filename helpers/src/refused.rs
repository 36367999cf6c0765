//! `dockyard-prepare refused`: the whole of the unit the generator writes
//! for a conf it refused. It logs the conf's diagnostics, as they were when
//! the unit was generated, at error level into the unit's journal (so
//! `systemctl status NAME_docker` shows them) and fails, so that
//! `systemctl start` says the start failed instead of "Unit not found".

use dockyard_model::contract::refused::{self, Refused};

use crate::args;
use crate::error::{Error, Result};

pub fn main(argv: Vec<std::ffi::OsString>) -> Result<()> {
    let opts = args::parse(argv, refused::OPTIONS)?;
    let r = Refused::parse(&opts).map_err(args::usage)?;
    for d in &r.diagnostics {
        log::error!("{d}");
    }
    Err(Error::new(why(&r)))
}

/// The last line the admin reads: what is wrong and the way out.
pub fn why(r: &Refused) -> String {
    let conf = r.conf.display();
    format!(
        "instance {} has no unit: {conf} was refused (the lines above, as of the last `systemctl daemon-reload`); fix it, check it with `dockyard check {conf}`, then run `systemctl daemon-reload` and start {} again",
        r.instance,
        r.instance.unit()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_conf_and_the_way_out() {
        let r = Refused {
            instance: dockyard_model::InstanceName::parse("dy1").expect("name"),
            conf: "/etc/dockyard/instances.d/dy1.conf".into(),
            diagnostics: vec![],
        };
        assert_eq!(
            why(&r),
            "instance dy1 has no unit: /etc/dockyard/instances.d/dy1.conf was refused (the lines above, as of the last `systemctl daemon-reload`); fix it, check it with `dockyard check /etc/dockyard/instances.d/dy1.conf`, then run `systemctl daemon-reload` and start dy1_docker.service again"
        );
    }
}
