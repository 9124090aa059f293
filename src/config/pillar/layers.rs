//! Where the pillar's layers come from and what one may hold: the image's files and the
//! operator's (read beneath the volume, bounded, never through a planted symlink), the
//! environment (`LAUNCH_PILLAR__a__b`), and `--set a.b=VALUE`; keys a template cannot
//! look up are refused where they are.

use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::{PillarError, key_string};
use crate::config::layout::Layout;
use crate::config::schema::{self, Kind, Schema};
use crate::config::yaml::{self, Place, Seg};
use crate::volume::access::{self, Trust};

/// The first key under `map` that Tera cannot take as a map key (it takes strings,
/// integers and booleans), with the path of the mapping holding it and what it is.
pub(super) fn bad_key(map: &Mapping, path: &mut Vec<Seg>) -> Option<(Vec<Seg>, &'static str)> {
    for (key, value) in map {
        let found = match key {
            Value::String(_) | Value::Bool(_) => None,
            Value::Number(n) if n.is_i64() || n.is_u64() => None,
            Value::Number(_) => Some("a fraction"),
            other => Some(yaml::kind(other)),
        };
        if let Some(found) = found {
            return Some((path.clone(), found));
        }
        path.push(Seg::Key(key_string(key)));
        let inner = bad_key_in(value, path);
        path.pop();
        if inner.is_some() {
            return inner;
        }
    }
    None
}

pub(super) fn bad_key_in(value: &Value, path: &mut Vec<Seg>) -> Option<(Vec<Seg>, &'static str)> {
    match value {
        Value::Mapping(map) => bad_key(map, path),
        Value::Sequence(items) => items.iter().enumerate().find_map(|(i, item)| {
            path.push(Seg::Index(i));
            let found = bad_key_in(item, path);
            path.pop();
            found
        }),
        Value::Tagged(tagged) => bad_key_in(&tagged.value, path),
        _ => None,
    }
}

/// Environment variables that set pillar values: `LAUNCH_PILLAR__db__port=5433` sets
/// `db.port` (for the operator whose only knob is a compose file's or a pod's
/// `environment:`). Between the volume's file and `--set`.
pub const ENV_PREFIX: &str = "LAUNCH_PILLAR__";

/// The image's schema: its merged defaults and `project/pillar.schema.yml`.
pub(super) fn load_schema(layout: &Layout, defaults: Mapping) -> Result<Schema, PillarError> {
    let file = layout.project.join(schema::FILE);
    let text = access::read_path(&file, &Trust::default(), access::max_file_size())?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    Ok(Schema::new(defaults, &file, text.as_deref())?)
}

pub(super) fn schema_errors(schema: &Schema, layer: &Mapping, at: &str) -> Vec<PillarError> {
    schema
        .check(layer)
        .into_iter()
        .map(|p| PillarError::Schema {
            at: at.to_string(),
            what: p.what,
            fix: p.fix,
        })
        .collect()
}

/// `db__port` and `5433` as `{db: {port: 5433}}`: the value is text where the image's
/// default is text, and read as a YAML scalar (a number, true/false) elsewhere.
pub(super) fn env_layer(path: &str, raw: &str, schema: &Schema) -> Result<Mapping, ()> {
    let keys: Vec<&str> = path.split("__").collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(());
    }
    let mut value = match schema.expects(&keys) {
        Some(Kind::String) => Value::String(raw.to_string()),
        _ => match serde_yaml::from_str::<Value>(raw) {
            Ok(v @ (Value::Bool(_) | Value::Number(_) | Value::Null | Value::Sequence(_))) => v,
            _ => Value::String(raw.to_string()),
        },
    };
    for key in keys.iter().rev() {
        let mut map = Mapping::new();
        map.insert(Value::String(key.to_string()), value);
        value = Value::Mapping(map);
    }
    match value {
        Value::Mapping(map) => Ok(map),
        _ => Err(()),
    }
}

/// Where the operator set `path`: `--set` (strongest), the environment, or their file
/// with its line.
pub fn operator_origin(layout: &Layout, sets: &[String], path: &[String]) -> String {
    let dotted = path.join(".");
    if let Some(set) = sets
        .iter()
        .rev()
        .find(|s| s.split_once('=').is_some_and(|(k, _)| k.trim() == dotted))
    {
        return format!("--set {set}");
    }
    let var = format!("{ENV_PREFIX}{}", path.join("__"));
    if std::env::var_os(&var).is_some() {
        return format!("environment {var}");
    }
    let file = layout.operator_file();
    let segs: Vec<Seg> = path.iter().map(|k| Seg::Key(k.clone())).collect();
    let line = match read_layer(&file, Some(&layout.data)) {
        Ok(Some((_, text))) => yaml::locate(&text, &segs),
        _ => 0,
    };
    Place::at(&file, line).to_string()
}

/// Reads one layer file: `None` when it does not exist. The operator's file is read
/// strictly beneath the volume (`volume` is `Some`), the image's through
/// [`access::read_path`]: never through a planted symlink, never a FIFO, never more than
/// [`access::max_file_size`] bytes, never nested deeper than [`yaml::MAX_DEPTH`].
pub(super) fn read_layer(
    file: &Path,
    volume: Option<&Path>,
) -> Result<Option<(Mapping, String)>, PillarError> {
    let limit = access::max_file_size();
    let read = match volume.and_then(|v| file.strip_prefix(v).ok().map(|rel| (v, rel))) {
        Some((volume, rel)) => access::read_beneath(volume, rel, limit),
        None => access::read_path(file, &Trust::default(), limit),
    };
    let bytes = match read {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(source) => return Err(PillarError::Access(source)),
    };
    let text = String::from_utf8(bytes).map_err(|e| PillarError::NotUtf8 {
        place: Place {
            file: file.into(),
            line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            col: 0,
        },
    })?;
    yaml::check_depth(file, &text)?;
    match yaml::parse(file, &text)? {
        Value::Null => Ok(Some((Mapping::new(), text))),
        Value::Mapping(map) => match bad_key(&map, &mut Vec::new()) {
            None => Ok(Some((map, text))),
            Some((path, found)) => Err(PillarError::BadKey {
                place: Place {
                    file: file.into(),
                    line: yaml::locate(&text, &path).max(1),
                    col: 0,
                },
                found,
            }),
        },
        other => Err(PillarError::NotMapping {
            place: Place {
                file: file.into(),
                line: 1,
                col: 0,
            },
            found: yaml::kind(&other),
        }),
    }
}

/// `a.b.c=VALUE` as a one-path mapping; VALUE is read as YAML (`8080` is a number,
/// `true` a boolean, `[a, b]` a list), and as a plain string when it is not YAML.
pub fn parse_set(set: &str) -> Result<Mapping, PillarError> {
    let bad = || PillarError::BadSet(set.to_string());
    let (path, raw) = set.split_once('=').ok_or_else(bad)?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(bad());
    }
    let mut value = match serde_yaml::from_str::<Value>(raw) {
        Ok(Value::Mapping(_)) | Err(_) => Value::String(raw.to_string()),
        Ok(v) => v,
    };
    if let Some((_, found)) = bad_key_in(&value, &mut Vec::new()) {
        return Err(PillarError::BadSetKey {
            set: set.to_string(),
            found,
        });
    }
    for key in keys.iter().rev() {
        let mut map = Mapping::new();
        map.insert(Value::String(key.to_string()), value);
        value = Value::Mapping(map);
    }
    match value {
        Value::Mapping(map) => Ok(map),
        _ => Err(bad()),
    }
}

impl From<access::AccessError> for PillarError {
    fn from(e: access::AccessError) -> PillarError {
        PillarError::Access(e)
    }
}

/// The image's `pillar/*.yml` (and `.yaml`), sorted by name.
pub(crate) fn override_files(layout: &Layout) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(&layout.pillar) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}
