//! The cluster directory (deploy/) end to end in a real swarm, as an operator uses it
//! on a fresh node: `deploy/scripts/setup` from nothing (swarm, networks, registry,
//! proxy, monitoring), the apps' images pushed to the private registry and their
//! stacks deployed from it with `--with-registry-auth`, pages through the proxy by host
//! name, a rolling update without a failed request, and `deploy/scripts/teardown`
//! leaving the engine as it was. Like tests/docker.rs, it runs wherever `docker info`
//! succeeds and fails instead of skipping under LAUNCH_REQUIRE_DOCKER=1.
//!
//! Prometheus must list every launch-run task as an up target (launch's metrics
//! listener, `metrics: {listen: ...}` in each image's launch.yml).

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::docker::Docker;
use support::wait_until;

/// The stacks and networks the directory manages: the test refuses to run where they
/// exist already (teardown would remove them).
const STACKS: &[&str] = &["registry", "proxy", "monitoring", "web", "redis"];
const NETWORKS: &[&str] = &["proxy", "backend"];
/// The app stacks: deployed by the operator (the test), not by setup.
const APPS: &[&str] = &["web", "redis"];
/// The apps' volumes: web has one per task slot, redis one.
const APP_VOLUMES: &[&str] = &["web_data_1", "web_data_2", "redis_data"];
/// The images deploy/scripts/images builds.
const IMAGES: &[&str] = &["registry", "proxy", "monitoring", "web", "redis"];
const TAG: &str = "cluster";

/// The repository's deploy/ directory.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// A port of 127.0.0.1 that nothing listens on now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// What the test compares before setup and after teardown.
#[derive(Debug, PartialEq)]
struct Engine {
    swarm: String,
    networks: Vec<String>,
    volumes: Vec<String>,
    containers: Vec<String>,
}

/// The sorted lines of `text`, but the other end-to-end tests' objects, which come and
/// go meanwhile when the engine is shared.
fn lines(text: String) -> Vec<String> {
    let mut all: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("launch-e2e-"))
        .map(str::to_string)
        .collect();
    all.sort();
    all
}

impl Engine {
    fn now(docker: &Docker) -> Engine {
        Engine {
            swarm: docker.ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]),
            networks: lines(docker.ok(&["network", "ls", "--format", "{{.Name}}"])),
            volumes: lines(docker.ok(&["volume", "ls", "-q"])),
            containers: lines(docker.ok(&["ps", "-aq", "--filter", "label=com.docker.swarm.task"])),
        }
    }
}

/// The operator's session: the cluster's settings, and at the end (pass or fail) the
/// app stacks removed, teardown run, the registry's client files removed.
struct Cluster {
    state: PathBuf,
    env: Vec<(String, String)>,
    registry: String,
    proxy_port: u16,
}

impl Cluster {
    /// A script of deploy/scripts with the cluster's environment; its output.
    fn script(&self, name: &str, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("600")
            .arg(deploy_dir().join("scripts").join(name))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap()
    }

    /// `docker ARGS` from deploy/ with the cluster's environment, which must succeed.
    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .arg("300")
            .arg("docker")
            .args(args)
            .current_dir(deploy_dir())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn certs_d(&self) -> PathBuf {
        Path::new("/etc/docker/certs.d").join(&self.registry)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for app in APPS {
            let _ = Command::new("docker").args(["stack", "rm", app]).output();
        }
        let gone = |stack: &str| {
            let filter = format!("label=com.docker.stack.namespace={stack}");
            let out = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output();
            out.is_ok_and(|o| o.stdout.is_empty()).then_some(())
        };
        for app in APPS {
            wait_until(Duration::from_secs(60), || {
                thread::sleep(Duration::from_millis(200));
                gone(app)
            });
        }
        let _ = self.script("teardown", &["--volumes"]);
        for volume in APP_VOLUMES {
            let _ = Command::new("docker")
                .args(["volume", "rm", volume])
                .output();
        }
        let _ = Command::new("docker")
            .args(["logout", &self.registry])
            .output();
        let _ = std::fs::remove_dir_all(self.certs_d());
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// A GET of `path` on 127.0.0.1:`port` for the virtual host `host`: the status code
/// and the body, or None when the connection fails.
fn get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Refuses an engine that already has what the directory would make and remove.
fn assert_engine_is_free(docker: &Docker) {
    let swarm = docker.ok(&["info", "--format", "{{.Swarm.ControlAvailable}}"]);
    if swarm == "true" {
        let stacks = docker.ok(&["stack", "ls", "--format", "{{.Name}}"]);
        let taken: Vec<&str> = stacks.lines().filter(|s| STACKS.contains(s)).collect();
        assert!(
            taken.is_empty(),
            "this engine already runs the stacks {taken:?}, which the test would remove: \
             run it on an engine without them"
        );
    }
    for net in NETWORKS {
        let out = docker.docker(&["network", "inspect", net]);
        assert!(
            !out.status.success(),
            "this engine already has a network {net:?}, which the test would remove: \
             run it on an engine without it"
        );
    }
}

/// Builds the images with deploy/scripts/images, each removed at the end with its base.
fn build_images(docker: &Docker) -> String {
    let prefix = docker.name("img");
    for name in IMAGES {
        docker.remember("image", &format!("{prefix}/{name}:{TAG}"));
        docker.remember("image", &format!("{prefix}/{name}-base:{TAG}"));
    }
    let out = Command::new("timeout")
        .arg("600")
        .arg(deploy_dir().join("scripts/images"))
        .args(["-p", &prefix, "-t", TAG])
        .env("LAUNCH_BIN", support::static_launch())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deploy/scripts/images failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    prefix
}

/// The ids of the running tasks of every service.
fn tasks(docker: &Docker) -> Vec<String> {
    let services = docker.ok(&["service", "ls", "-q"]);
    let mut all = Vec::new();
    for service in services.lines() {
        let ids = docker.ok(&[
            "service",
            "ps",
            "-q",
            "--filter",
            "desired-state=running",
            service,
        ]);
        all.extend(ids.lines().map(str::to_string));
    }
    all.sort();
    all
}

/// setup from nothing, then again: the second run replaces no task.
fn set_up(docker: &Docker, cluster: &Cluster) {
    let out = cluster.script("setup", &["--advertise-addr", "127.0.0.1"]);
    assert!(
        out.status.success(),
        "setup failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made = std::fs::read_to_string(cluster.state.join("made")).unwrap();
    for stack in ["registry", "proxy", "monitoring"] {
        assert!(made.contains(&format!("stack {stack}\n")), "{made}");
    }
    let before = tasks(docker);
    assert_eq!(
        before.len(),
        3,
        "one task per management service: {before:?}"
    );
    let again = cluster.script("setup", &["--advertise-addr", "127.0.0.1"]);
    assert!(
        again.status.success(),
        "setup, second run:\n{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(tasks(docker), before, "the second setup replaced tasks");
    let made_again = std::fs::read_to_string(cluster.state.join("made")).unwrap();
    assert_eq!(made_again, made, "the second setup made something");
}

/// The engine trusts the registry's CA (certs.d), logs in, and pushes the apps.
fn push_apps(docker: &Docker, cluster: &Cluster, prefix: &str) {
    let tls = cluster.state.join("registry");
    std::fs::create_dir_all(cluster.certs_d()).unwrap();
    std::fs::copy(tls.join("ca.crt"), cluster.certs_d().join("ca.crt")).unwrap();
    let password = std::fs::read_to_string(tls.join("password")).unwrap();
    let login = Command::new("sh")
        .arg("-c")
        .arg("timeout 60 docker login --username admin --password-stdin \"$0\" <\"$1\"")
        .arg(&cluster.registry)
        .arg(tls.join("password"))
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "docker login {}: {}",
        cluster.registry,
        String::from_utf8_lossy(&login.stderr)
    );
    for app in APPS {
        let pushed = format!("{}/{app}:{TAG}", cluster.registry);
        docker.ok(&["tag", &format!("{prefix}/{app}:{TAG}"), &pushed]);
        docker.remember("image", &pushed);
        docker.ok(&["push", "-q", &pushed]);
        // The stack must pull it from the registry.
        docker.ok(&["rmi", &pushed]);
    }
    let catalog = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(tls.join("ca.crt"))
        .args(["-u", &format!("admin:{}", password.trim())])
        .arg(format!("https://{}/v2/_catalog", cluster.registry))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&catalog.stdout).trim(),
        r#"{"repositories":["redis","web"]}"#
    );
}

/// Deploys the app stacks from the registry, then waits for the web page through the
/// proxy, by host name.
fn deploy_apps(docker: &Docker, cluster: &Cluster) {
    for app in APPS {
        let file = format!("apps/{app}/docker-compose.yml");
        cluster.docker(&[
            "stack",
            "deploy",
            "--with-registry-auth",
            "--detach=false",
            "-c",
            &file,
            app,
        ]);
        // Pulled from the registry (the engine had none): the service names it by the
        // registry's digest, and the engine now has it.
        let service = format!("{app}_{app}");
        let format = "{{.Spec.TaskTemplate.ContainerSpec.Image}}";
        let spec = docker.ok(&["service", "inspect", "--format", format, &service]);
        let image = format!("{}/{app}", cluster.registry);
        assert!(
            spec.starts_with(&format!("{image}:{TAG}@sha256:")),
            "{spec}"
        );
        let pulled = docker.ok(&["images", "-q", &image]);
        assert!(!pulled.is_empty(), "{image} was not pulled");
        for id in pulled.lines() {
            docker.remember("image", id);
        }
    }
    let mut last = None;
    let page = wait_until(Duration::from_secs(60), || {
        last = get(cluster.proxy_port, "web.localhost", "/");
        thread::sleep(Duration::from_millis(200));
        last.clone()
            .filter(|(code, body)| *code == 200 && body.contains("Hello from launch"))
    });
    assert!(
        page.is_some(),
        "the proxy never served web's page: {last:?}"
    );
    let other = get(cluster.proxy_port, "nothing.localhost", "/");
    assert_eq!(other.map(|(code, _)| code), Some(404), "routing is by host");
    let filter = "label=com.docker.swarm.service.name=redis_redis";
    let redis = docker.ok(&["ps", "-q", "--filter", filter]);
    let greeting = docker.sh(&redis, "redis-cli get greeting");
    assert_eq!(greeting, "seeded on first start");
}

/// Prometheus (through the proxy) has a target for every launch-run task, all up.
fn assert_every_launch_target_is_up(cluster: &Cluster) {
    let mut last = String::new();
    let up = wait_until(Duration::from_secs(90), || {
        thread::sleep(Duration::from_secs(1));
        let (_, body) = get(
            cluster.proxy_port,
            "monitoring.localhost",
            "/api/v1/targets",
        )?;
        last = body;
        let targets: Vec<&str> = last.split("\"scrapePool\":\"launch\"").skip(1).collect();
        let healthy = targets
            .iter()
            .filter(|t| t.contains("\"health\":\"up\""))
            .count();
        // registry, proxy, monitoring, two web tasks, redis.
        (targets.len() == 6 && healthy == 6).then_some(())
    });
    assert!(up.is_some(), "not every launch target is up:\n{last}");
}

/// `docker service update --force` of web while a client polls it through the proxy:
/// every request answered, and both tasks replaced.
fn roll_web(docker: &Docker, cluster: &Cluster) {
    let before = docker.ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        "web_web",
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let port = cluster.proxy_port;
    let poller = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match get(port, "web.localhost", "/") {
                    Some((200, body)) if body.contains("Hello from launch") => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
                thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        })
    };
    thread::sleep(Duration::from_secs(1));
    cluster.docker(&["service", "update", "--force", "--detach=false", "web_web"]);
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = poller.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} requests failed during the update: {failed:?}",
        failed.len()
    );
    assert!(ok > 50, "only {ok} requests during the update");
    let after = docker.ok(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        "web_web",
    ]);
    for task in before.lines() {
        assert!(!after.contains(task), "task {task} was not replaced");
    }
}

/// The whole life of the cluster directory on this engine, in one test: the steps
/// depend on each other, and a swarm is one per engine.
#[test]
fn cluster_directory_sets_up_serves_rolls_and_tears_down() {
    let Some(docker) = Docker::new("cluster") else {
        return;
    };
    let started = Instant::now();
    assert_engine_is_free(&docker);
    let engine = Engine::now(&docker);
    let prefix = build_images(&docker);
    let built = started.elapsed();
    let (registry_port, proxy_port) = (free_port(), free_port());
    let registry = format!("127.0.0.1:{registry_port}");
    let state = Path::new(env!("CARGO_TARGET_TMPDIR")).join(docker.name("state"));
    let image = |name: &str| format!("{prefix}/{name}:{TAG}");
    let env = [
        ("CLUSTER_STATE", state.display().to_string()),
        ("REGISTRY_IMAGE", image("registry")),
        ("PROXY_IMAGE", image("proxy")),
        ("MONITORING_IMAGE", image("monitoring")),
        ("REGISTRY_PORT", registry_port.to_string()),
        ("PROXY_PORT", proxy_port.to_string()),
        ("REGISTRY", registry.clone()),
        ("TAG", TAG.to_string()),
        ("REDIS_SSH_PORT", free_port().to_string()),
    ];
    let cluster = Cluster {
        state,
        env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        registry,
        proxy_port,
    };
    set_up(&docker, &cluster);
    push_apps(&docker, &cluster, &prefix);
    deploy_apps(&docker, &cluster);
    assert_every_launch_target_is_up(&cluster);
    roll_web(&docker, &cluster);
    let ran = started.elapsed();

    for app in APPS {
        cluster.docker(&["stack", "rm", app]);
    }
    drop(cluster);
    let after = Engine::now(&docker);
    assert_eq!(after, engine, "the engine is not as it was before setup");
    if after.swarm == "active" {
        assert_eq!(docker.ok(&["service", "ls", "-q"]), "", "services are left");
    }
    eprintln!(
        "cluster test: images {built:?}, setup to rolled {:?}, teardown {:?}",
        ran - built,
        started.elapsed() - ran
    );
}

/// Every manifest of deploy/kubernetes passes `kubernetes-validate --strict` (offline,
/// against Kubernetes' schemas), and docs/kubernetes.md shows each file as it is.
/// Skipped without kubernetes-validate, unless in CI (LAUNCH_CI=1: scripts/test
/// installs it).
#[test]
fn kubernetes_manifests_are_valid_and_shown_in_the_docs() {
    let script = deploy_dir().join("scripts/validate-kubernetes");
    let found = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("LAUNCH_CI").as_deref() != Ok("1"),
            "kubernetes-validate is missing: pip install kubernetes-validate"
        );
        eprintln!("skipped: no kubernetes-validate (pip install kubernetes-validate)");
        return;
    }
    let out = Command::new(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let docs_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kubernetes.md");
    let docs = std::fs::read_to_string(docs_path).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let shown: String = text
            .lines()
            .map(|l| {
                if l.is_empty() {
                    "\n".to_string()
                } else {
                    format!("    {l}\n")
                }
            })
            .collect();
        assert!(
            docs.contains(&shown),
            "docs/kubernetes.md does not show {} as it is",
            file.display()
        );
    }
    // A wrong field is refused: the check is not a no-op.
    let bad = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad-service.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {port: 80}\n",
    )
    .unwrap();
    let refused = Command::new(&script).arg(&bad).output().unwrap();
    assert!(!refused.status.success());
}
