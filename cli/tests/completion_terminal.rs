//! Instance-name completion as an admin meets it: an interactive bash in a
//! tmux pane, `dockyard completions bash` sourced, Tab pressed after
//! `dockyard destroy w`. Needs tmux and bash (packaging/install-deps.sh);
//! prints SKIPPED without them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

const CONF: &str = "[Instance]\nRoot=/srv/dockyard-test-never-created/NAME\nBridgeCIDR=172.31.N.1/24\nPoolBase=172.N.0.0/16\nRuntime=runc\nDockerVersion=1.0.0\n";

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pane's text once `want` shows up in it (or after 10 s).
    fn screen_with(&self, want: &str) -> String {
        let t0 = Instant::now();
        loop {
            let screen = self.run(&["capture-pane", "-p", "-t", "t"]);
            if screen.contains(want) || t0.elapsed() > Duration::from_secs(5) {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

#[test]
fn tab_completes_instance_names_in_a_terminal() {
    if !have("tmux") || !Path::new("/bin/bash").exists() {
        eprintln!("SKIPPED: needs tmux and bash");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("instances.d");
    std::fs::create_dir(&dir).expect("instances.d");
    std::fs::create_dir(tmp.path().join("net")).expect("net");
    for (name, n) in [("web1", "21"), ("web2", "22"), ("db1", "23")] {
        let text = CONF.replace("NAME", name).replace(".N.", &format!(".{n}."));
        std::fs::write(dir.join(format!("{name}.conf")), text).expect("conf");
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_dockyard"));
    let script = Command::new(bin)
        .args(["completions", "bash"])
        .output()
        .expect("completions");
    let completion = tmp.path().join("dockyard.bash");
    std::fs::write(&completion, &script.stdout).expect("script");
    let rc = tmp.path().join("bashrc");
    std::fs::write(
        &rc,
        format!(
            "PS1='$ '\nexport PATH={}:$PATH DOCKYARD_INSTANCES_DIR={} DOCKYARD_SYS_CLASS_NET={}\nsource {}\n",
            bin.parent().expect("bin dir").display(),
            dir.display(),
            tmp.path().join("net").display(),
            completion.display()
        ),
    )
    .expect("rc");
    let tmux = Tmux {
        socket: format!("dockyard-test-{}", std::process::id()),
    };
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "160",
        "-y",
        "20",
        &format!("bash --noprofile --rcfile {} -i", rc.display()),
    ]);
    tmux.screen_with("$ ");
    // One Tab completes what web1 and web2 share; a second lists both.
    tmux.run(&["send-keys", "-t", "t", "dockyard destroy w", "Tab"]);
    tmux.screen_with("dockyard destroy web");
    // (readline lists on a Tab right after one that completed; give it a
    // moment and a second chance on a loaded machine.)
    let mut screen = String::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        tmux.run(&["send-keys", "-t", "t", "Tab"]);
        screen = tmux.screen_with("web2");
        if screen.contains("web2") {
            break;
        }
    }
    assert!(screen.contains("dockyard destroy web"), "{screen}");
    assert!(
        screen.contains("web1") && screen.contains("web2"),
        "{screen}"
    );
    assert!(!screen.contains("db1"), "{screen}");
    // A unique prefix completes the whole name.
    tmux.run(&["send-keys", "-t", "t", "C-u", "dockyard verify d", "Tab"]);
    let screen = tmux.screen_with("dockyard verify db1");
    assert!(screen.contains("dockyard verify db1"), "{screen}");
}
