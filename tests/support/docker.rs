//! End-to-end tests against the machine's real Docker engine: images built from nothing
//! (`scripts/example-image`, no registry needed), real containers, volumes, networks.
//! Everything a test creates is registered here and removed when its `Docker` drops,
//! pass or fail; every docker command has a hard deadline.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one docker command may take before it is killed (a build included).
const COMMAND_DEADLINE: &str = "300";

/// Whether the tests can use Docker. With `LAUNCH_REQUIRE_DOCKER=1` (CI) a missing
/// engine is a failure, never a silent skip.
pub fn available() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("LAUNCH_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("LAUNCH_REQUIRE_DOCKER=1 but `docker info` fails: start the Docker engine");
    }
    if !ok {
        eprintln!("skipped: no Docker engine (`docker info` fails)");
    }
    ok
}

/// One test's Docker session: a name prefix and what to remove at the end.
pub struct Docker {
    prefix: String,
    containers: Mutex<Vec<String>>,
    volumes: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
    /// Commands run first at cleanup (`stack rm`, `swarm leave`), in reverse order.
    undo: Mutex<Vec<Vec<String>>>,
}

impl Docker {
    /// A session for `test`, or None when there is no engine (and it is not required).
    pub fn new(test: &str) -> Option<Docker> {
        available().then(|| Docker {
            prefix: format!("launch-e2e-{test}-{}", std::process::id()),
            containers: Mutex::default(),
            volumes: Mutex::default(),
            images: Mutex::default(),
            networks: Mutex::default(),
            undo: Mutex::default(),
        })
    }

    /// A name unique to this test and run.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// Builds examples/`example` (or the project directory `example`) into an image,
    /// its base from this machine's `paths`, with the static launch of this test run.
    pub fn build_example(&self, example: &str, paths: &[&str]) -> String {
        let tag = Path::new(example).file_name().unwrap().to_string_lossy();
        let image = format!("{}:{tag}", self.prefix);
        let (name, tag) = image.split_once(':').unwrap();
        self.images.lock().unwrap().push(image.clone());
        self.images
            .lock()
            .unwrap()
            .push(format!("{name}-base:{tag}"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/example-image");
        let out = Command::new("timeout")
            .arg(COMMAND_DEADLINE)
            .arg(script)
            .args([example, &image])
            .args(paths)
            .env("LAUNCH_BIN", super::static_launch())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building the {example} image failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        image
    }

    /// Runs `docker ARGS`; panics with its stderr unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `docker ARGS` under the command deadline, whatever it returns.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg(COMMAND_DEADLINE)
            .arg("docker")
            .args(args)
            .output()
            .unwrap()
    }

    /// `docker run -d` of `args` (options, then the image) as a container named `name`,
    /// removed at the end. Returns the container's name.
    pub fn start(&self, name: &str, args: &[&str]) -> String {
        let name = self.name(name);
        self.containers.lock().unwrap().push(name.clone());
        let mut all = vec!["run", "-d", "--name", &name];
        all.extend_from_slice(args);
        self.ok(&all);
        name
    }

    /// A named volume, removed at the end.
    pub fn volume(&self, what: &str) -> String {
        let name = self.name(what);
        self.volumes.lock().unwrap().push(name.clone());
        self.ok(&["volume", "create", &name]);
        name
    }

    /// Registers a network, an image or a container made by other means for removal.
    pub fn remember(&self, kind: &str, name: &str) {
        let list = match kind {
            "network" => &self.networks,
            "image" => &self.images,
            "volume" => &self.volumes,
            _ => &self.containers,
        };
        list.lock().unwrap().push(name.to_string());
    }

    /// A command to run (`docker ARGS`) at cleanup, before the removals.
    pub fn on_cleanup(&self, args: &[&str]) {
        let args = args.iter().map(|a| a.to_string()).collect();
        self.undo.lock().unwrap().push(args);
    }

    /// The host port that `port`/tcp of `container` is published on.
    pub fn port(&self, container: &str, port: u16) -> u16 {
        let text = self.ok(&["port", container, &format!("{port}/tcp")]);
        let first = text.lines().next().unwrap_or_default();
        first.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// `docker inspect -f FORMAT` of `object`.
    pub fn inspect(&self, object: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, object])
    }

    /// Waits until the container's HEALTHCHECK says healthy; panics with its logs if it
    /// does not within `timeout`.
    pub fn wait_healthy(&self, container: &str, timeout: Duration) {
        let healthy = super::wait_until(timeout, || {
            (self.inspect(container, "{{.State.Health.Status}}") == "healthy").then_some(())
        });
        if healthy.is_none() {
            panic!(
                "{container} did not become healthy in {timeout:?}:\n{}\nlogs:\n{}",
                self.inspect(container, "{{json .State.Health}}"),
                self.logs(container)
            );
        }
    }

    /// The container's stdout and stderr so far.
    pub fn logs(&self, container: &str) -> String {
        let out = self.docker(&["logs", container]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `docker exec CONTAINER sh -c SCRIPT`, which must succeed; returns stdout.
    pub fn sh(&self, container: &str, script: &str) -> String {
        self.ok(&["exec", container, "sh", "-c", script])
    }

    /// The path on this machine of a named volume's contents.
    pub fn volume_path(&self, volume: &str) -> String {
        self.inspect(volume, "{{.Mountpoint}}")
    }

    /// `docker stop` of the container; returns how long it took and its exit code.
    pub fn stop(&self, container: &str) -> (Duration, i32) {
        let started = Instant::now();
        self.ok(&["stop", container]);
        let took = started.elapsed();
        let code = self.inspect(container, "{{.State.ExitCode}}");
        (took, code.parse().unwrap())
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = self.docker(args);
        };
        for args in self.undo.lock().unwrap().iter().rev() {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            quiet(&args);
        }
        for c in self.containers.lock().unwrap().iter() {
            quiet(&["rm", "-f", "-v", c]);
        }
        for v in self.volumes.lock().unwrap().iter() {
            quiet(&["volume", "rm", "-f", v]);
        }
        for n in self.networks.lock().unwrap().iter() {
            quiet(&["network", "rm", n]);
        }
        for i in self.images.lock().unwrap().iter() {
            quiet(&["rmi", "-f", i]);
        }
    }
}

/// A plain HTTP/1.0 GET of `path` on 127.0.0.1:`port`: the status line's code and the
/// body, or None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// Polls `http_get` until the body contains `needle`; returns the last body.
pub fn wait_for_page(port: u16, path: &str, needle: &str, timeout: Duration) -> String {
    let mut last = String::new();
    let found = super::wait_until(timeout, || {
        if let Some((_, body)) = http_get(port, path) {
            last = body;
        }
        last.contains(needle).then_some(())
    });
    assert!(
        found.is_some(),
        "port {port}{path} never said {needle:?}; last:\n{last}"
    );
    last
}
