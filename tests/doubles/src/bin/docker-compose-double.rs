//! TEST DOUBLE for the Compose v2 plugin (`docker-compose`), for engines whose
//! distribution has no Compose v2 to test with (Debian 12 ships Compose 1):
//! it speaks the docker CLI's plugin protocol and answers `version`, naming
//! the daemon it was pointed at, so a test sees both ways of running it
//! (`docker compose …` as a plugin, `docker-compose …` alone) reach it with
//! the environment `dockyard env` set. Everything else fails, loudly.

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("docker-cli-plugin-metadata") {
        println!(
            "{{\"SchemaVersion\":\"0.1.0\",\"Vendor\":\"Dockyard tests\",\"Version\":\"v{VERSION}\",\
             \"ShortDescription\":\"Dockyard test double standing in for Docker Compose\"}}"
        );
        return;
    }
    // As a plugin the CLI passes its own name first: `docker-compose compose …`.
    if args.first().map(String::as_str) == Some("compose") {
        args.remove(0);
    }
    match args.first().map(String::as_str) {
        Some("version") => {
            let host =
                std::env::var("DOCKER_HOST").unwrap_or_else(|_| "(DOCKER_HOST unset)".into());
            println!("Docker Compose version v{VERSION} (Dockyard test double) for {host}");
        }
        other => {
            eprintln!("docker-compose-double: only `version` is implemented, not {other:?}");
            std::process::exit(2);
        }
    }
}
