//! End to end in a real Docker engine: the examples built into images (FROM nothing:
//! busybox-static, this machine's packages and the static launch), run the way our
//! users run them: `docker run`, `docker stop`, volumes, `docker kill -s HUP`,
//! HEALTHCHECK, `docker run -ti`, swarm stacks, and a registry the engine pushes to.
//! They run wherever `docker info` succeeds; with LAUNCH_REQUIRE_DOCKER=1 (CI) they
//! fail rather than skip when it does not.

mod support;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use support::docker::{Docker, http_get, wait_for_page};
use support::wait_until;

const WEB_BASE: &[&str] = &["/usr/sbin/nginx", "/usr/share/nginx"];

/// `docker run -d` of the web image as `name` on `volume`, published on a free port of
/// 127.0.0.1; returns once its HEALTHCHECK says healthy, with the container and port.
fn start_web(docker: &Docker, image: &str, volume: &str, name: &str) -> (String, u16) {
    let mount = format!("{volume}:/srv/projects/web/data");
    let web = docker.start(name, &["-p", "127.0.0.1::80", "-v", &mount, image]);
    docker.wait_healthy(&web, Duration::from_secs(30));
    let port = docker.port(&web, 80);
    (web, port)
}

/// The web example: healthy, serves through nginx, an operator's edit plus HUP changes
/// the page, `docker stop` is quick and clean, and a new container on the same volume
/// keeps the volume's data and the operator's configuration.
#[test]
fn web_example_runs_reloads_stops_cleanly_and_keeps_its_volume() {
    let Some(docker) = Docker::new("web") else {
        return;
    };
    let image = docker.build_example("web", WEB_BASE);
    let volume = docker.volume("data");
    let (first, port) = start_web(&docker, &image, &volume, "first");
    let page = wait_for_page(port, "/", "Hello from launch", Duration::from_secs(10));
    assert!(page.contains("<title>web</title>"), "{page}");

    // The operator's file was created on first start, every default commented out.
    let data = docker.volume_path(&volume);
    let operator = format!("{data}/configuration/pillar.yml");
    let text = std::fs::read_to_string(&operator).unwrap();
    assert!(text.contains("# greeting: Hello from launch"), "{text}");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&operator)
        .unwrap()
        .write_all(b"greeting: Edited by the operator\n")
        .unwrap();
    docker.ok(&["kill", "-s", "HUP", &first]);
    wait_for_page(port, "/", "Edited by the operator", Duration::from_secs(10));
    let status = docker.ok(&["exec", &first, "launch", "status"]);
    assert!(
        status.contains("nginx") && status.contains("running"),
        "{status}"
    );

    let (took, code) = docker.stop(&first);
    assert_eq!(
        code,
        0,
        "docker stop must end in a clean exit:\n{}",
        docker.logs(&first)
    );
    assert!(took < Duration::from_secs(2), "docker stop took {took:?}");
    docker.ok(&["rm", &first]);

    // A new container on the same volume: the data and the edit are still there.
    let (second, port) = start_web(&docker, &image, &volume, "second");
    wait_for_page(port, "/", "Edited by the operator", Duration::from_secs(10));
    let starts = docker.sh(&second, "cat /srv/projects/web/data/data/starts.log");
    assert_eq!(starts.lines().count(), 2, "one line per start:\n{starts}");
    let (_, code) = docker.stop(&second);
    assert_eq!(code, 0);
}

/// A broken operator edit is refused on HUP and the service keeps serving; at the next
/// start the same mistake stops the container with exit code 78 and the file:line.
#[test]
fn web_example_keeps_serving_through_a_broken_edit() {
    let Some(docker) = Docker::new("broken") else {
        return;
    };
    let image = docker.build_example("web", WEB_BASE);
    let volume = docker.volume("data");
    let (web, port) = start_web(&docker, &image, &volume, "web");
    let operator = format!("{}/configuration/pillar.yml", docker.volume_path(&volume));
    std::fs::write(&operator, "greeting: [unclosed\n").unwrap();
    docker.ok(&["kill", "-s", "HUP", &web]);
    let refused = wait_until(Duration::from_secs(10), || {
        docker
            .logs(&web)
            .contains("keeping the running one")
            .then_some(())
    });
    assert!(refused.is_some(), "{}", docker.logs(&web));
    let (code, body) = http_get(port, "/").expect("nginx still answers");
    assert_eq!(code, 200);
    assert!(body.contains("Hello from launch"), "{body}");
    docker.stop(&web);

    let out = docker.docker(&["start", "-a", &web]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/configuration/pillar.yml:2:1: did not find expected"),
        "{err}"
    );
}

/// `docker run -ti` and Ctrl-C typed on the terminal: the container stops cleanly.
#[test]
fn ctrl_c_in_docker_run_ti_stops_the_container_cleanly() {
    let Some(docker) = Docker::new("tty") else {
        return;
    };
    let image = docker.build_example("web", WEB_BASE);
    let name = docker.name("tty");
    docker.remember("container", &name);
    let mut cmd = Command::new("docker");
    cmd.args(["run", "-ti", "--name", &name, &image]);
    let (mut child, master) = support::spawn_on_pty(&mut cmd);
    drop(cmd);
    let mut writer = master.try_clone().unwrap();
    let output = support::Output::collect(master);
    assert!(
        output.wait_for("nginx is ready", Duration::from_secs(30)),
        "{}",
        output.text()
    );
    writer.write_all(b"\x03").unwrap();
    let ended = wait_until(Duration::from_secs(10), || child.try_wait().unwrap());
    let Some(status) = ended else {
        let _ = child.kill();
        panic!("Ctrl-C did not stop the container:\n{}", output.text());
    };
    assert_eq!(status.code(), Some(0), "{}", output.text());
    assert!(output.text().contains("SIGINT"), "{}", output.text());
    assert_eq!(docker.inspect(&name, "{{.State.ExitCode}}"), "0");
}

const REDIS_BASE: &[&str] = &[
    "/usr/bin/redis-server",
    "/usr/bin/redis-cli",
    "/usr/sbin/sshd",
];

/// ssh as root into the container's published sshd with `key`, running `command`.
/// The host is known under one alias whatever the port: with `strict`, a host key other
/// than the one recorded at the first login is refused.
fn ssh(
    port: u16,
    key: &std::path::Path,
    known_hosts: &str,
    strict: bool,
    command: &str,
) -> std::process::Output {
    let checking = if strict { "yes" } else { "accept-new" };
    Command::new("timeout")
        .args([
            "30",
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .args(["-o", &format!("StrictHostKeyChecking={checking}")])
        .args(["-o", "HostKeyAlias=launch-e2e-redis"])
        .args(["-o", &format!("UserKnownHostsFile={known_hosts}")])
        .arg("-i")
        .arg(key)
        .args(["-p", &port.to_string(), "root@127.0.0.1", command])
        .output()
        .unwrap()
}

/// The stateful example: the data directory is seeded on the first start only, data
/// written by a client survives `docker rm` and a new container on the volume, an
/// operator logs in over ssh with a key from the volume, the host key survives the
/// container, and removing the key (then HUP) removes the access.
#[test]
fn redis_example_keeps_its_data_and_ssh_access_across_containers() {
    let Some(docker) = Docker::new("redis") else {
        return;
    };
    let image = docker.build_example("redis", REDIS_BASE);
    let volume = docker.volume("data");
    let mount = format!("{volume}:/srv/projects/redis/data");
    let data = docker.volume_path(&volume);
    let scratch = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(docker.name("keys"));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let key = scratch.join("operator");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "operator@e2e", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    std::fs::create_dir_all(format!("{data}/ssh")).unwrap();
    std::fs::copy(
        key.with_extension("pub"),
        format!("{data}/ssh/operator.pub"),
    )
    .unwrap();
    let known_hosts = scratch.join("known_hosts").display().to_string();

    let publish = ["-p", "127.0.0.1::22", "-v", &mount, &image];
    let first = docker.start("first", &publish);
    docker.wait_healthy(&first, Duration::from_secs(30));
    assert!(
        docker
            .logs(&first)
            .contains("seeded /srv/projects/redis/data/data/redis")
    );
    let cli = |container: &str, args: &str| docker.sh(container, &format!("redis-cli {args}"));
    assert_eq!(cli(&first, "get greeting"), "seeded on first start");
    cli(&first, "set visits 41");
    assert_eq!(cli(&first, "incr visits"), "42");

    let port = docker.port(&first, 22);
    let login = ssh(port, &key, &known_hosts, false, "redis-cli get visits");
    assert!(
        login.status.success(),
        "ssh: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&login.stdout).trim(), "42");

    let (took, code) = docker.stop(&first);
    assert_eq!(code, 0, "{}", docker.logs(&first));
    assert!(took < Duration::from_secs(2), "{took:?}");
    docker.ok(&["rm", &first]);

    // A new container on the volume: the data, not the seed; the same host key (the
    // known_hosts of the first login is checked strictly from here on).
    let second = docker.start("second", &publish);
    docker.wait_healthy(&second, Duration::from_secs(30));
    assert!(
        !docker.logs(&second).contains("seeded"),
        "{}",
        docker.logs(&second)
    );
    assert_eq!(cli(&second, "get visits"), "42");
    assert_eq!(cli(&second, "get greeting"), "seeded on first start");
    let port = docker.port(&second, 22);
    let login = ssh(port, &key, &known_hosts, true, "redis-cli get greeting");
    assert!(
        login.status.success(),
        "the host key changed with the container: {}",
        String::from_utf8_lossy(&login.stderr)
    );

    // The operator removes the key and reloads: the next login is refused.
    std::fs::remove_file(format!("{data}/ssh/operator.pub")).unwrap();
    docker.ok(&["kill", "-s", "HUP", &second]);
    let refused = wait_until(Duration::from_secs(10), || {
        let out = ssh(port, &key, &known_hosts, true, "true");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (!out.status.success()).then_some(err)
    });
    let refused = refused.expect("the removed key still logs in");
    assert!(
        refused.contains("Permission denied (publickey)"),
        "{refused}"
    );
    let (_, code) = docker.stop(&second);
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// The private registry example: TLS from a CA generated into the volume, users from a
/// secret; the Docker engine logs in, pushes an image to it and pulls it back.
#[test]
fn registry_example_takes_a_push_and_gives_it_back() {
    let Some(docker) = Docker::new("registry") else {
        return;
    };
    let image = docker.build_example(
        "registry",
        &[
            "/usr/bin/docker-registry",
            "/usr/sbin/nginx",
            "/usr/share/nginx",
            "/usr/bin/openssl",
        ],
    );
    let scratch = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(docker.name("secrets"));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let hash = Command::new("openssl")
        .args(["passwd", "-6", "pushme"])
        .output()
        .unwrap();
    assert!(hash.status.success());
    let users = format!("ci:{}", String::from_utf8_lossy(&hash.stdout));
    std::fs::write(scratch.join("registry_htpasswd"), users).unwrap();
    let volume = docker.volume("data");
    let secrets = format!("{}:/run/secrets:ro", scratch.display());
    let mount = format!("{volume}:/srv/projects/registry/data");
    let registry = docker.start(
        "registry",
        &["-p", "127.0.0.1::443", "-v", &mount, "-v", &secrets, &image],
    );
    docker.wait_healthy(&registry, Duration::from_secs(30));
    let port = docker.port(&registry, 443);
    let host = format!("localhost:{port}");

    // The engine trusts the CA that the first start generated into the volume.
    let ca = format!("{}/data/tls/ca.crt", docker.volume_path(&volume));
    let certs = format!("/etc/docker/certs.d/{host}");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&ca, format!("{certs}/ca.crt")).unwrap();
    docker.on_cleanup(&["logout", &host]);
    let verify = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &ca,
        ])
        .arg(format!("https://{host}/v2/"))
        .output()
        .unwrap();
    let refused = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(
        refused,
        "401",
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    let login = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo pushme | timeout 60 docker login --username ci --password-stdin {host}"
        ))
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    // Any local image will do: the example's own base.
    let (name, tag) = image.split_once(':').unwrap();
    let pushed = format!("{host}/e2e/base:{tag}");
    docker.ok(&["tag", &format!("{name}-base:{tag}"), &pushed]);
    docker.remember("image", &pushed);
    let id = docker.inspect(&pushed, "{{.Id}}");
    docker.ok(&["push", &pushed]);
    docker.ok(&["rmi", &pushed]);
    docker.ok(&["pull", &pushed]);
    assert_eq!(docker.inspect(&pushed, "{{.Id}}"), id);
    let catalog = Command::new("curl")
        .args(["-sS", "--cacert", &ca, "-u", "ci:pushme"])
        .arg(format!("https://{host}/v2/_catalog"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&catalog.stdout).trim(),
        r#"{"repositories":["e2e/base"]}"#
    );

    let (_, code) = docker.stop(&registry);
    assert_eq!(code, 0, "{}", docker.logs(&registry));
    std::fs::remove_dir_all(&certs).unwrap();
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// The web example's stack file in a real swarm (Imixs-Cloud layout: an external proxy
/// overlay network, a private backend, a named volume): deployed healthy, then rolled
/// with `docker service update --force`; the old task stopped with exit code 0 and the
/// new one has the volume's data. The stack, its network and volume are removed, and a
/// swarm this test made is left again.
#[test]
fn web_stack_deploys_and_rolls_in_a_swarm_without_losing_data() {
    let Some(docker) = Docker::new("swarm") else {
        return;
    };
    let image = docker.build_example("web", WEB_BASE);
    let state = docker.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    if state != "active" {
        // Cleanups run in reverse: leaving the swarm comes after everything in it.
        docker.on_cleanup(&["network", "rm", "docker_gwbridge"]);
        docker.on_cleanup(&["swarm", "leave", "--force"]);
        docker.ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    }
    let proxy = docker.name("proxy");
    docker.ok(&[
        "network",
        "create",
        "--driver",
        "overlay",
        "--attachable",
        &proxy,
    ]);
    docker.remember("network", &proxy);
    let stack = docker.name("stack");
    // Removed after the stack is: the volume last, once no container holds it.
    docker.remember("volume", &format!("{stack}_data"));
    docker.on_cleanup(&["stack", "rm", &stack]);
    let service = format!("{stack}_web");
    let compose = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/web/docker-compose.yml"
    );
    let deploy = Command::new("timeout")
        .args([
            "120",
            "docker",
            "stack",
            "deploy",
            "--detach=false",
            "-c",
            compose,
            &stack,
        ])
        .env("IMAGE", &image)
        .env("PROXY_NETWORK", &proxy)
        .output()
        .unwrap();
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );

    let task = |docker: &Docker| -> Option<String> {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        let id = docker.ok(&["ps", "-q", "--filter", &filter]);
        (!id.is_empty() && !id.contains('\n')).then_some(id)
    };
    let first = wait_until(Duration::from_secs(60), || task(&docker)).expect("a running task");
    docker.wait_healthy(&first, Duration::from_secs(60));
    let page = docker.sh(&first, "wget -qO- http://127.0.0.1/");
    assert!(page.contains("Hello from launch"), "{page}");
    docker.sh(&first, "echo kept > /srv/projects/web/data/data/marker");

    docker.ok(&["service", "update", "--force", "--detach=false", &service]);
    let second = wait_until(Duration::from_secs(60), || {
        task(&docker).filter(|id| *id != first)
    })
    .expect("a new task after the update");
    docker.wait_healthy(&second, Duration::from_secs(60));
    assert_eq!(
        docker.sh(&second, "cat /srv/projects/web/data/data/marker"),
        "kept"
    );
    let starts = docker.sh(&second, "cat /srv/projects/web/data/data/starts.log");
    assert_eq!(starts.lines().count(), 2, "{starts}");
    assert_eq!(
        docker.inspect(&first, "{{.State.ExitCode}}"),
        "0",
        "the rolled task did not stop cleanly:\n{}",
        docker.logs(&first)
    );
    assert!(docker.logs(&first).contains("shutting down (SIGTERM)"));

    // Take the stack down now, and wait until its containers are gone, so that the
    // volume and networks can go too.
    docker.ok(&["stack", "rm", &stack]);
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let gone = wait_until(Duration::from_secs(60), || {
        docker
            .ok(&["ps", "-aq", "--filter", &filter])
            .is_empty()
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "the stack's containers outlived docker stack rm"
    );
}

/// Plain init in an image (`ENTRYPOINT ["launch", "--"]`): the program's orphans are
/// reaped, HUP reaches it, `docker stop` ends it through its own TERM handler at once,
/// and the container's exit code is the program's.
#[test]
fn plain_init_image_forwards_reaps_and_stops() {
    let Some(docker) = Docker::new("plain") else {
        return;
    };
    let image = docker.build_example("plain-init", &[]);
    let worker = docker.start("worker", &[&image]);
    let started = wait_until(Duration::from_secs(10), || {
        docker.logs(&worker).contains("worker: pid").then_some(())
    });
    assert!(started.is_some(), "{}", docker.logs(&worker));
    // The orphans (sleep 0.1 to 0.3) have ended and were reaped: none runs, none is a
    // zombie.
    let reaped = wait_until(Duration::from_secs(10), || {
        let ps = docker.sh(&worker, "ps -o stat,args");
        let left = ps
            .lines()
            .any(|l| l.trim_start().starts_with('Z') || l.contains("sleep 0."));
        (!left).then_some(())
    });
    assert!(
        reaped.is_some(),
        "{}",
        docker.sh(&worker, "ps -o stat,args")
    );
    docker.ok(&["kill", "-s", "HUP", &worker]);
    let reloaded = wait_until(Duration::from_secs(10), || {
        docker.logs(&worker).contains("got HUP").then_some(())
    });
    assert!(reloaded.is_some(), "{}", docker.logs(&worker));
    let (took, code) = docker.stop(&worker);
    assert_eq!(code, 0, "{}", docker.logs(&worker));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(docker.logs(&worker).contains("got TERM, stopping cleanly"));
}
