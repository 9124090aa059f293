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
        &format!("{truncated}\nssh-foo AAAAB3Nza x\nfrom=\"10.0.0.1\" {public}"),
    )
    .write(
        "data/ssh/pasted.pub",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n",
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
        "bad.pub:2: unknown key type",
        "bad.pub:3: an options prefix (from) is not allowed",
        "pasted.pub: it holds an OpenSSH private key",
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
        // A 3072-bit key's prime search takes a second or two, and far longer when the
        // other tests load both cores.
        assert!(
            launch
                .stderr
                .wait_for("sshd started", Duration::from_secs(120)),
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

/// A new ed25519 key pair at `path` (and `path.pub`) with `comment`: the private key's
/// text and the public line.
fn keygen(path: &std::path::Path, comment: &str) -> (String, String) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
    (
        fs::read_to_string(path).unwrap(),
        fs::read_to_string(path.with_extension("pub"))
            .unwrap()
            .trim_end()
            .to_string(),
    )
}

/// The base64 of a public key line.
fn base64(line: &str) -> &str {
    line.split_whitespace().nth(1).unwrap()
}

#[test]
fn a_private_key_is_named_never_shown_and_a_bad_byte_costs_one_line() {
    let p = Project::new("ssh-hostile-files");
    p.write(
        "project/launch.yml",
        "ssh: {user: root, sshd: false}\nprocesses:\n  app: {command: [sleep, \"1000\"]}\n",
    );
    // A real private key where its public half belongs.
    let (private, leaked_public) = keygen(&p.path("client/leaked"), "leaked-comment-7f3a");
    p.write("data/ssh/leaked.pub", &private);
    // Good keys around one whose comment has a Latin-1 byte, and an unknown type whose
    // "base64" must not show either.
    let (_, first) = keygen(&p.path("client/first"), "first");
    let (_, latin) = keygen(&p.path("client/latin"), "latin");
    let (_, last) = keygen(&p.path("client/last"), "last");
    let mut mixed = format!("{first}\n").into_bytes();
    mixed.extend_from_slice(format!("ssh-ed25519 {} caf", base64(&latin)).as_bytes());
    mixed.extend_from_slice(b"\xe9-laptop\n");
    mixed.extend_from_slice(format!("{last}\nssh-foo c2VjcmV0LXBheWxvYWQtOTE3 x\n").as_bytes());
    fs::write(p.path("data/ssh/mixed.pub"), mixed).unwrap();

    let launch = start(&p);
    assert!(
        launch
            .stderr
            .wait_for("app started", Duration::from_secs(15)),
        "{}",
        launch.stderr.text()
    );
    let log = launch.stderr.text();
    for needle in [
        "leaked.pub: it holds an OpenSSH private key; no key of this file is installed",
        "mixed.pub:2: not UTF-8 text",
        "mixed.pub:4: unknown key type",
        "mixed.pub:1\n",
        "mixed.pub:3\n",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in:\n{log}");
    }
    assert_eq!(
        log.matches("leaked.pub").count(),
        1,
        "reported once:\n{log}"
    );
    for line in private.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !log.contains(line),
            "a line of the private key shows:\n{log}"
        );
    }
    for shown in [
        "leaked-comment-7f3a",
        "c2VjcmV0LXBheWxvYWQtOTE3",
        "caf",
        base64(&latin),
    ] {
        assert!(!log.contains(shown), "{shown:?} shows:\n{log}");
    }

    // The file with the bad byte still gives its other keys.
    let installed = format!("/proc/{}/root/root/.ssh/authorized_keys", launch.pid);
    let keys = fs::read_to_string(&installed).unwrap_or_else(|e| panic!("{installed}: {e}"));
    assert!(keys.contains(base64(&first)), "{keys}");
    assert!(keys.contains(base64(&last)), "{keys}");
    assert!(!keys.contains(base64(&latin)), "{keys}");
    assert!(!keys.contains(base64(&leaked_public)), "{keys}");
}
