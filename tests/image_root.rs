//! `launch check` looks each process's program and account up in the image: in `/`
//! (inside the container, that is the image), or under `--image-root DIR` (the image's
//! files on a host), never in the machine's own files when it checks an image's.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::project::Project;

/// An image's files under `dir`: accounts root and app, busybox (an empty executable)
/// with its sh link, and a file that is not executable.
fn image(dir: &Path) {
    for sub in ["etc", "bin", "usr/bin", "opt/app/bin"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    for (file, mode) in [
        ("bin/busybox", 0o755),
        ("opt/app/bin/serve", 0o755),
        ("usr/bin/notes", 0o644),
    ] {
        fs::write(dir.join(file), "").unwrap();
        fs::set_permissions(dir.join(file), fs::Permissions::from_mode(mode)).unwrap();
    }
    // Absolute, as images often have them: followed inside the image's root.
    std::os::unix::fs::symlink("/bin/busybox", dir.join("bin/sh")).unwrap();
}

#[test]
fn programs_and_accounts_are_the_images() {
    let p = Project::new("image-root");
    let root = p.path("image");
    image(&root);
    let root = root.display().to_string();
    let out = p.out();
    p.write("project/templates/page", "hi\n").write(
        "project/launch.yml",
        &format!(
            "templates:\n  - {{src: templates/page, dest: {out}/page, owner: root:app}}\n\
             processes:\n\
             \x20 web: {{command: [busybox, httpd, -f], user: app, instances: 2}}\n\
             \x20 shell: {{command: \"echo hi\", user: app}}\n\
             \x20 serve: {{command: [serve], env: {{PATH: /opt/app/bin}}}}\n\
             \x20 direct: {{command: [/opt/app/bin/serve]}}\n"
        ),
    );
    let ran = p.run("check", &["--image-root", &root]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout.contains("the configuration is valid"),
        "{}",
        ran.stdout
    );

    // What the image lacks, each at its command's line with the fix; the machine's own
    // programs (cat, /usr/bin/env) do not count.
    p.write(
        "project/launch.yml",
        "processes:\n\
         \x20 cat: {command: [cat]}\n\
         \x20 env:\n    user: app\n    command: [/usr/bin/env]\n\
         \x20 notes: {command: [notes, --serve]}\n\
         \x20 serve: {command: [serve]}\n",
    );
    let ran = p.run("check", &["--image-root", &root]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(&[
        &format!("launch.yml:2: process cat: \"cat\" is not found on PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin under {root}"),
        "fix: install it in the image (Dockerfile), write its full path, or add its directory to env.PATH of process cat",
        &format!("launch.yml:5: process env: /usr/bin/env does not exist under {root}"),
        &format!("launch.yml:6: process notes: /usr/bin/notes under {root} is not an executable file"),
        "fix: make it executable in the image (chmod +x /usr/bin/notes)",
        "launch.yml:7: process serve: \"serve\" is not found on PATH=",
    ]);
    assert!(ran.stderr.contains("4 problems found"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("this system's /"), "{}", ran.stderr);

    // Accounts are the image's; a spec that names a missing one is refused before its
    // programs are looked up.
    p.write(
        "project/launch.yml",
        "processes:\n  ghost: {command: [x], user: ghost}\n",
    );
    let ran = p.run("check", &["--image-root", &root]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(&[&format!(
        "launch.yml:2: user \"ghost\" does not exist in {root}/etc/passwd"
    )]);

    // Without --image-root, / is the image: the machine's cat is there; its users are
    // the machine's, which have no `app`.
    p.write(
        "project/launch.yml",
        "processes:\n  cat: {command: [cat]}\n  nope: {command: [/no/such/program]}\n",
    );
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(&[
        "launch.yml:3: process nope: /no/such/program does not exist\n",
        "launch check: users, groups and programs were looked up in this system's /; on a host, --image-root DIR",
    ]);
    assert!(!ran.stderr.contains("process cat"), "{}", ran.stderr);

    let ran = p.run("check", &["--image-root", &p.out()]);
    assert_eq!(ran.code, 78, "{}", ran.stderr);
    ran.says(&[
        "/etc/passwd: not found, so",
        "fix: give --image-root the directory the image's files are in",
    ]);
}
