//! `launch init DIR --name NAME`: a complete, valid project from the built-in image
//! template, and never a change to an existing one.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

    let volume = scratch("shop-volume");
    let check = Command::new(support::launch_bin())
        .args(["check", "--project"])
        .arg(dir.join("project"))
        .arg("--data")
        .arg(&volume)
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
