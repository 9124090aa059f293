//! SSH access from the volume with a real sshd and a real ssh client (Debian's
//! openssh packages): log in with a key from the volume, lose access when it is removed,
//! keep the host's identity across restarts, and report bad key lines.

mod support;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::project::Project;
use support::{Launched, wait_until};

/// `launch run` as PID 1 with a private, empty /root.
fn start(p: &Project) -> Launched {
    p.run_with_private_root(&p.path("control.sock"))
}

fn ssh(port: u16, key: &std::path::Path) -> std::process::Output {
    Command::new("ssh")
        .args(["-p", &port.to_string(), "-i"])
        .arg(key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            "root@127.0.0.1",
            "echo logged-in-as-$(id -u)",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn a_key_in_the_volume_logs_in_until_it_is_removed() {
    let p = Project::new("ssh-login");
    let port = 20000 + (std::process::id() % 20000) as u16;
    p.write(
        "project/launch.yml",
        &format!("ssh: {{user: root, sshd: true, port: {port}}}\nprocesses: {{}}\n"),
    );
    let key = p.path("client/id");
    fs::create_dir_all(key.parent().unwrap()).unwrap();
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "operator", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    p.write(
        "data/ssh/operator.pub",
        &format!("# the operator's laptop\n\n{public}"),
    );
    let truncated = &public[..40];
    p.write(
        "data/ssh/bad.pub",
        &format!("{truncated}\nssh-foo AAAAB3Nza x\nfrom=\"10.0.0.1\" {public}-----BEGIN OPENSSH PRIVATE KEY-----\n"),
    );

    let mut launch = start(&p);
    assert!(
        launch
            .stderr
            .wait_for("sshd started", Duration::from_secs(15)),
        "{}",
        launch.stderr.text()
    );
    wait_until(Duration::from_secs(10), || listening(port).then_some(())).expect("sshd listens");
    let log = launch.stderr.text();
    for needle in [
        "bad.pub:1: the key does not parse",
        "bad.pub:2: unknown key type \"ssh-foo\"",
        "bad.pub:3: an options prefix (from) is not allowed",
        "bad.pub:4: this is a private key",
        "ssh key SHA256:",
        "operator.pub:3",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in:\n{log}");
    }
    assert!(
        !log.contains(public.split_whitespace().nth(1).unwrap()),
        "keys are shown by fingerprint only"
    );

    let out = ssh(port, &key);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "logged-in-as-0\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host_key = fs::read_to_string(p.path("data/ssh/host/ssh_host_ed25519_key.pub")).unwrap();
    let meta = fs::metadata(p.path("data/ssh/host/ssh_host_ed25519_key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );

    // Removing the .pub removes the access at the next reload.
    fs::remove_file(p.path("data/ssh/operator.pub")).unwrap();
    launch.signal(libc::SIGHUP);
    assert!(
        launch
            .stderr
            .wait_for("SIGHUP: reconfiguring", Duration::from_secs(10))
    );
    wait_until(Duration::from_secs(10), || {
        (!ssh(port, &key).status.success()).then_some(())
    })
    .expect("the login is refused once the key is gone");

    launch.signal(libc::SIGTERM);
    assert_eq!(
        launch.wait(Duration::from_secs(15)).code(),
        Some(0),
        "{}",
        launch.stderr.text()
    );

    // A new container on the same volume: the same host identity, and access again.
    p.write("data/ssh/operator.pub", &public);
    let mut again = start(&p);
    assert!(
        again
            .stderr
            .wait_for("sshd started", Duration::from_secs(15))
    );
    wait_until(Duration::from_secs(10), || listening(port).then_some(())).expect("sshd listens");
    assert_eq!(
        fs::read_to_string(p.path("data/ssh/host/ssh_host_ed25519_key.pub")).unwrap(),
        host_key
    );
    let scan = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let served = String::from_utf8_lossy(&scan.stdout);
    let stored = host_key.split_whitespace().nth(1).unwrap();
    assert!(
        served.contains(stored),
        "sshd serves the volume's host key: {served}"
    );
    assert!(ssh(port, &key).status.success());
    again.signal(libc::SIGTERM);
    assert_eq!(again.wait(Duration::from_secs(15)).code(), Some(0));
}

/// `host_keys: [ed25519, rsa]`: both are generated once (RSA at 3072 bits, as
/// ssh-keygen would), sshd serves each, and a second start serves the same ones.
#[test]
fn rsa_host_keys_when_asked_are_served_and_kept() {
    let p = Project::new("ssh-rsa");
    let port = 20000 + ((std::process::id() + 7919) % 20000) as u16;
    p.write(
        "project/launch.yml",
        &format!(
            "ssh: {{user: root, sshd: true, port: {port}, host_keys: [ed25519, rsa]}}\nprocesses: {{}}\n"
        ),
    );
    let scan = |kind: &str| {
        let out = Command::new("ssh-keyscan")
            .args(["-t", kind, "-p", &port.to_string(), "127.0.0.1"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let stored = |file: &str| {
        let text = fs::read_to_string(p.path(&format!("data/ssh/host/{file}.pub"))).unwrap();
        text.split_whitespace().nth(1).unwrap().to_string()
    };
    let mut served = Vec::new();
    for _ in 0..2 {
        let mut launch = start(&p);
        assert!(
            launch
                .stderr
                .wait_for("sshd started", Duration::from_secs(30)),
            "{}",
            launch.stderr.text()
        );
        wait_until(Duration::from_secs(10), || listening(port).then_some(()))
            .expect("sshd listens");
        let rsa = stored("ssh_host_rsa_key");
        let ed25519 = stored("ssh_host_ed25519_key");
        assert!(
            scan("rsa").contains(&rsa),
            "sshd serves the volume's RSA key"
        );
        assert!(scan("ed25519").contains(&ed25519));
        served.push((rsa, ed25519));
        launch.signal(libc::SIGTERM);
        assert_eq!(launch.wait(Duration::from_secs(15)).code(), Some(0));
    }
    assert_eq!(served[0], served[1], "the host keys changed across starts");
    let bits = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(p.path("data/ssh/host/ssh_host_rsa_key.pub"))
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&bits.stdout);
    assert!(line.starts_with("3072 SHA256:"), "{line}");
    let mode = fs::metadata(p.path("data/ssh/host/ssh_host_rsa_key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}
