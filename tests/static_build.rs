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

/// What the benchmark's start-up and memory figures rest on (docs/performance.md): a
/// non-PIE executable (no self-relocation at each start) whose start-up code build.rs
/// gathered with .cargo/hot-text.ld, glibc's part next to .init and .iplt.
#[test]
fn static_binary_is_non_pie_with_plain_inits_code_gathered() {
    let bin = support::static_launch();
    let header = Command::new("readelf")
        .args(["-hW"])
        .arg(bin)
        .output()
        .expect("readelf (binutils, with gcc) is installed by scripts/test");
    let header = String::from_utf8_lossy(&header.stdout);
    assert!(
        header.contains("EXEC (Executable file)"),
        "not a fixed-address executable:\n{header}"
    );
    let sections = Command::new("readelf")
        .args(["-SW"])
        .arg(bin)
        .output()
        .unwrap();
    let sections = String::from_utf8_lossy(&sections.stdout);
    let size = |name: &str| {
        sections
            .lines()
            .find(|l| l.split_whitespace().any(|w| w == name))
            .and_then(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                let at = fields.iter().position(|f| *f == "PROGBITS")?;
                u64::from_str_radix(fields.get(at + 3)?, 16).ok()
            })
            .unwrap_or(0)
    };
    // Tens of KiB each when the script's patterns match; 0 when the section is missing.
    assert!(size(".text.hot") > 32 * 1024, "{sections}");
    assert!(size(".text.hot.libc") > 32 * 1024, "{sections}");
    let order: Vec<&str> = sections
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('.') || w.starts_with("__"))
        })
        .collect();
    let at = |name: &str| order.iter().position(|s| *s == name).unwrap_or(usize::MAX);
    assert!(at(".text.hot") < at(".text"), "{order:?}");
    assert!(at(".text") < at(".text.hot.libc"), "{order:?}");
    assert!(at(".text.hot.libc") < at(".iplt"), "{order:?}");
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}
