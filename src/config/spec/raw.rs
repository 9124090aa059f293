//! The spec's sections as written, before any check: serde reads them, refusing
//! unknown keys, and the section modules turn them into the typed spec.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use super::{HostKey, Kind, Restart};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTop {
    #[serde(default)]
    pub(super) templates: Vec<Value>,
    #[serde(default)]
    pub(super) seed: Vec<Value>,
    #[serde(default)]
    pub(super) ssh: Option<Value>,
    #[serde(default)]
    pub(super) processes: Mapping,
    #[serde(default)]
    pub(super) shutdown: Option<Value>,
    #[serde(default)]
    pub(super) data_owner: Option<String>,
    #[serde(default)]
    pub(super) metrics: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemplate {
    pub(super) src: String,
    pub(super) dest: String,
    #[serde(default)]
    pub(super) mode: Option<Value>,
    #[serde(default)]
    pub(super) owner: Option<String>,
    #[serde(default)]
    pub(super) notify: Vec<String>,
    #[serde(default)]
    pub(super) check: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSeed {
    pub(super) from: String,
    pub(super) to: String,
    #[serde(default)]
    pub(super) owner: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSsh {
    #[serde(default = "default_ssh_user")]
    pub(super) user: String,
    #[serde(default)]
    pub(super) sshd: bool,
    #[serde(default = "default_ssh_port")]
    pub(super) port: u16,
    #[serde(default)]
    pub(super) allow_options: bool,
    #[serde(default = "default_host_keys")]
    pub(super) host_keys: Vec<HostKey>,
}

fn default_host_keys() -> Vec<HostKey> {
    vec![HostKey::Ed25519]
}

fn default_ssh_user() -> String {
    "root".into()
}

fn default_ssh_port() -> u16 {
    22
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawCommand {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProcess {
    pub(super) command: RawCommand,
    /// Read by `instances`, before this struct is (a known key for "did you mean").
    #[serde(default, rename = "instances")]
    pub(super) _instances: serde::de::IgnoredAny,
    #[serde(default)]
    pub(super) kind: Option<Kind>,
    #[serde(default)]
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) group: Option<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) cwd: Option<String>,
    #[serde(default)]
    pub(super) umask: Option<Value>,
    #[serde(default)]
    pub(super) depends_on: Vec<String>,
    #[serde(default)]
    pub(super) ready: Option<RawReady>,
    #[serde(default)]
    pub(super) restart: Option<Restart>,
    #[serde(default)]
    pub(super) critical: bool,
    #[serde(default)]
    pub(super) optional: bool,
    #[serde(default)]
    pub(super) stop_signal: Option<Value>,
    #[serde(default)]
    pub(super) stop_timeout: Option<Value>,
    #[serde(default)]
    pub(super) reload_signal: Option<Value>,
    #[serde(default)]
    pub(super) log_prefix: Option<bool>,
    #[serde(default)]
    pub(super) max_restarts: Option<u32>,
    #[serde(default)]
    pub(super) restart_window: Option<Value>,
    #[serde(default)]
    pub(super) max_age: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReady {
    #[serde(default)]
    pub(super) tcp: Option<String>,
    #[serde(default)]
    pub(super) cmd: Option<RawCommand>,
    #[serde(default)]
    pub(super) file: Option<String>,
    #[serde(default)]
    pub(super) notify_fd: Option<i32>,
    #[serde(default)]
    pub(super) interval: Option<Value>,
    #[serde(default)]
    pub(super) timeout: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShutdown {
    #[serde(default)]
    pub(super) grace: Option<Value>,
}
