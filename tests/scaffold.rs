//! `launch init DIR --name NAME`: a complete, valid project from the built-in image
//! template, and never a change to an existing one.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::docker::{Docker, wait_for_page};

fn init(args: &[&str], dir: &Path) -> Output {
    Command::new(support::launch_bin())
        .arg("init")
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(support::unique_tag(name));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            (rel, fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn init_makes_a_project_that_check_accepts() {
    let dir = scratch("shop");
    let out = init(&["--name", "shop"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = files_under(&dir);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "Dockerfile",
        "docker-compose.yml",
        "project/launch.yml",
        "project/pillar.yml",
        "project/templates/index.html",
        "project/seed/data/README.txt",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    for (name, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("__NAME__"), "{name} keeps the placeholder");
    }
    let dockerfile = fs::read_to_string(dir.join("Dockerfile")).unwrap();
    for line in [
        "COPY launch /usr/local/bin/launch",
        "ENV LAUNCH_ROOT=/srv/projects/shop",
        "VOLUME /srv/projects/shop/data",
        "HEALTHCHECK",
        r#"ENTRYPOINT ["/usr/local/bin/launch"]"#,
    ] {
        assert!(dockerfile.contains(line), "{line} not in:\n{dockerfile}");
    }
    // Nothing staged is left beside it.
    let parent = dir.parent().unwrap();
    let leftovers: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".launch-init"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Checked on this machine against the image's files: its accounts (app) and its
    // programs (busybox), which this machine need not have.
    let volume = scratch("shop-volume");
    let image = scratch("shop-image");
    for sub in ["etc", "bin"] {
        fs::create_dir_all(image.join(sub)).unwrap();
    }
    fs::write(
        image.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:999:999::/nonexistent:/usr/sbin/nologin\n",
    )
    .unwrap();
    fs::write(image.join("etc/group"), "root:x:0:\napp:x:999:\n").unwrap();
    fs::write(image.join("bin/busybox"), "").unwrap();
    fs::set_permissions(image.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    let check = Command::new(support::launch_bin())
        .args(["check", "--project"])
        .arg(dir.join("project"))
        .arg("--data")
        .arg(&volume)
        .arg("--image-root")
        .arg(&image)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{err}");
    let diff = String::from_utf8_lossy(&check.stdout);
    assert!(diff.contains("the configuration is valid"), "{diff}");
    assert!(diff.contains("+<p>Hello from shop</p>"), "{diff}");
    assert!(diff.contains("would seed"), "{diff}");
    assert!(!volume.exists(), "check wrote into the volume");
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&image).unwrap();
}

#[test]
fn init_takes_the_directory_name_and_an_empty_directory() {
    let dir = scratch("blog");
    fs::create_dir_all(&dir).unwrap();
    let out = init(&[], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = dir.file_name().unwrap().to_str().unwrap();
    let dockerfile = fs::read_to_string(dir.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains(&format!("/srv/projects/{name}/data")));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn init_never_touches_an_existing_project() {
    let dir = scratch("existing");
    fs::create_dir_all(dir.join("project")).unwrap();
    fs::write(dir.join("project/launch.yml"), "processes: {}\n").unwrap();
    let before = files_under(&dir);
    let out = init(&["--name", "existing"], &dir);
    assert_eq!(out.status.code(), Some(73));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists and is not empty"), "{err}");
    assert!(err.contains(dir.to_str().unwrap()), "{err}");
    assert_eq!(files_under(&dir), before);

    // A file in the way is refused the same way.
    let file = scratch("a-file");
    fs::write(&file, "mine").unwrap();
    assert_eq!(init(&["--name", "x"], &file).status.code(), Some(73));
    assert_eq!(fs::read_to_string(&file).unwrap(), "mine");
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_file(&file).unwrap();
}

#[test]
fn init_refuses_a_name_that_cannot_be_an_image_name() {
    let dir = scratch("bad-name");
    let out = init(&["--name", "My App"], &dir);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a project name"), "{err}");
    assert!(!dir.exists());
}

/// The commands of docs/getting-started.md, for a project named `myapp`: the test runs
/// these (with its own names, a free port, and the local base), and fails if the page
/// says something else.
const DOCUMENTED: &[&str] = &[
    "launch init myapp",
    "cp target/x86_64-unknown-linux-gnu/release/launch myapp/",
    "docker build -t myapp myapp",
    "docker run --rm myapp check",
    "docker run -d --name myapp -p 8080:8080 -v myapp-data:/srv/projects/myapp/data myapp",
    "curl -s http://127.0.0.1:8080/",
    "docker exec myapp launch status",
    "docker stop myapp",
    "docker volume create myapp-ro-data",
    "docker run --rm -v myapp-ro-data:/data --entrypoint chown myapp app:app /data",
    "docker run -d --name myapp-ro -u app --read-only --tmpfs /run:uid=10001,gid=10001 -p 8081:8080 -v myapp-ro-data:/srv/projects/myapp/data myapp",
];

/// The base this machine builds FROM instead of debian:12-slim (it has no registry):
/// scripts/base-image, busybox and the accounts root and app, imported from nothing.
fn local_base(docker: &Docker) -> String {
    let base = format!("{}:base", docker.name("scaffold"));
    docker.remember("image", &base);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/base-image");
    let out = Command::new("timeout")
        .arg("300")
        .arg(script)
        .arg(&base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    base
}

/// Fails unless docs/getting-started.md still shows each of [`DOCUMENTED`].
fn assert_documented() {
    let page =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/getting-started.md"))
            .unwrap();
    for command in DOCUMENTED {
        assert!(
            page.contains(&format!("$ {command}\n")),
            "docs/getting-started.md no longer says `$ {command}`: change this test with it"
        );
    }
}

/// `launch init NAME`, the static launch copied in, `docker build -t NAME:latest` with
/// the local base; the image.
fn init_and_build(docker: &Docker, name: &str) -> String {
    let dir = scratch(name);
    let out = init(&["--name", name], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::copy(support::static_launch(), dir.join("launch")).unwrap();
    let base = format!("BASE={}", local_base(docker));
    let image = format!("{name}:latest");
    docker.remember("image", &image);
    let dir_arg = dir.display().to_string();
    let built = docker.docker(&["build", "-q", "-t", &image, "--build-arg", &base, &dir_arg]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    fs::remove_dir_all(&dir).unwrap();
    image
}

/// Waits until `container` is healthy and serves the project's page; returns the page.
fn serves(docker: &Docker, container: &str, name: &str) -> String {
    docker.wait_healthy(container, Duration::from_secs(30));
    let port = docker.port(container, 8080);
    let hello = format!("Hello from {name}");
    let body = wait_for_page(port, "/", &hello, Duration::from_secs(10));
    let status = docker.ok(&["exec", container, "launch", "status"]);
    assert!(
        status.contains("app") && status.contains("running"),
        "{status}"
    );
    body
}

/// `launch init`'s project, built and run as docs/getting-started.md says (the base
/// swapped for the local one, as the page says for a machine without a registry): it
/// passes `launch check` inside the image, serves its page as the app user, stops
/// cleanly, and runs as the app user on a read-only root with only /run a tmpfs.
#[test]
fn the_project_builds_and_runs_as_getting_started_says() {
    let Some(docker) = Docker::new("scaffold") else {
        return;
    };
    assert_documented();
    let name = docker.name("myapp");
    let image = init_and_build(&docker, &name);

    // `launch check` inside the image: its users, its programs.
    let checked = docker.docker(&["run", "--rm", &image, "check"]);
    let said = String::from_utf8_lossy(&checked.stdout);
    let err = String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "{said}{err}");
    assert!(
        said.contains("launch check: the configuration is valid"),
        "{said}"
    );

    let mount = format!("{}:/srv/projects/{name}/data", docker.volume("data"));
    let app = docker.start("app", &["-p", "127.0.0.1::8080", "-v", &mount, &image]);
    let body = serves(&docker, &app, &name);
    assert!(body.contains(&format!("<title>{name}</title>")), "{body}");
    // busybox httpd runs as the app user the Dockerfile made; the page is root:app 0640.
    let who = "ps -o user,args | grep '[h]ttpd' ; stat -c '%U:%G %a' /run/*/www/index.html";
    let who = docker.sh(&app, who);
    assert!(
        who.contains("app ") && who.contains("root:app 640"),
        "{who}"
    );
    let seeded = docker.sh(
        &app,
        &format!("cat /srv/projects/{name}/data/data/README.txt"),
    );
    assert!(
        seeded.contains(&format!("{name}'s persistent data")),
        "{seeded}"
    );
    assert!(docker.logs(&app).contains("first start of the volume"));
    let (_, code) = docker.stop(&app);
    let logs = docker.logs(&app);
    assert_eq!(code, 0, "{logs}");
    let last = "launch: exiting with 0: stopped by SIGTERM";
    assert!(logs.trim_end().ends_with(last), "{logs}");

    // As the app user, on a read-only root, /run a tmpfs that is the app's: the volume
    // made the app's first, as the operator would (docs/getting-started.md). The local
    // base has its own app (uid 1000), where the Dockerfile makes 10001 on Debian.
    let volume = docker.volume("ro-data");
    let data = format!("{volume}:/data");
    docker.ok(&[
        "run",
        "--rm",
        "-v",
        &data,
        "--entrypoint",
        "chown",
        &image,
        "app:app",
        "/data",
    ]);
    let id = |flag: &str| docker.ok(&["run", "--rm", "--entrypoint", "id", &image, flag, "app"]);
    let (uid, gid) = (id("-u"), id("-g"));
    let run = format!("/run:uid={uid},gid={gid}");
    let mount = format!("{volume}:/srv/projects/{name}/data");
    let ro = [
        "-u",
        "app",
        "--read-only",
        "--tmpfs",
        &run,
        "-p",
        "127.0.0.1::8080",
    ];
    let ro = docker.start("ro", &[&ro[..], &["-v", &mount, &image]].concat());
    serves(&docker, &ro, &name);
    let logs = docker.logs(&ro);
    let not_root = format!("not given: launch runs as uid {uid}, not root");
    assert!(logs.contains(&not_root), "{logs}");
    let (_, code) = docker.stop(&ro);
    assert_eq!(code, 0, "{}", docker.logs(&ro));
}
