//! Configuration: layout, pillar layers, the spec, templates, `launch check` and
//! `launch reconfigure`, against real files. Every bad input must get a clear error
//! and change no file.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use support::project::Project;

/// A project with one template rendered from the pillar into out/app.conf.
fn basic(name: &str) -> Project {
    let p = Project::new(name);
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!(
            "templates:\n  - src: templates/app.conf\n    dest: {out}/app.conf\n    mode: \"0640\"\n"
        ),
    )
    .write("project/pillar.yml", "# The app's port.\nport: 8080\nname: demo\nlimits: {cpu: 1, mem: 2}\n")
    .write("project/templates/app.conf", "name={{ pillar.name }}\nport={{ pillar.port }}\n");
    p
}

/// Asserts that `run` failed with a config error and changed no file.
fn refused(p: &Project, sub: &str, needles: &[&str]) {
    let before = p.snapshot();
    let ran = p.run(sub, &[]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(needles).says(&["nothing was written"]);
    assert_eq!(p.snapshot(), before, "no file may change");
}

#[test]
fn check_prints_a_diff_and_writes_nothing() {
    let p = basic("check-diff");
    let before = p.snapshot();
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("+++ "), "{}", ran.stdout);
    assert!(ran.stdout.contains("+port=8080"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("would create"),
        "first start is announced: {}",
        ran.stdout
    );
    assert!(ran.stdout.contains("1 of 1 file would change"));
    assert_eq!(p.snapshot(), before);
}

#[test]
fn reconfigure_writes_changed_outputs_only() {
    let p = basic("reconfigure");
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let conf = p.path("out/app.conf");
    assert_eq!(fs::read_to_string(&conf).unwrap(), "name=demo\nport=8080\n");
    assert_eq!(
        fs::metadata(&conf).unwrap().permissions().mode() & 0o7777,
        0o640
    );

    // Unchanged: not rewritten (mtime kept), and said so.
    let before = p.snapshot();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let ran = p.run("reconfigure", &[]);
    ran.says(&["0 written, 1 unchanged"]);
    assert_eq!(p.snapshot(), before);

    // The operator changes a value: the output follows, and check shows it first.
    let mut operator = fs::read_to_string(p.path("data/configuration/pillar.yml")).unwrap();
    operator.push_str("port: 9090\n");
    p.write("data/configuration/pillar.yml", &operator);
    let ran = p.run("check", &[]);
    assert!(
        ran.stdout.contains("-port=8080\n+port=9090"),
        "{}",
        ran.stdout
    );
    p.run("reconfigure", &[]).says(&["updated", "1 written"]);
    assert_eq!(fs::read_to_string(&conf).unwrap(), "name=demo\nport=9090\n");
    // No temporary left beside the output.
    assert_eq!(fs::read_dir(p.path("out")).unwrap().count(), 1);
}

#[test]
fn a_changed_mode_alone_is_corrected_without_rewriting_content() {
    let p = basic("mode-only");
    p.run("reconfigure", &[]);
    let conf = p.path("out/app.conf");
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o666)).unwrap();
    p.run("reconfigure", &[]).says(&["set mode/owner of"]);
    assert_eq!(
        fs::metadata(&conf).unwrap().permissions().mode() & 0o7777,
        0o640
    );
}

#[test]
fn layers_merge_in_order_and_show_where_each_value_came_from() {
    let p = basic("layers");
    p.write("pillar/20-late.yml", "port: 2\nlimits: {mem: 20}\n")
        .write(
            "pillar/10-early.yml",
            "port: 1\nname: early\nlimits: {cpu: 10}\n",
        )
        .write("pillar/ignored.txt", "port: 666\n")
        .write("data/configuration/pillar.yml", "port: 3\n");
    let ran = p.run("check", &["--show-pillar", "--set", "limits.cpu=99"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out = &ran.stdout;
    assert!(out.contains("+name=early\n+port=3"), "{out}");
    assert!(
        out.contains("port: 3  # from ") && out.contains("data/configuration/pillar.yml"),
        "{out}"
    );
    assert!(
        out.contains("limits.mem: 20  # from ") && out.contains("pillar/20-late.yml"),
        "{out}"
    );
    assert!(
        out.contains("limits.cpu: 99  # from --set limits.cpu=99"),
        "{out}"
    );
    assert!(
        out.contains("name: \"early\"  # from ") && out.contains("pillar/10-early.yml"),
        "{out}"
    );
}

#[test]
fn the_operator_file_is_created_once_with_every_default_commented_out() {
    let p = basic("operator-file");
    p.run("reconfigure", &[]).says(&["created"]);
    let file = p.path("data/configuration/pillar.yml");
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("## The app's port.\n# port: 8080\n"),
        "{text}"
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(
        fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o750
    );
    // Uncommenting a knob is all an operator does; launch never touches the file again.
    fs::write(&file, text.replace("# port: 8080", "port: 7000")).unwrap();
    let edited = fs::read_to_string(&file).unwrap();
    p.run("reconfigure", &[]);
    assert_eq!(fs::read_to_string(&file).unwrap(), edited);
    assert!(
        fs::read_to_string(p.path("out/app.conf"))
            .unwrap()
            .contains("port=7000")
    );
}

#[test]
fn invalid_yaml_in_the_defaults_is_refused() {
    let p = basic("bad-defaults");
    p.write("project/pillar.yml", "port: 8080\nname: [unclosed\n");
    refused(&p, "reconfigure", &["project/pillar.yml:3:1", "fix:"]);
}

#[test]
fn invalid_yaml_in_an_image_override_is_refused() {
    let p = basic("bad-override");
    p.write("pillar/10-x.yml", "a: b: c\n");
    refused(&p, "reconfigure", &["pillar/10-x.yml:1:5", "1 | a: b: c"]);
}

#[test]
fn invalid_yaml_in_the_operator_file_is_refused() {
    let p = basic("bad-operator");
    p.write("data/configuration/pillar.yml", "port: 1\n port: 2\n");
    refused(
        &p,
        "reconfigure",
        &["data/configuration/pillar.yml:2:", "2 |  port: 2"],
    );
}

#[test]
fn every_broken_layer_is_reported_at_once() {
    let p = basic("bad-all");
    p.write("pillar/10-x.yml", "a: b: c\n")
        .write("data/configuration/pillar.yml", "- a list\n");
    refused(
        &p,
        "check",
        &[
            "pillar/10-x.yml:1",
            "configuration/pillar.yml:1",
            "2 problems",
        ],
    );
}

#[test]
fn tab_indentation_gets_its_own_hint() {
    let p = basic("tabs");
    p.write("data/configuration/pillar.yml", "limits:\n\tcpu: 2\n");
    refused(
        &p,
        "reconfigure",
        &["configuration/pillar.yml:2:1", "not tabs", "2 | →cpu: 2"],
    );
}

#[test]
fn a_top_level_that_is_not_a_mapping_is_refused() {
    let p = basic("not-mapping");
    p.write("data/configuration/pillar.yml", "- port: 1\n");
    refused(
        &p,
        "reconfigure",
        &["the top level is a list", "key: value"],
    );
}

#[test]
fn an_alias_bomb_is_refused_fast_in_bounded_memory() {
    let p = basic("bomb");
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    p.write("data/configuration/pillar.yml", &bomb);
    let before = p.snapshot();
    // 512 MiB of address space: expanding the bomb would need gigabytes.
    let out = Command::new("sh")
        .args([
            "-c",
            "ulimit -v 524288 && exec \"$0\" reconfigure --root \"$1\"",
            support::launch_bin(),
        ])
        .arg(&p.root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("configuration/pillar.yml"), "{stderr}");
    assert!(stderr.contains("aliases"), "{stderr}");
    assert_eq!(p.snapshot(), before);
}

#[test]
fn a_ten_megabyte_pillar_works() {
    let p = basic("big-pillar");
    let mut big = String::from("port: 8080\nname: big\nbulk:\n");
    let mut i = 0;
    while big.len() < 10 * 1024 * 1024 {
        big.push_str(&format!(
            "  key{i}: {{value: \"some text for entry {i}\", n: {i}, list: [1, 2, 3]}}\n"
        ));
        i += 1;
    }
    p.write("data/configuration/pillar.yml", &big);
    // `bulk` is the image's to open to free-form keys: an empty mapping as its default.
    p.write(
        "project/pillar.yml",
        "port: 8080\nname: demo\nlimits: {cpu: 1, mem: 2}\nbulk: {}\n",
    );
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        "name=big\nport=8080\n"
    );
}

#[test]
fn an_undefined_variable_names_the_template_line_and_variable() {
    let p = basic("undefined");
    p.write(
        "project/templates/app.conf",
        "name={{ pillar.name }}\nport={{ pillar.prot }}\n",
    );
    refused(
        &p,
        "reconfigure",
        &[
            "templates/app.conf:2:",
            "prot",
            "2 | port={{ pillar.prot }}",
            "default(value=",
        ],
    );
}

#[test]
fn a_tera_syntax_error_is_located() {
    let p = basic("syntax");
    p.write(
        "project/templates/app.conf",
        "{% if pillar.port %}\nport={{ pillar.port }\n",
    );
    refused(&p, "check", &["templates/app.conf:2:", "Tera syntax"]);
}

#[test]
fn an_include_of_a_missing_file_is_refused() {
    let p = basic("include");
    p.write(
        "project/templates/app.conf",
        "{% include \"parts/missing.conf\" %}\n",
    );
    refused(
        &p,
        "reconfigure",
        &[
            "templates/app.conf:1:",
            "parts/missing.conf",
            "create the included file",
        ],
    );
}

#[test]
fn includes_and_components_from_templates_work() {
    let p = basic("components");
    p.write("project/templates/parts/head.conf", "# {{ pillar.name }}\n")
        .write(
            "project/templates/_components.conf",
            "{% component kv(key, value) %}{{ key }} = {{ value }}{% endcomponent kv %}",
        )
        .write(
            "project/templates/app.conf",
            "{% include \"parts/head.conf\" %}{{<kv key=\"port\" value={pillar.port} />}}\n",
        );
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        "# demo\nport = 8080\n"
    );
}

#[test]
fn a_destination_that_is_a_directory_is_refused() {
    let p = basic("dest-dir");
    fs::create_dir_all(p.path("out/app.conf")).unwrap();
    refused(
        &p,
        "reconfigure",
        &["out/app.conf: exists and is a directory"],
    );
}

#[test]
fn an_unwritable_destination_is_refused_and_nothing_is_half_written() {
    let p = basic("readonly");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!(
            "templates:\n  - src: templates/app.conf\n    dest: {out}/first.conf\n  - src: templates/app.conf\n    dest: {out}/ro/app.conf\n"
        ),
    );
    fs::create_dir_all(p.path("out/ro")).unwrap();
    let before = p.snapshot();
    // As root, permissions do not stop a write: a read-only mount does (a read-only
    // volume), in a mount namespace of the test's own.
    let script = "mount --bind \"$2\" \"$2\" && mount -o remount,bind,ro \"$2\" && exec \"$0\" reconfigure --root \"$1\"";
    let ran = Command::new("unshare")
        .args(["--mount", "sh", "-c", script, support::launch_bin()])
        .arg(&p.root)
        .arg(p.path("out/ro"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("out/ro/app.conf: cannot write"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert_eq!(
        p.snapshot(),
        before,
        "the first, writable, output must not be written either"
    );
}

#[test]
fn two_templates_with_one_destination_are_refused() {
    let p = basic("same-dest");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("templates:\n  - src: templates/app.conf\n    dest: {out}/x\n  - src: templates/app.conf\n    dest: {out}/x\n"),
    );
    refused(
        &p,
        "check",
        &["launch.yml:5", "two templates write", "entries 1 and 2"],
    );
}

#[test]
fn a_failing_check_command_keeps_the_old_file() {
    let p = basic("check-cmd");
    p.run("reconfigure", &[]);
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("templates:\n  - src: templates/app.conf\n    dest: {out}/app.conf\n    mode: \"0640\"\n    check: \"grep -q port=9 {{{{ staged }}}} || {{ echo port must start with 9 >&2; exit 3; }}\"\n"),
    );
    p.write("data/configuration/pillar.yml", "port: 1234\n");
    refused(
        &p,
        "reconfigure",
        &[
            "the check `grep -q port=9",
            "port must start with 9",
            "old file is untouched",
        ],
    );
    // And a passing check lets it through.
    p.write("data/configuration/pillar.yml", "port: 9999\n");
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        fs::read_to_string(p.path("out/app.conf"))
            .unwrap()
            .contains("port=9999")
    );
}

#[test]
fn one_broken_template_means_no_output_is_written() {
    let p = basic("all-or-nothing");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("templates:\n  - src: templates/app.conf\n    dest: {out}/good.conf\n  - src: templates/bad.conf\n    dest: {out}/bad.conf\n"),
    )
    .write("project/templates/bad.conf", "{{ pillar.nope }}\n");
    refused(&p, "reconfigure", &["templates/bad.conf:1:"]);
}

#[test]
fn spec_problems_are_all_reported_with_lines() {
    let p = basic("spec-errors");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("templates:\n  - src: templates/app.conf\n    dest: {out}/a\n    notify: [web]\nprocesses:\n  app:\n    comand: [x]\n  db:\n    command: [y]\n    depends_on: [cache]\n"),
    );
    refused(
        &p,
        "check",
        &[
            "launch.yml:4",
            "notify names \"web\"",
            "launch.yml:7",
            "did you mean `command`?",
            "launch.yml:10",
            "\"cache\"",
            "3 problems",
        ],
    );
}

#[test]
fn the_spec_is_rendered_with_the_pillar_first() {
    let p = basic("spec-tera");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!("templates:\n{{% if pillar.extra %}}\n  - src: templates/app.conf\n    dest: {out}/extra.conf\n{{% endif %}}\n  - src: templates/app.conf\n    dest: {out}/app.conf\n"),
    )
    .write("project/pillar.yml", "extra: false\nport: 1\nname: n\n");
    p.run("reconfigure", &[]);
    assert!(!p.path("out/extra.conf").exists());
    p.run("reconfigure", &["--set", "extra=true"]);
    assert!(p.path("out/extra.conf").exists());
}

#[test]
fn config_files_are_not_html_escaped_and_have_config_filters() {
    let p = basic("filters");
    let out = p.out();
    p.write(
        "project/launch.yml",
        // The spec's values are escaped (into tokens): a template named like it is not.
        &format!("templates:\n  - src: templates/app.xml\n    dest: {out}/app.xml\n  - src: templates/x/launch.yml\n    dest: {out}/launch.yml\n"),
    )
    .write("project/pillar.yml", "expr: \"a < b && c > 'd'\"\nlist: [1, two]\nmap: {k: v}\n")
    .write("project/templates/x/launch.yml", "v: {{ pillar.expr }}\n")
    .write(
        "project/templates/app.xml",
        "<v>{{ pillar.expr }}</v>\njson={{ pillar.map | to_json }}\n{{ pillar.list | to_yaml }}sh={{ pillar.expr | shell_quote }}\nd={{ pillar.missing | default(value=\"fallback\") }}\n",
    );
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        fs::read_to_string(p.path("out/app.xml")).unwrap(),
        "<v>a < b && c > 'd'</v>\njson={\"k\":\"v\"}\n- 1\n- two\nsh='a < b && c > '\\''d'\\'''\nd=fallback\n"
    );
    assert_eq!(
        fs::read_to_string(p.path("out/launch.yml")).unwrap(),
        "v: a < b && c > 'd'\n"
    );
}

/// `image` is the pillar without the operator's layer: what the spec takes for
/// destinations, users and paths, which the operator must not choose.
#[test]
fn image_is_the_pillar_without_the_operators_layer() {
    let p = basic("image-layer");
    let out = p.out();
    p.write(
        "project/launch.yml",
        "templates:\n  - src: templates/app.conf\n    dest: \"{{ image.dir }}/app.conf\"\n",
    )
    .write("project/pillar.yml", "dir: /nonexistent\nport: 1\n")
    .write("pillar/10-image.yml", &format!("dir: {out}\n"))
    .write("data/configuration/pillar.yml", "dir: /etc\nport: 2\n")
    .write(
        "project/templates/app.conf",
        "{{ pillar.dir }} {{ image.dir }} {{ pillar.port }} {{ image.port }}\n",
    );
    let ran = p.run("reconfigure", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        format!("/etc {out} 2 1\n")
    );
    // launch's command line is the image's (or root's), not the operator's.
    let ran = p.run("check", &["--set", &format!("dir={out}/sub")]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains(&format!("+++ {out}/sub/app.conf")),
        "{}",
        ran.stdout
    );
}

#[test]
fn secrets_are_rendered_but_never_shown() {
    let p = basic("secrets");
    p.write("secrets/db_password", "hunter2-very-secret\n")
        .write(
            "project/templates/app.conf",
            "password={{ secret(name=\"db_password\") }}\n",
        );
    let dir = p.path("secrets").display().to_string();
    let env = [("LAUNCH_SECRETS_DIR", dir.as_str())];
    let ran = p.run_env("check", &[], &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("+password=********"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("hunter2") && !ran.stderr.contains("hunter2"));
    let ran = p.run_env("reconfigure", &[], &env);
    assert!(!ran.stderr.contains("hunter2"));
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        "password=hunter2-very-secret\n"
    );
    // A missing secret says where it was looked for and how to provide it.
    fs::remove_file(p.path("secrets/db_password")).unwrap();
    let ran = p.run_env("check", &[], &env);
    assert_eq!(ran.code, 78);
    ran.says(&["secret \"db_password\" is not in", "docker secret create"]);
}

#[test]
fn a_bind_mounted_destination_is_written_in_place() {
    let p = basic("bind-mount");
    p.write("out/app.conf", "old\n").write("host-file", "old\n");
    let script = "mount --bind \"$2\" \"$3\" && \"$0\" reconfigure --root \"$1\" && cat \"$2\"";
    let ran = Command::new("unshare")
        .args(["--mount", "sh", "-c", script, support::launch_bin()])
        .arg(&p.root)
        .arg(p.path("host-file"))
        .arg(p.path("out/app.conf"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "{stderr}");
    assert!(
        stderr.contains("is a bind-mounted file; it was written in place"),
        "{stderr}"
    );
    // The file behind the mount got the new content.
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "name=demo\nport=8080\n"
    );
    assert_eq!(
        fs::read_to_string(p.path("host-file")).unwrap(),
        "name=demo\nport=8080\n"
    );
}

#[test]
fn the_layout_is_found_under_srv_projects_or_said_missing() {
    // A private /srv, so the machine's is untouched.
    let launch = support::launch_bin();
    let script = "mount -t tmpfs tmpfs /srv && mkdir -p /srv/projects/one/project && \
                  printf 'processes: {}\\n' > /srv/projects/one/project/launch.yml && \
                  \"$0\" check && mkdir /srv/projects/two && ! \"$0\" check";
    let ran = Command::new("unshare")
        .args(["--mount", "sh", "-c", script, launch])
        .env_remove("LAUNCH_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("the configuration is valid"), "{stdout}");
    assert!(
        stderr.contains("holds several projects (one, two)"),
        "{stderr}"
    );

    let p = Project::new("no-spec");
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 78);
    ran.says(&["project/launch.yml: not found", "launch init"]);
}

#[test]
fn maps_iterate_in_the_pillar_order_so_unchanged_stays_unchanged() {
    let p = basic("map-order");
    let keys: Vec<String> = (0..40).map(|i| format!("k{:02}", (i * 17) % 40)).collect();
    let pillar: String = keys.iter().map(|k| format!("  {k}: 1\n")).collect();
    p.write(
        "project/pillar.yml",
        &format!("port: 1\nname: n\nmap:\n{pillar}"),
    )
    .write(
        "project/templates/app.conf",
        "{% for k, v in pillar.map %}{{ k }}\n{% endfor %}",
    );
    p.run("reconfigure", &[]);
    let rendered = fs::read_to_string(p.path("out/app.conf")).unwrap();
    assert_eq!(
        rendered.lines().collect::<Vec<_>>(),
        keys,
        "the YAML order, not a hash order"
    );
    for _ in 0..3 {
        p.run("reconfigure", &[]).says(&["0 written, 1 unchanged"]);
    }
}

#[test]
fn the_configuration_directory_gets_its_mode_back() {
    let p = basic("config-dir-mode");
    p.write("data/configuration/pillar.yml", "port: 1\n");
    let dir = p.path("data/configuration");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(p.run("reconfigure", &[]).code, 0);
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o750
    );
    assert_eq!(
        fs::read_to_string(dir.join("pillar.yml")).unwrap(),
        "port: 1\n",
        "the operator's file is untouched"
    );
}

#[test]
fn an_unknown_or_empty_host_key_list_is_refused_with_the_choices() {
    let p = Project::new("host-keys");
    p.write(
        "project/launch.yml",
        "ssh:\n  sshd: true\n  host_keys: [ed25519, dsa]\nprocesses: {}\n",
    );
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 78);
    ran.says(&[
        "launch.yml:1",
        "unknown variant `dsa`",
        "use one of: ed25519, rsa",
    ]);
    p.write(
        "project/launch.yml",
        "ssh:\n  sshd: true\n  host_keys: []\nprocesses: {}\n",
    );
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 78);
    ran.says(&[
        "launch.yml:3",
        "no host key type given",
        "host_keys: [ed25519]",
    ]);
}

#[test]
fn typos_and_wrong_types_are_caught_at_the_operators_line() {
    let p = basic("schema");
    p.write(
        "project/pillar.yml",
        "# The app's port.\nport: 8080\nname: demo\nlimits: {cpu: 1, mem: 2}\nextra: {}\nnote: ~\n",
    )
    .write(
        "project/pillar.schema.yml",
        "port: {min: 1, max: 65535}\nname: {one_of: [demo, prod]}\n",
    );
    let file = "data/configuration/pillar.yml";
    let cases: &[(&str, &str)] = &[
        (
            "# mine\nnmae: prod\n",
            "pillar.yml:2: `nmae` is not a setting of this image\n  fix: did you mean `name`?",
        ),
        (
            "name: {a: 1}\n",
            "pillar.yml:1: `name` is a mapping, but the image's default is a string",
        ),
        (
            "name: [x, y]\n",
            "pillar.yml:1: `name` is a list, but the image's default is a string",
        ),
        (
            "name:\n",
            "pillar.yml:1: `name` is empty, but the image's default is a string",
        ),
        (
            "port: abc\n",
            "pillar.yml:1: `port` is a string, but the image's default is a whole number",
        ),
        (
            "port: 70000\n",
            "pillar.yml:1: `port` is 70000, out of range\n  fix: use a number from 1 to 65535",
        ),
        (
            "name: staging\n",
            "`name` is \"staging\", which is not one of the allowed values\n  fix: use one of: \"demo\", \"prod\"",
        ),
        (
            "limits:\n  cpu: 2\n  disk: 3\n",
            "pillar.yml:3: `limits.disk` is not a setting of this image",
        ),
    ];
    for (text, needle) in cases {
        p.write(file, text);
        let ran = p.run("check", &[]);
        assert_eq!(ran.code, 78, "{text}: {}", ran.stderr);
        assert!(
            ran.stderr.contains(needle),
            "{text}: wanted {needle:?} in\n{}",
            ran.stderr
        );
    }
    // Free-form where the image says so (an empty mapping, a null default); right types.
    p.write(
        file,
        "extra: {anything: [1, {b: 2}]}\nnote: {x: 1}\nport: 9090\nname: prod\n",
    );
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
}

#[test]
fn the_environment_is_a_layer_typed_by_the_image() {
    let p = basic("env-layer");
    let env = [
        ("LAUNCH_PILLAR__port", "9090"),
        ("LAUNCH_PILLAR__name", "12"),
    ];
    let ran = p.run_env("check", &["--show-pillar"], &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // A string where the default is one, even when it reads as a number.
    assert!(
        ran.stdout
            .contains("name: \"12\"  # from environment LAUNCH_PILLAR__name"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("port: 9090  # from environment LAUNCH_PILLAR__port"),
        "{}",
        ran.stdout
    );
    // --set is stronger.
    let ran = p.run_env("reconfigure", &["--set", "port=7070"], &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        fs::read_to_string(p.path("out/app.conf")).unwrap(),
        "name=12\nport=7070\n"
    );
    let ran = p.run_env("check", &[], &[("LAUNCH_PILLAR__prot", "1")]);
    assert_eq!(ran.code, 78);
    ran.says(&[
        "environment LAUNCH_PILLAR__prot: `prot` is not a setting of this image",
        "did you mean `port`?",
    ]);
    let ran = p.run_env("check", &[], &[("LAUNCH_PILLAR__port", "high")]);
    ran.says(&["environment LAUNCH_PILLAR__port: `port` is a string, but the image's default is a whole number"]);
}

#[test]
fn yaml_and_template_errors_point_at_the_line_to_change() {
    let p = basic("positions");
    let file = "data/configuration/pillar.yml";
    let cases: &[(&str, &[&str])] = &[
        (
            "name: a\nport: 2\nname: b\n",
            &[
                "pillar.yml:3: `name` is set twice in this mapping (first at line 1)",
                "3 | name: b",
            ],
        ),
        (
            "limits:\n  cpu: 1\n  cpu: 2\n",
            &["pillar.yml:3: `cpu` is set twice in this mapping (first at line 2)"],
        ),
        (
            "name: \"abc\nport: 2\n",
            &[
                "pillar.yml:1:7: this quote is never closed",
                "1 | name: \"abc",
            ],
        ),
    ];
    for (text, needles) in cases {
        p.write(file, text);
        let ran = p.run("check", &[]);
        assert_eq!(ran.code, 78, "{text}");
        ran.says(needles);
    }
    p.write(file, "name: ok\n");
    let out = p.out();
    p.write(
        "project/launch.yml",
        &format!(
            "templates:\n{{% if true %}}\n  - src: templates/app.conf\n    dest: {out}/app.conf\n"
        ),
    );
    p.run("check", &[]).says(&[
        "launch.yml:2: this {% if %} is never closed",
        "fix: close it with {% endif %}",
    ]);
}

#[test]
fn an_error_in_a_value_the_operator_set_names_their_line() {
    let p = basic("operator-line");
    p.write(
        "project/launch.yml",
        "processes:\n  app:\n    command: [sleep, \"100\"]\n    ready: {tcp: \"127.0.0.1:{{ pillar.port }}\"}\n",
    );
    p.write(
        "data/configuration/pillar.yml",
        "# my settings\nname: x\nport: 70000\n",
    );
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(&[
        "launch.yml:4:",
        "the value \"70000\" is `port`, set at ",
        "data/configuration/pillar.yml:3; the image's default is 8080",
    ]);
    let ran = p.run("check", &["--set", "port=99999"]);
    ran.says(&["the value \"99999\" is `port`, set at --set port=99999"]);
}
