//! Properties that must hold for every input, checked on many random ones (proptest;
//! cargo-fuzz needs a nightly toolchain these machines cannot fetch):
//!
//! - merging pillar layers: an empty layer changes nothing, and merging is associative
//!   (so `pillar/*.yml` files can be split or joined without changing the result);
//! - seeding random trees into random volumes full of hostile symlinks never writes
//!   outside the volume and never changes a file that was there;
//! - hostile input to every parser (pillar, spec, templates, public keys) is an error
//!   with a position or a clean result, never a panic;
//! - no pillar value changes the spec's structure: whatever it holds, the parsed spec
//!   has the processes, arguments and keys the author wrote, the value whole in each.
//!
//! `PROPTEST_CASES` sets how many inputs each property gets (default 1,000: about ten
//! seconds in all; 4,000 were run once by hand, clean).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_yaml::{Mapping, Value};

use launch::config::pillar::Pillar;
use launch::config::spec::Seed;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000);
    ProptestConfig {
        cases,
        // The failures are written into the test's report, not into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A YAML value: keys from a small alphabet, so that layers collide often.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        "[a-z ]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Sequence),
            prop::collection::btree_map("[a-d]", inner, 0..4).prop_map(|m| {
                Value::Mapping(m.into_iter().map(|(k, v)| (Value::String(k), v)).collect())
            }),
        ]
    })
}

fn layer() -> impl Strategy<Value = Mapping> {
    prop::collection::btree_map("[a-d]", value(), 0..4).prop_map(|m: BTreeMap<String, Value>| {
        m.into_iter().map(|(k, v)| (Value::String(k), v)).collect()
    })
}

/// A layer in which keys `a` and `b` always hold mappings and `c` and `d` never do,
/// at every depth: layers of one shape, as an operator's overrides of an author's
/// defaults are.
fn shaped(depth: u32) -> BoxedStrategy<Mapping> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        "[a-z ]{0,6}".prop_map(Value::String),
        prop::collection::vec("[a-z]{0,3}".prop_map(Value::String), 0..3).prop_map(Value::Sequence),
    ];
    let inner: BoxedStrategy<Option<Mapping>> = if depth == 0 {
        Just(None).boxed()
    } else {
        prop::option::of(shaped(depth - 1)).boxed()
    };
    (
        inner.clone(),
        inner,
        prop::option::of(leaf.clone()),
        prop::option::of(leaf),
    )
        .prop_map(|(a, b, c, d)| {
            let mut m = Mapping::new();
            for (key, value) in [
                ("a", a.map(Value::Mapping)),
                ("b", b.map(Value::Mapping)),
                ("c", c),
                ("d", d),
            ] {
                if let Some(value) = value {
                    m.insert(Value::String(key.into()), value);
                }
            }
            m
        })
        .boxed()
}

fn merged(layers: &[Mapping]) -> Mapping {
    let mut pillar = Pillar::new(false);
    for (i, layer) in layers.iter().enumerate() {
        pillar.merge_layer(format!("layer {i}"), layer.clone());
    }
    pillar.value
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn an_empty_layer_is_an_identity(a in layer()) {
        prop_assert_eq!(merged(&[a.clone(), Mapping::new()]), a.clone());
        prop_assert_eq!(merged(&[Mapping::new(), a.clone()]), a);
    }

    /// Associative wherever the layers agree on which paths hold mappings. Where they
    /// do not (one layer sets `c: null`, a later one `c: {k: v}`), the order of the
    /// layers is the meaning: the null wipes what came before, the mapping then starts
    /// from nothing. Joined into one file, b and c could not say that, so no merge
    /// rule could be associative there (docs/configuration.md).
    #[test]
    fn merging_is_associative(a in shaped(3), b in shaped(3), c in shaped(3)) {
        let left = merged(&[merged(&[a.clone(), b.clone()]), c.clone()]);
        let right = merged(&[a, merged(&[b, c])]);
        prop_assert_eq!(left, right);
    }

    #[test]
    fn a_later_layer_wins_for_every_leaf_it_sets(a in layer(), b in layer()) {
        let all = merged(&[a, b.clone()]);
        for (key, value) in &b {
            if !value.is_mapping() {
                prop_assert_eq!(all.get(key), Some(value));
            }
        }
    }
}

/// What a random tree entry is.
#[derive(Debug, Clone)]
enum Entry {
    File(String),
    Dir,
    /// A symlink to this target (outside the volume, or a relative escape).
    Link(String),
}

fn tree() -> impl Strategy<Value = Vec<(String, Entry)>> {
    let name = prop::sample::select(vec!["a", "b", "c", "a/x", "a/y", "b/x", "a/x/deep"]);
    let target = prop::sample::select(vec![
        "/etc",
        "/tmp",
        "../../outside",
        "../outside/victim",
        "/",
        ".",
        "x",
    ]);
    let entry = prop_oneof![
        "[a-z]{0,12}".prop_map(Entry::File),
        Just(Entry::Dir),
        target.prop_map(|t| Entry::Link(t.to_string())),
    ];
    prop::collection::vec((name.prop_map(String::from), entry), 0..8)
}

/// Writes the entries under `root`; an entry whose parent is not a directory is
/// skipped, as it would be on a real disk.
fn build(root: &Path, entries: &[(String, Entry)]) {
    for (name, entry) in entries {
        let path = root.join(name);
        if fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        let Some(parent) = path.parent() else {
            continue;
        };
        if fs::create_dir_all(parent).is_err() {
            continue;
        }
        let _ = match entry {
            Entry::File(text) => fs::write(&path, text),
            Entry::Dir => fs::create_dir(&path),
            Entry::Link(target) => symlink(target, &path),
        };
    }
}

/// Every entry under `root` (never following a symlink): path, kind, content, mode.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let Ok(entry) = entry else { continue };
        let meta = entry.path().symlink_metadata().unwrap();
        let what = if meta.file_type().is_symlink() {
            format!("link {}", fs::read_link(entry.path()).unwrap().display())
        } else if meta.is_file() {
            let text = fs::read(entry.path()).unwrap();
            format!(
                "file {:o} {}",
                meta.permissions().mode(),
                String::from_utf8_lossy(&text)
            )
        } else if meta.is_dir() {
            format!("dir {:o}", meta.permissions().mode())
        } else {
            format!("special {:o}", meta.permissions().mode())
        };
        out.insert(entry.path().to_path_buf(), what);
    }
    out
}

fn scratch(case: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("prop-seed-{}-{case}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// While it runs, a thread that does what the writer of the volume may: it renames every
/// temporary entry of launch's it sees in `dirs` and puts a symlink to `outside` or a
/// FIFO in its place.
struct Swapper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Swapper {
    fn start(dirs: Vec<PathBuf>, outside: PathBuf, fifo_first: bool) -> Swapper {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for dir in &dirs {
                    let Ok(entries) = fs::read_dir(dir) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        let name = entry.file_name();
                        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                        if !is_dir || !name.to_string_lossy().starts_with(".launch-seed.") {
                            continue;
                        }
                        let at = entry.path();
                        if fs::rename(&at, dir.join(format!("parked.{swaps}"))).is_err() {
                            continue;
                        }
                        if (swaps % 2 == 0) == fifo_first {
                            let _ = nix::unistd::mkfifo(
                                &at,
                                nix::sys::stat::Mode::from_bits_truncate(0o644),
                            );
                        } else {
                            let _ = symlink(&outside, &at);
                        }
                        swaps += 1;
                    }
                }
            }
            swaps
        });
        Swapper { stop, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

proptest! {
    #![proptest_config(config())]

    /// With `swaps`, launch's temporary entries are swapped for symlinks and FIFOs while
    /// it seeds; a second seeding (the next start) then clears what the first left.
    #[test]
    fn seeding_never_writes_outside_the_volume_nor_changes_what_is_there(
        project_tree in tree(),
        volume_tree in tree(),
        targets in prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", "a/x", "a/x/deep", "new/one", "b/x"]),
            1..4,
        ),
        case in any::<u64>(),
        swaps in prop::option::of(any::<bool>()),
    ) {
        let top = scratch(case);
        let (project, volume, outside) = (top.join("project"), top.join("volume"), top.join("outside"));
        fs::create_dir_all(project.join("seed")).unwrap();
        fs::create_dir_all(&volume).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("victim"), "outside, must not change").unwrap();
        build(&project.join("seed"), &project_tree);
        // Sources the seeds copy from: each one exists.
        fs::create_dir_all(project.join("seed/src")).unwrap();
        fs::write(project.join("seed/src/file"), "seeded").unwrap();
        build(&volume, &volume_tree);
        let outside_before = snapshot(&outside);
        let volume_before = snapshot(&volume);
        let seeds: Vec<Seed> = targets
            .iter()
            .map(|to| Seed { from: "seed/src".into(), to: to.into(), owner: None })
            .collect();
        let swapper = swaps.map(|fifo_first| {
            let dirs = ["", "a", "a/x", "b", "new"].iter().map(|d| volume.join(d)).collect();
            Swapper::start(dirs, outside.clone(), fifo_first)
        });
        let _ = launch::volume::seed::apply(&seeds, &project, &volume);
        if let Some(swapper) = swapper {
            swapper.finish();
            let _ = launch::volume::seed::apply(&seeds, &project, &volume);
        }
        prop_assert_eq!(snapshot(&outside), outside_before, "outside the volume changed");
        let after = snapshot(&volume);
        for (path, was) in &volume_before {
            let now = after.get(path);
            // A directory may have been an empty target and be filled now; anything
            // else must be exactly as it was.
            if was.starts_with("dir ") {
                prop_assert!(now.is_some_and(|n| n.starts_with("dir ")), "{} replaced", path.display());
            } else {
                prop_assert_eq!(now, Some(was), "{} changed", path.display());
            }
        }
        // Nothing of launch's is left behind.
        prop_assert!(!after.keys().any(|p| p.to_string_lossy().contains(".launch-seed")));
        fs::remove_dir_all(&top).unwrap();
    }
}

/// An empty project whose files are what the property writes.
fn project_with(files: &[(&str, &str)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "prop-parse-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_dir_all(&dir);
    for (name, text) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

/// Text that looks enough like YAML and Tera to reach deep into the parsers.
fn hostile() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "a:",
        " b: 1",
        "\n",
        "  ",
        "- ",
        "{",
        "}",
        "[",
        "]",
        ",",
        "&x ",
        "*x",
        "!!str ",
        "\"",
        "'",
        "{{ ",
        " }}",
        "{% if x %}",
        "{% endif %}",
        "{% for i in pillar %}",
        "{% endfor %}",
        "pillar.a",
        "| shell_quote",
        "secret(name=\"x\")",
        "\t",
        ":",
        "#",
        "processes:",
        "templates:",
        "command: [",
        "ready: {tcp: ",
        "\u{feff}",
        "é",
        "\0",
        "9999999999999999999999",
        "~",
        "<<: *x",
        "? ",
        "%YAML 1.2\n",
        "---\n",
        "...\n",
    ]);
    prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hostile_pillars_specs_and_templates_are_errors_never_panics(
        pillar in hostile(),
        spec in hostile(),
        template in hostile(),
    ) {
        let root = project_with(&[
            ("project/pillar.yml", &pillar),
            ("project/launch.yml", &format!("templates:\n  - {{src: templates/t, dest: /nonexistent/t}}\n{spec}")),
            ("project/templates/t", &template),
        ]);
        let options = launch::config::reconfigure::Options {
            layout: launch::config::layout::LayoutArgs {
                root: Some(root.clone()),
                ..Default::default()
            },
            sets: vec![],
            track_origins: true,
            ..Default::default()
        };
        // Only the first step: load, merge, render and parse in memory; nothing written.
        let _ = launch::config::reconfigure::plan(&options);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn hostile_key_lines_are_reported_with_their_line_never_panics(
        lines in prop::collection::vec(
            prop_oneof![
                hostile(),
                "(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|from=\"x\" ssh-ed25519) [A-Za-z0-9+/=]{0,120}( [a-z@]{0,10})?",
            ],
            1..6,
        ),
    ) {
        let text = lines.join("\n");
        let dir = project_with(&[("ssh/k.pub", &text)]).join("ssh");
        let (keys, refused) = launch::volume::ssh::read_keys(&dir, false);
        for bad in &refused {
            let text = bad.to_string();
            prop_assert!(text.contains("k.pub:"), "no file:line in {text:?}");
        }
        // One key or one refusal per line at the most.
        prop_assert!(keys.len() + refused.len() <= text.lines().count());
        fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}

/// Pieces of values that would be YAML syntax if the spec took them as text. Each holds
/// a character that no number or true/false has, so no value made of them is typed.
fn syntax_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "\"",
        "'",
        "\n",
        "\r\n",
        "{{ ",
        " }}",
        "{% if x %}",
        "{%",
        ": ",
        "- ",
        "-",
        "#",
        " #",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "&a ",
        "*a",
        "!!tag ",
        "!",
        "\t",
        "é",
        "\u{feff}",
        "\u{E100}",
        "\u{E000}",
        "|",
        ">",
        "---\n",
        "...\n",
        "%YAML 1.2\n",
        "? ",
        "\\",
        "~",
        "x: y",
        "\0",
        "\u{85}",
        "\u{2028}",
        "    ",
        "<<: *a",
    ])
}

/// A spec that puts `pillar.v` in every kind of place a value can go.
const EVERY_PLACE: &str = r#"processes:
  list:
    command: [prog, "{{ pillar.v }}", {{ pillar.v }}, '{{ pillar.v }}', x-{{ pillar.v }}]
    env:
      PLAIN: {{ pillar.v }}
      QUOTED: "{{ pillar.v }}"
      K_{{ pillar.v }}: key
      "Q_{{ pillar.v }}": quoted key
    user: nobody
  block:
    command: |
      echo {{ pillar.v }}
      {{ pillar.v }}
    user: nobody
  flow: {command: [prog, {{ pillar.v }}], env: {F: {{ pillar.v }}}, user: nobody}
"#;

/// The spec of EVERY_PLACE with `pillar.v` set to `value`.
fn spec_with(value: &str) -> Result<launch::config::spec::Spec, String> {
    let mut pillar = Mapping::new();
    pillar.insert(Value::String("v".into()), Value::String(value.into()));
    let pillar = serde_yaml::to_string(&pillar).map_err(|e| e.to_string())?;
    let root = project_with(&[
        ("project/pillar.yml", &pillar),
        ("project/launch.yml", EVERY_PLACE),
    ]);
    let options = launch::config::reconfigure::Options {
        layout: launch::config::layout::LayoutArgs {
            root: Some(root.clone()),
            ..Default::default()
        },
        sets: vec![],
        ..Default::default()
    };
    let plan = launch::config::reconfigure::plan(&options);
    fs::remove_dir_all(&root).unwrap();
    match plan {
        Ok(plan) => Ok(plan.spec),
        Err(errors) => Err(errors.iter().map(|e| format!("{e}\n")).collect()),
    }
}

proptest! {
    #![proptest_config(config())]

    /// docs/security.md: no value can change the spec's structure. The spec with a
    /// hostile value has the processes, argument lists and environment keys of the
    /// same spec with a harmless one, and the value arrives whole wherever it was put.
    #[test]
    fn no_pillar_value_changes_the_structure_of_the_spec(
        pieces in prop::collection::vec(syntax_piece(), 0..12),
    ) {
        use launch::config::spec::Command::{Exec, Shell};
        let v = pieces.concat();
        let harmless = spec_with("ok").unwrap();
        let spec = spec_with(&v).map_err(|e| TestCaseError::fail(format!("{v:?} refused:\n{e}")))?;
        let names = |s: &launch::config::spec::Spec| s.processes.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        prop_assert_eq!(names(&spec), names(&harmless));
        // The keys named by the value, written as the harmless spec's.
        let keys = |p: &launch::config::spec::Process, v: &str| {
            let mut keys: Vec<String> = p
                .env
                .keys()
                .map(|k| match k.get(..2) {
                    Some(prefix @ ("K_" | "Q_")) if &k[2..] == v => format!("{prefix}ok"),
                    _ => k.clone(),
                })
                .collect();
            keys.sort();
            keys
        };
        for (p, h) in spec.processes.iter().zip(&harmless.processes) {
            prop_assert_eq!(keys(p, &v), keys(h, "ok"), "{}", p.name);
            prop_assert_eq!(&p.user, &h.user);
            match (&p.command, &h.command) {
                (Exec(a), Exec(b)) => prop_assert_eq!(a.len(), b.len()),
                (Shell(_), Shell(_)) => {}
                _ => prop_assert!(false, "{}: the command changed form", p.name),
            }
        }
        let list = &spec.processes[0];
        let whole = vec!["prog".to_string(), v.clone(), v.clone(), v.clone(), format!("x-{v}")];
        prop_assert_eq!(&list.command, &Exec(whole));
        for key in ["PLAIN", "QUOTED"] {
            prop_assert_eq!(list.env.get(key), Some(&v));
        }
        prop_assert_eq!(list.env.get(&format!("K_{v}")).map(String::as_str), Some("key"));
        prop_assert_eq!(list.env.get(&format!("Q_{v}")).map(String::as_str), Some("quoted key"));
        prop_assert_eq!(&spec.processes[1].command, &Shell(format!("echo {v}\n{v}\n")));
        prop_assert_eq!(&spec.processes[2].command, &Exec(vec!["prog".into(), v.clone()]));
        prop_assert_eq!(spec.processes[2].env.get("F"), Some(&v));
    }
}
