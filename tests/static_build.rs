//! The image binary: `cargo static` makes a launch that runs with no libraries at all,
//! as it must in an image built FROM scratch.

mod support;

use std::fs;
use std::process::Command;

#[test]
fn static_binary_runs_in_an_empty_root() {
    let bin = support::static_launch();
    let root = tempdir("empty-root");
    fs::copy(bin, root.join("launch")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| fs::metadata(p).is_ok())
        .expect("busybox-static is installed by scripts/test");
    fs::copy(busybox, root.join("busybox")).unwrap();
    // No /lib, no ld.so, no /proc: only the two binaries, as PID 1 of a new namespace.
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "--root"])
        .arg(&root)
        .args([
            "/launch",
            "--",
            "/busybox",
            "sh",
            "-c",
            "echo from scratch; exit 7",
        ])
        .output()
        .unwrap();
    fs::remove_dir_all(&root).unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from scratch\n");
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}
