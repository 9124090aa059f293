//! The optional metrics listener (`metrics: {listen: ADDR}`): Prometheus's text format,
//! served from the event loop without ever blocking it.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::project::Project;

fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn metrics_are_served_per_process_and_a_silent_client_blocks_nothing() {
    let p = Project::new("metrics");
    let port = 21000 + (std::process::id() % 20000) as u16;
    p.write(
        "project/launch.yml",
        &format!(
            "metrics: {{listen: \"127.0.0.1:{port}\"}}\nprocesses:\n  app: {{command: [sleep, \"1000\"]}}\n  once: {{command: [sh, -c, \"exit 3\"], restart: never}}\n"
        ),
    );
    let mut launch = p.run_with_private_root(&p.path("control/launch.sock"));
    assert!(
        launch
            .stderr
            .wait_for("metrics at http://127.0.0.1:", Duration::from_secs(15)),
        "{}",
        launch.stderr.text()
    );
    assert!(
        launch
            .stderr
            .wait_for("once exited", Duration::from_secs(10)),
        "{}",
        launch.stderr.text()
    );
    // A client that connects and says nothing holds no one up.
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let status = Command::new(support::launch_bin())
        .arg("status")
        .env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .output()
        .unwrap();
    assert!(status.status.success());
    let answer = scrape(port);
    assert!(answer.starts_with("HTTP/1.0 200 OK\r\n"), "{answer}");
    for line in [
        "launch_process_up{process=\"app\"} 1",
        "launch_process_up{process=\"once\"} 0",
        "launch_process_last_exit_code{process=\"once\"} 3",
        "launch_process_restarts_total{process=\"app\"} 0",
        "# TYPE launch_resident_memory_bytes gauge",
    ] {
        assert!(
            answer.lines().any(|l| l == line),
            "{line:?} missing in\n{answer}"
        );
    }
    assert!(answer.contains("launch_open_fds "), "{answer}");
    // Reloads are counted by result.
    let reload = Command::new(support::launch_bin())
        .arg("reload")
        .env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .output()
        .unwrap();
    assert!(reload.status.success());
    let answer = scrape(port);
    assert!(
        answer.contains("launch_reloads_total{result=\"reloaded\"} 1"),
        "{answer}"
    );
    // `status --json` gives the same data, for a machine without Prometheus.
    let json = Command::new(support::launch_bin())
        .args(["status", "--json"])
        .env("LAUNCH_CONTROL", p.path("control/launch.sock"))
        .output()
        .unwrap();
    assert!(json.status.success());
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let once = &report["processes"][1];
    assert_eq!(once["name"], "once", "{report}");
    assert_eq!(once["last_exit_code"], 3, "{report}");
    assert!(once["pid"].is_null(), "{report}");
    let app = &report["processes"][0];
    assert_eq!(app["name"], "app", "{report}");
    assert_eq!(app["ready"], true, "{report}");
    assert_eq!(app["restarts"], 0, "{report}");
    assert_eq!(report["reloads"]["reloaded"], 1, "{report}");
    assert!(
        report["launch"]["rss_bytes"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        report["launch"]["open_fds"].as_u64().unwrap() > 2,
        "{report}"
    );
    assert_eq!(report["launch"]["pid"], 1, "{report}");
    launch.signal(libc::SIGTERM);
    assert_eq!(launch.wait(Duration::from_secs(15)).code(), Some(0));
}

#[test]
fn a_host_name_is_refused_at_its_line() {
    let p = Project::new("metrics-host");
    p.write(
        "project/launch.yml",
        "processes: {}\nmetrics: {listen: \"example.com:9100\"}\n",
    );
    let ran = p.run("check", &[]);
    assert_eq!(ran.code, 78);
    ran.says(&[
        "launch.yml:2",
        "metrics listen \"example.com:9100\" is not an address and port",
    ]);
}
