//! `launch check`: is each process's program in the image? An absolute path must be an
//! executable file under the image's root; a bare name must be one in a directory of
//! the PATH the process will have (its `env.PATH`, else launch's own, else Docker's
//! default). Looked up with `openat2(RESOLVE_IN_ROOT)`, so that a symlink in the image
//! (`/bin/sh -> /bin/busybox`) is followed inside the image's root, as it is in the
//! container, never out to the machine `launch check` runs on.
//!
//! Only `check` asks: at start, a program that a oneshot installs before it is needed
//! is no mistake, and a missing one is reported when its start fails.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};

use super::check::Checker;
use super::{Command, Spec, SpecError, instances};
use crate::config::spec_text::SpecText;
use crate::config::yaml::Seg;

/// PATH when neither the process nor launch has one (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the lookup found for one program.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// An executable file.
    Executable,
    /// A file (or directory) that cannot be executed, at this path.
    NotExecutable(String),
    /// Nothing.
    Missing,
}

/// Where the image is and the PATH a process gets when its spec gives none.
#[derive(Debug, Clone)]
pub struct Image<'a> {
    /// The root of the image's files (`/` inside the container).
    pub root: &'a Path,
    /// PATH for processes whose `env` has none.
    pub path: &'a str,
}

/// Every process whose program is not in the image, at its `command`'s line.
pub fn check(file: &Path, text: &SpecText, spec: &Spec, image: &Image<'_>) -> Vec<SpecError> {
    let mut c = Checker {
        file,
        text,
        errors: Vec::new(),
    };
    let root = match open_root(image.root) {
        Ok(root) => root,
        Err(e) => {
            c.error(
                &[],
                format!("the image's root {}: {e}", image.root.display()),
                "give --image-root the directory the image's files are in (e.g. docker export $(docker create IMAGE) | tar -x -C DIR)",
            );
            return c.errors;
        }
    };
    let mut seen = BTreeSet::new();
    for p in &spec.processes {
        let written = written_name(&p.name, &p.env);
        // The copies of one process (instances:) share its command: one report.
        if !seen.insert(written.to_string()) {
            continue;
        }
        let program = match &p.command {
            Command::Exec(argv) => match argv.first() {
                Some(first) => first.as_str(),
                None => continue,
            },
            Command::Shell(_) => "/bin/sh",
        };
        let path = p.env.get("PATH").map_or(image.path, String::as_str);
        let at = [
            Seg::from("processes"),
            Seg::Key(written.to_string()),
            Seg::from("command"),
        ];
        let under = if image.root == Path::new("/") {
            String::new()
        } else {
            format!(" under {}", image.root.display())
        };
        match lookup(&root, program, path) {
            Found::Executable => {}
            Found::NotExecutable(at_path) => c.error(
                &at,
                format!("process {written}: {at_path}{under} is not an executable file"),
                format!("make it executable in the image (chmod +x {at_path}), or run another program"),
            ),
            Found::Missing if program.starts_with('/') => c.error(
                &at,
                format!("process {written}: {program} does not exist{under}"),
                "install it in the image (Dockerfile), or correct the path",
            ),
            Found::Missing if program.contains('/') => {}
            Found::Missing => c.error(
                &at,
                format!("process {written}: {program:?} is not found on PATH={path}{under}"),
                format!(
                    "install it in the image (Dockerfile), write its full path, or add its directory to env.PATH of process {written}"
                ),
            ),
        }
    }
    c.errors
}

/// The name the author wrote: a copy `web.2` (with `LAUNCH_INSTANCE=2`) is `web`.
fn written_name<'a>(name: &'a str, env: &std::collections::BTreeMap<String, String>) -> &'a str {
    match (name.rsplit_once('.'), env.get(instances::VAR)) {
        (Some((base, number)), Some(i)) if number == i => base,
        _ => name,
    }
}

fn open_root(root: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
}

/// Looks `program` up as execvp would, inside `root`: itself when it names an absolute
/// path, else in each absolute directory of `path`. A relative path (`./app`) depends
/// on the working directory at run time: not looked up (reported as missing, which the
/// caller does not report).
fn lookup(root: &OwnedFd, program: &str, path: &str) -> Found {
    if program.starts_with('/') {
        return probe(root, program);
    }
    if program.contains('/') {
        return Found::Missing;
    }
    let mut first_denied = None;
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let full = format!("{}/{program}", dir.trim_end_matches('/'));
        match probe(root, &full) {
            Found::Executable => return Found::Executable,
            Found::NotExecutable(at) => {
                first_denied.get_or_insert(at);
            }
            Found::Missing => {}
        }
    }
    first_denied.map_or(Found::Missing, Found::NotExecutable)
}

/// One path inside `root`: symlinks followed, `..` and absolute targets kept inside it.
fn probe(root: &OwnedFd, path: &str) -> Found {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let Ok(fd) = openat2(root, path.trim_start_matches('/'), how) else {
        return Found::Missing;
    };
    match nix::sys::stat::fstat(&fd) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & 0o111 != 0 => {
            Found::Executable
        }
        _ => Found::NotExecutable(path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn programs_are_found_inside_the_root_only() {
        let root = std::env::temp_dir().join(format!("launch-programs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["bin", "usr/bin", "opt/app"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let exe = |rel: &str, mode: u32| {
            std::fs::write(root.join(rel), "").unwrap();
            std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode))
                .unwrap();
        };
        exe("bin/busybox", 0o755);
        exe("usr/bin/data", 0o644);
        std::os::unix::fs::symlink("/bin/busybox", root.join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/env", root.join("bin/host-env")).unwrap();
        std::os::unix::fs::symlink("../../../../../bin/busybox", root.join("opt/app/up")).unwrap();
        let fd = open_root(&root).unwrap();
        let path = "/usr/bin:/bin";
        for (program, want) in [
            ("busybox", Found::Executable),
            ("/bin/sh", Found::Executable),
            ("sh", Found::Executable),
            ("/opt/app/up", Found::Executable),
            ("data", Found::NotExecutable("/usr/bin/data".into())),
            ("/opt/app", Found::NotExecutable("/opt/app".into())),
            ("nope", Found::Missing),
            ("/bin/nope", Found::Missing),
            // The machine's /usr/bin/env exists; the image's does not.
            ("host-env", Found::Missing),
            ("./busybox", Found::Missing),
        ] {
            assert_eq!(lookup(&fd, program, path), want, "{program}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_copy_is_reported_under_the_name_written() {
        let env = |i: &str| {
            std::collections::BTreeMap::from([(instances::VAR.to_string(), i.to_string())])
        };
        assert_eq!(written_name("web.2", &env("2")), "web");
        assert_eq!(written_name("web.2", &env("1")), "web.2");
        assert_eq!(written_name("a.b", &Default::default()), "a.b");
    }
}
