//! Seeding empty volume paths from the project: complete or not at all, even when
//! killed; never through a symlink, never over existing content.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::project::Project;
use support::wait_until;

/// relative path -> (kind and content or link target, mode)
fn tree(root: &Path) -> BTreeMap<PathBuf, (String, u32)> {
    let mut all = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let what = if meta.file_type().is_symlink() {
                format!("link {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_string()
            } else {
                format!(
                    "file {}",
                    String::from_utf8_lossy(&fs::read(&path).unwrap())
                )
            };
            all.insert(rel, (what, meta.permissions().mode() & 0o7777));
        }
    }
    all
}

fn seeded(name: &str, to: &str) -> Project {
    let p = Project::new(name);
    p.write(
        "project/launch.yml",
        &format!("seed:\n  - {{from: seed/data, to: {to}}}\n"),
    )
    .write("project/seed/data/app.conf", "seeded=1\n")
    .write("project/seed/data/sub/deep.txt", "deep\n");
    fs::set_permissions(
        p.path("project/seed/data/app.conf"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    symlink("app.conf", p.path("project/seed/data/link")).unwrap();
    p
}

#[test]
fn a_missing_target_is_seeded_whole() {
    let p = seeded("seed-missing", "data/state");
    let ran = p.run("check", &[]);
    assert!(ran.stdout.contains("would seed"), "{}", ran.stdout);
    assert!(!p.path("data/data/state").exists(), "check writes nothing");
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    ran.says(&["seeded", "(2 files)"]);
    assert_eq!(
        tree(&p.path("data/data/state")),
        tree(&p.path("project/seed/data"))
    );
    // Seeded once: the next start keeps what the app made of it.
    fs::write(p.path("data/data/state/app.conf"), "changed by the app\n").unwrap();
    p.run("reconfigure", &[]);
    assert_eq!(
        fs::read_to_string(p.path("data/data/state/app.conf")).unwrap(),
        "changed by the app\n"
    );
}

#[test]
fn an_empty_directory_is_seeded() {
    let p = seeded("seed-empty", "data");
    fs::create_dir_all(p.path("data/data")).unwrap();
    assert_eq!(p.run("reconfigure", &[]).code, 0);
    assert_eq!(
        tree(&p.path("data/data")),
        tree(&p.path("project/seed/data"))
    );
}

#[test]
fn a_target_with_content_is_untouched_byte_for_byte() {
    let p = seeded("seed-full", "data");
    p.write("data/data/mine.db", "the operator's data\n");
    let before = tree(&p.path("data/data"));
    let ran = p.run("check", &[]);
    assert!(ran.stdout.contains("keep"), "{}", ran.stdout);
    assert_eq!(p.run("reconfigure", &[]).code, 0);
    assert_eq!(tree(&p.path("data/data")), before);
}

#[test]
fn an_existing_file_is_never_overwritten() {
    let p = seeded("seed-file", "data");
    p.write("data/data", "a file where the tree would go\n");
    assert_eq!(p.run("reconfigure", &[]).code, 0);
    assert_eq!(
        fs::read_to_string(p.path("data/data")).unwrap(),
        "a file where the tree would go\n"
    );
}

#[test]
fn killed_during_a_large_seed_the_next_start_completes_it() {
    let p = seeded("seed-killed", "data/big");
    for i in 0..20_000 {
        p.write(
            &format!("project/seed/data/many/{:03}/f{i}", i % 200),
            &format!("file {i}\n"),
        );
    }
    let root = p.root.display().to_string();
    let mut child = Command::new(support::launch_bin())
        .args(["reconfigure", "--root", &root])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `.launch-seed.<pid>.<random>.big/big`: the copy, inside launch's own directory.
    let temp = wait_until(Duration::from_secs(20), || {
        fs::read_dir(p.path("data/data"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|t| {
                let name = t.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(".launch-seed.") && name.ends_with(".big")
            })
            .filter(|t| t.join("big/many").exists())
    })
    .expect("the seed got under way");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !p.path("data/data/big").exists(),
        "nothing half-filled is in place"
    );

    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        tree(&p.path("data/data/big")),
        tree(&p.path("project/seed/data"))
    );
    assert!(!temp.exists(), "the leftover is gone");
    let names: Vec<_> = fs::read_dir(p.path("data/data"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

/// What a killed seed leaves beside its target goes at the next start: the fixed-name
/// copy of an older launch and the temporary directories of launches that no longer
/// run, without following a symlink inside. A live launch's, and a directory that only
/// carries the name (the parent's writer can rename anything to it), stay.
#[test]
fn leftovers_of_an_interrupted_seed_go_at_the_next_start_and_nothing_else_does() {
    let p = seeded("seed-leftovers", "data/state");
    let away = outside("leftovers");
    fs::write(away.join("precious"), "outside\n").unwrap();
    let data = p.path("data/data");
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let make = |name: &str, mode: u32| {
        let dir = data.join(name);
        fs::create_dir_all(dir.join("state")).unwrap();
        fs::write(dir.join("state/half"), "half a copy\n").unwrap();
        symlink(&away, dir.join("state/escape")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
        dir
    };
    let old_form = make(".launch-seed.state", 0o755);
    let killed = make(
        &format!(".launch-seed.{dead_pid}.0123456789abcdef.state"),
        0o700,
    );
    let live = make(
        &format!(".launch-seed.{}.0123456789abcdef.state", std::process::id()),
        0o700,
    );
    let renamed = make(
        &format!(".launch-seed.{dead_pid}.fedcba9876543210.x"),
        0o755,
    );
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(!old_form.exists(), "the older launch's copy is gone");
    assert!(!killed.exists(), "the killed launch's directory is gone");
    assert!(live.join("state/half").exists(), "a running launch's stays");
    assert!(
        renamed.join("state/half").exists(),
        "what launch did not make stays"
    );
    assert_eq!(tree(&away).len(), 1, "nothing followed outside");
    assert_eq!(
        tree(&p.path("data/data/state")),
        tree(&p.path("project/seed/data"))
    );
    fs::remove_dir_all(away).unwrap();
}

/// A directory outside the volume that must never change.
fn outside(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("launch-outside-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_symlinked_target_is_refused() {
    let p = seeded("seed-link-target", "data/state");
    let away = outside("target");
    fs::create_dir_all(p.path("data/data")).unwrap();
    symlink(&away, p.path("data/data/state")).unwrap();
    let before = p.snapshot();
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 78);
    ran.says(&["is a symlink or not a directory", "never follows a symlink"]);
    assert_eq!(
        fs::read_dir(&away).unwrap().count(),
        0,
        "nothing written outside the volume"
    );
    assert_eq!(p.snapshot(), before);
    fs::remove_dir_all(away).unwrap();
}

#[test]
fn a_symlinked_parent_is_refused() {
    let p = seeded("seed-link-parent", "data/etc/app");
    let away = outside("parent");
    fs::create_dir_all(p.path("data/data")).unwrap();
    symlink(&away, p.path("data/data/etc")).unwrap();
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(&["data/data/etc: is a symlink"]);
    assert_eq!(fs::read_dir(&away).unwrap().count(), 0);
    fs::remove_dir_all(away).unwrap();
}

#[test]
fn symlinks_inside_an_existing_tree_are_left_alone() {
    let p = seeded("seed-link-inside", "data");
    let away = outside("inside");
    fs::write(away.join("precious"), "outside\n").unwrap();
    fs::create_dir_all(p.path("data/data")).unwrap();
    symlink(&away, p.path("data/data/escape")).unwrap();
    assert_eq!(p.run("reconfigure", &[]).code, 0);
    assert_eq!(tree(&away).len(), 1);
    assert_eq!(
        fs::read_to_string(away.join("precious")).unwrap(),
        "outside\n"
    );
    fs::remove_dir_all(away).unwrap();
}

#[test]
fn the_data_directory_belongs_to_the_app_user() {
    let p = seeded("seed-data-owner", "data/state");
    p.write(
        "project/launch.yml",
        "data_owner: nobody:nogroup\nseed:\n  - {from: seed/data, to: data/state, owner: nobody}\n",
    );
    assert_eq!(p.run("reconfigure", &[]).code, 0);
    let meta = fs::metadata(p.path("data/data")).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::gid(&meta)
        ),
        (65534, 65534)
    );
    let seeded = fs::metadata(p.path("data/data/state/app.conf")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&seeded),
        65534,
        "owner applies to seeded files"
    );
}

/// The race the design forbids: while launch seeds (as on a reload, with the app
/// running), someone who can write the volume keeps swapping a directory on the way to
/// the target for a symlink to a directory outside it. Whatever the timing, nothing may
/// land outside: every directory launch checked is the one it writes into.
#[test]
fn a_symlink_swapped_in_while_seeding_is_never_followed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let p = seeded("seed-race", "data/app/files");
    let outside = p.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(p.path("data/data/app")).unwrap();
    let (real, link, parked) = (
        p.path("data/data/app"),
        p.path("data/data/app.link"),
        p.path("data/data/app.real"),
    );
    symlink(&outside, &link).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let stop = stop.clone();
        let (real, link, parked) = (real.clone(), link.clone(), parked.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // app (a directory) <-> app (a symlink to outside), as fast as it goes.
                let _ = fs::rename(&real, &parked);
                let _ = fs::rename(&link, &real);
                std::thread::yield_now();
                let _ = fs::rename(&real, &link);
                let _ = fs::rename(&parked, &real);
                swaps += 1;
            }
            swaps
        })
    };
    let mut seeded_runs = 0;
    // 150 tries, and more (for up to a minute) until one has seeded: on a loaded
    // machine the attacker can win every try of a short run.
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let mut tries = 0;
    while tries < 150 || (seeded_runs == 0 && std::time::Instant::now() < until) {
        tries += 1;
        let ran = p.run("reconfigure", &[]);
        if ran.code == 0 && ran.stderr.contains("seeded") {
            seeded_runs += 1;
            // Empty the target again (wherever the directory is now) for the next try.
            for dir in [&real, &parked] {
                if fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
                    let _ = fs::remove_dir_all(dir.join("files"));
                }
            }
        }
        assert!(
            fs::read_dir(&outside).unwrap().next().is_none(),
            "seeding wrote outside the volume:\n{}",
            ran.stderr
        );
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = attacker.join().unwrap();
    assert!(swaps > 100, "the attacker barely ran ({swaps} swaps)");
    assert!(seeded_runs > 0, "never seeded: the test raced nothing");
}

/// The attacker of the test below: a real unprivileged process (nobody, as the app user
/// of a `data_owner: nobody:nogroup` image is) that loops over the data directory and
/// trades each of launch's temporary directories it sees for a symlink to a victim
/// directory outside the volume. Stopped (and reaped) when dropped.
struct SwapAttacker {
    child: std::process::Child,
    stop: PathBuf,
}

const SWAP_ATTACK: &str = r#"
require "syscall.ph";
my ($dir, $victim, $stop) = @ARGV;
my $n = 0;
until (-e $stop) {
    opendir(my $d, $dir) or next;
    for my $e (readdir $d) {
        next unless $e =~ /^\.launch-seed\./;
        next if -l "$dir/$e";
        symlink($victim, "$dir/bait") unless -l "$dir/bait";
        # RENAME_EXCHANGE (2, at AT_FDCWD -100): launch's directory and the symlink trade
        # places in one step, so launch never finds the name missing in between.
        syscall(&SYS_renameat2, -100, "$dir/$e", -100, "$dir/bait", 2) == 0 or next;
        rename("$dir/bait", "$dir/parked.$n");
        $n++;
    }
    closedir $d;
}
print "$n\n";
"#;

impl SwapAttacker {
    fn start(dir: &Path, victim: &Path, stop: PathBuf) -> SwapAttacker {
        let child = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "perl",
                "-e",
            ])
            .arg(SWAP_ATTACK)
            .args([dir, victim, &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("setpriv and perl run the attacker");
        SwapAttacker { child, stop }
    }

    /// Stops the loop; how many swaps it made.
    fn finish(mut self) -> u64 {
        fs::write(&self.stop, "").unwrap();
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        self.child.wait().unwrap();
        out.trim().parse().unwrap_or(0)
    }
}

impl Drop for SwapAttacker {
    fn drop(&mut self) {
        let _ = fs::write(&self.stop, "");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app user owns data/ and, while launch seeds a large tree into it,
/// renames launch's temporary copy and puts a symlink to a root-owned directory outside
/// the volume in its place. Launch writes only through descriptors of what it created
/// itself: nothing lands in the victim, the target is never that symlink, and the seed
/// is either complete or absent.
#[test]
fn the_app_user_swapping_the_temporary_copy_for_a_symlink_gains_nothing() {
    let p = Project::new("seed-swap-temp");
    p.write(
        "project/launch.yml",
        "data_owner: nobody:nogroup\nseed:\n  - {from: seed/data, to: data/state, owner: nobody}\n",
    );
    for i in 0..3000 {
        p.write(
            &format!("project/seed/data/d{:02}/f{i}", i % 30),
            &format!("file {i}\n"),
        );
    }
    let source = tree(&p.path("project/seed/data"));
    // A root-owned directory outside the volume, laid out as the seed is (the attacker
    // reads the image): a swap at any point of the copy sends the rest there.
    let victim = p.path("victim");
    for i in 0..30 {
        fs::create_dir_all(victim.join(format!("d{i:02}"))).unwrap();
    }
    let victim_before = tree(&victim);
    let data = p.path("data/data");
    let target = data.join("state");
    let attacker = SwapAttacker::start(&data, &victim, p.path("stop"));
    let mut seeded_runs = 0;
    for _ in 0..10 {
        let ran = p.run("reconfigure", &[]);
        let now = tree(&victim);
        assert!(
            now == victim_before,
            "seeding wrote outside the volume: {} entries there, {} before, e.g. {:?}\n{}",
            now.len(),
            victim_before.len(),
            now.keys().find(|k| !victim_before.contains_key(*k)),
            ran.stderr
        );
        match fs::symlink_metadata(&target) {
            Err(_) => {}
            Ok(meta) => {
                assert!(
                    !meta.file_type().is_symlink(),
                    "the target is a symlink: {:?}\n{}",
                    fs::read_link(&target),
                    ran.stderr
                );
                assert_eq!(tree(&target), source, "a half seed is in place");
                seeded_runs += 1;
            }
        }
        // Empty the volume's data again (as root, the attacker still running) so that
        // the next run seeds once more.
        for entry in fs::read_dir(&data).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = fs::remove_dir_all(&path);
            } else {
                let _ = fs::remove_file(&path);
            }
        }
    }
    let swaps = attacker.finish();
    assert!(
        swaps > 0,
        "the attacker never swapped anything: the test raced nothing"
    );
    assert!(seeded_runs > 0, "never seeded: the test raced nothing");
}

#[test]
fn the_volume_always_has_its_three_directories_with_the_documented_modes() {
    // makina's layout: configuration/, data/ and ssh/ after the first start, whatever the
    // spec uses; data/ 0750 even when a seed of `data` brought its source's 0755.
    let p = Project::new("volume-dirs");
    p.write("project/launch.yml", "processes: {}\n");
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let mode = |rel: &str| {
        let meta = fs::metadata(p.path(rel)).unwrap();
        (meta.permissions().mode() & 0o7777, meta.uid())
    };
    assert_eq!(mode("data/configuration"), (0o750, 0));
    assert_eq!(mode("data/data"), (0o750, 0));
    assert_eq!(mode("data/ssh"), (0o700, 0));

    let q = Project::new("volume-dirs-owner");
    q.write(
        "project/launch.yml",
        "data_owner: nobody:nogroup\nseed:\n  - {from: seed/data, to: data}\nprocesses: {}\n",
    )
    .write("project/seed/data/hello.txt", "hi\n");
    fs::set_permissions(
        q.path("project/seed/data"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let ran = q.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let meta = fs::metadata(q.path("data/data")).unwrap();
    assert_eq!(
        (meta.permissions().mode() & 0o7777, meta.uid()),
        (0o750, 65534)
    );
    assert_eq!(
        fs::read_to_string(q.path("data/data/hello.txt")).unwrap(),
        "hi\n"
    );
}
