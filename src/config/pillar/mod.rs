//! The pillar: configuration values in layers, later wins.
//!
//! `project/pillar.yml` (the image's defaults) < `pillar/*.yml` (image overrides, by
//! name) < `data/configuration/pillar.yml` (the operator's) < `--set a.b=VALUE`.
//! Mappings merge key by key, recursively; scalars and lists are replaced whole. Every
//! value remembers the layer it came from, for `launch check --show-pillar`.
//!
//! Where the layers come from (files read beneath the volume, the environment,
//! `--set`) and what a layer may hold is `layers`.

mod layers;

use std::fmt::Write as _;

use serde_yaml::{Mapping, Value};

use crate::config::layout::Layout;
use crate::config::schema::{self, Schema};
use crate::config::yaml::{self, Place, YamlError};
use crate::volume::access;
use crate::volume::atomic;

/// A layer that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PillarError {
    /// Not valid YAML.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// Valid YAML, but not a mapping at the top.
    #[error(
        "{place}: the top level is {found}, but a pillar must be a mapping of keys\n  \
         fix: write `key: value` lines (an empty file is fine)"
    )]
    NotMapping {
        /// The file.
        place: Place,
        /// What it is instead.
        found: &'static str,
    },
    /// A key that templates could not look up: nothing (`? `, `~:`), a fraction, a list
    /// or a mapping.
    #[error(
        "{place}: a key here is {found}, but pillar keys must be names, whole numbers or \
         true/false\n  fix: write a name before the colon (quote it if it reads as a number \
         or as nothing: \"1.5\": ..., \"~\": ...)"
    )]
    BadKey {
        /// The mapping holding the key.
        place: Place,
        /// What the key is.
        found: &'static str,
    },
    /// A `--set` whose VALUE holds such a key.
    #[error(
        "--set {set:?}: a key in the value is {found}, but pillar keys must be names, whole \
         numbers or true/false\n  fix: quote the key, or write the value as a string"
    )]
    BadSetKey {
        /// The flag.
        set: String,
        /// What the key is.
        found: &'static str,
    },
    /// The file cannot be read, or is not a regular file of sane size.
    #[error("{0}")]
    Access(access::AccessError),
    /// The file is not UTF-8 text.
    #[error("{place}: is not UTF-8 text\n  fix: save the file as UTF-8")]
    NotUtf8 {
        /// Where the first bad byte is.
        place: Place,
    },
    /// A value the image's shape does not allow (an unknown key, another type, out of
    /// the schema's range).
    #[error("{at}: {what}\n  fix: {fix}")]
    Schema {
        /// The operator's file:line, the variable, or the flag.
        at: String,
        /// What is wrong.
        what: String,
        /// What to do.
        fix: String,
    },
    /// The schema file cannot be used.
    #[error(transparent)]
    SchemaFile(#[from] schema::SchemaError),
    /// An environment variable that names no key path.
    #[error("environment {0}: write {ENV_PREFIX}key__path=VALUE, e.g. {ENV_PREFIX}db__port=5433")]
    BadEnv(String),
    /// A `--set` that is not `a.b=VALUE`.
    #[error("--set {0:?}: write --set key.path=VALUE, e.g. --set nginx.port=8080")]
    BadSet(String),
    /// The operator's file could not be created.
    #[error("{0}\n  fix: make the volume writable, or create configuration/pillar.yml yourself")]
    Write(#[from] atomic::AtomicError),
}

/// The merged pillar, and (when asked for) the layers it was merged from, to tell where
/// each value came from.
#[derive(Debug, Clone, Default)]
pub struct Pillar {
    /// The merged values (a mapping).
    pub value: Mapping,
    /// The same without the operator's layer (`configuration/pillar.yml`): what the
    /// image and launch's command line set. The spec takes from it what the operator
    /// must not choose (destinations, users, paths).
    pub image: Mapping,
    /// The layers, in order: a file path or `--set`, and the layer itself when origins
    /// are tracked.
    layers: Vec<(String, Option<Mapping>)>,
    track_origins: bool,
    /// The values an operator or author marked `!secret`, to be masked wherever launch
    /// shows text; the tags themselves are gone from [`Pillar::value`].
    pub secrets: Vec<String>,
}

impl Pillar {
    /// Loads and merges every layer of `layout` and the `--set` flags. All broken layers
    /// are reported, not just the first.
    ///
    /// With `track_origins`, every layer is kept as well, so that [`Pillar::origin`] and
    /// [`Pillar::describe`] can say where a value came from; that costs a copy of
    /// every layer, so only `launch check --show-pillar` asks for it.
    pub fn load(
        layout: &Layout,
        sets: &[String],
        track_origins: bool,
    ) -> Result<Pillar, Vec<PillarError>> {
        let mut files = vec![layout.defaults_file()];
        files.extend(override_files(layout));
        if let Some(warning) = layout.salt_pillar_warning() {
            eprintln!("launch: {warning}");
        }
        let mut pillar = Pillar::new(track_origins);
        let mut errors = Vec::new();
        for file in &files {
            match read_layer(file, None) {
                Ok(Some((layer, _))) => pillar.merge_layer(file.display().to_string(), layer),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        pillar.image = pillar.value.clone();
        let schema = match load_schema(layout, pillar.image.clone()) {
            Ok(schema) => schema,
            Err(e) => {
                errors.push(e);
                Schema::default()
            }
        };
        // The operator's layers: checked against the image's shape, each error at the
        // place the operator wrote it.
        let operator = layout.operator_file();
        match read_layer(&operator, Some(&layout.data)) {
            Ok(Some((layer, text))) => {
                errors.extend(schema.check(&layer).into_iter().map(|p| {
                    let line = yaml::locate(&text, &p.path).max(1);
                    PillarError::Schema {
                        at: Place::at(&operator, line).to_string(),
                        what: p.what,
                        fix: p.fix,
                    }
                }));
                pillar.merge_layer(operator.display().to_string(), layer);
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
        for (name, value) in std::env::vars() {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            match env_layer(rest, &value, &schema) {
                Ok(layer) => {
                    errors.extend(schema_errors(
                        &schema,
                        &layer,
                        &format!("environment {name}"),
                    ));
                    pillar.merge_layer(format!("environment {name}"), layer);
                }
                Err(()) => errors.push(PillarError::BadEnv(name)),
            }
        }
        for set in sets {
            match parse_set(set) {
                Ok(layer) => {
                    errors.extend(schema_errors(&schema, &layer, &format!("--set {set}")));
                    merge(&mut pillar.image, layer.clone());
                    pillar.merge_layer(format!("--set {set}"), layer);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            pillar.secrets = take_secret_tags(&mut pillar.value);
            pillar.secrets.extend(take_secret_tags(&mut pillar.image));
            Ok(pillar)
        } else {
            Err(errors)
        }
    }

    /// The values the operator's layers (their file, the environment, `--set`) set or
    /// changed: (key path, value as text, the image's default as text). Scalars of two
    /// characters or more, to find them again in a message.
    pub fn operator_leaves(&self) -> Vec<(Vec<String>, String, Option<String>)> {
        fn walk(
            value: &Mapping,
            image: Option<&Mapping>,
            path: &mut Vec<String>,
            out: &mut Vec<(Vec<String>, String, Option<String>)>,
        ) {
            for (key, v) in value {
                path.push(key_string(key));
                let before = image.and_then(|m| m.get(key));
                match v {
                    Value::Mapping(inner) => {
                        walk(inner, before.and_then(Value::as_mapping), path, out)
                    }
                    _ if before == Some(v) => {}
                    Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                        let text = key_string(v);
                        if text.len() >= 2 {
                            out.push((path.clone(), text, before.map(key_string)));
                        }
                    }
                    _ => {}
                }
                path.pop();
            }
        }
        let mut out = Vec::new();
        walk(&self.value, Some(&self.image), &mut Vec::new(), &mut out);
        out
    }

    /// An empty pillar.
    pub fn new(track_origins: bool) -> Pillar {
        Pillar {
            track_origins,
            ..Pillar::default()
        }
    }

    /// Merges `layer` on top, remembering it as `name`.
    pub fn merge_layer(&mut self, name: String, layer: Mapping) {
        let kept = self.track_origins.then(|| layer.clone());
        self.layers.push((name, kept));
        merge(&mut self.value, layer);
    }

    /// The names of the layers, in order.
    pub fn layer_names(&self) -> impl Iterator<Item = &str> {
        self.layers.iter().map(|(name, _)| name.as_str())
    }

    /// The layer a value (by key path) came from: the last layer that has the path.
    /// `None` when origins are not tracked or no layer has it.
    pub fn origin(&self, path: &[&str]) -> Option<&str> {
        self.layers.iter().rev().find_map(|(name, layer)| {
            let mut node = layer.as_ref()?;
            for (i, key) in path.iter().enumerate() {
                let value = node.get(*key)?;
                if i + 1 == path.len() {
                    return Some(name.as_str());
                }
                node = value.as_mapping()?;
            }
            None
        })
    }

    /// Every leaf as `a.b.c: value  # from LAYER`, for `--show-pillar`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut path = Vec::new();
        self.describe_into(&self.value, &mut path, &mut out);
        out
    }

    fn describe_into(&self, map: &Mapping, path: &mut Vec<String>, out: &mut String) {
        for (key, value) in map {
            path.push(key_string(key));
            match value {
                Value::Mapping(inner) if !inner.is_empty() => self.describe_into(inner, path, out),
                _ => {
                    let shown = serde_json::to_string(&value).unwrap_or_else(|_| "?".into());
                    let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                    let from = self.origin(&keys).unwrap_or("?");
                    let _ = writeln!(out, "{}: {shown}  # from {from}", path.join("."));
                }
            }
            path.pop();
        }
    }
}

/// Replaces every `!secret VALUE` by VALUE, and returns the scalars found under such
/// tags: templates see plain values, everything launch prints masks them.
fn take_secret_tags(map: &mut Mapping) -> Vec<String> {
    fn walk(value: &mut Value, inside_secret: bool, found: &mut Vec<String>) {
        if let Value::Tagged(tagged) = value {
            let secret = inside_secret || tagged.tag == "secret";
            let mut inner = std::mem::take(&mut tagged.value);
            walk(&mut inner, secret, found);
            if tagged.tag == "secret" {
                *value = inner;
            } else {
                tagged.value = inner;
            }
            return;
        }
        match value {
            Value::Mapping(map) => map.values_mut().for_each(|v| walk(v, inside_secret, found)),
            Value::Sequence(seq) => seq.iter_mut().for_each(|v| walk(v, inside_secret, found)),
            Value::String(s) if inside_secret && !s.is_empty() => found.push(s.clone()),
            Value::Number(n) if inside_secret => found.push(n.to_string()),
            _ => {}
        }
    }
    let mut found = Vec::new();
    map.values_mut().for_each(|v| walk(v, false, &mut found));
    found
}

/// Later wins: mappings merge key by key, anything else replaces.
fn merge(base: &mut Mapping, over: Mapping) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Mapping(inner)), Value::Mapping(over_inner)) => merge(inner, over_inner),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

pub(super) fn key_string(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

pub(crate) use layers::override_files;
pub use layers::{ENV_PREFIX, operator_origin, parse_set};
use layers::{env_layer, load_schema, read_layer, schema_errors};

#[cfg(test)]
mod tests {
    use std::fs;

    use super::layers::bad_key;
    use super::*;

    fn map(text: &str) -> Mapping {
        serde_yaml::from_str(text).unwrap()
    }

    fn layer_error(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("launch-pillar-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pillar.yml");
        fs::write(&file, text).unwrap();
        let result = read_layer(&file, None).map(|l| l.map(|(m, _)| m));
        fs::remove_dir_all(&dir).unwrap();
        result.unwrap_err().to_string()
    }

    #[test]
    fn keys_templates_cannot_look_up_are_refused_where_they_are() {
        let top = layer_error("top", "? \n");
        assert!(top.contains("pillar.yml:1: a key here is nothing"), "{top}");
        assert!(top.contains("fix: write a name before the colon"), "{top}");
        let nested = layer_error("nested", "app:\n  port: 80\n  limits:\n    1.5: x\n");
        assert!(
            nested.contains("pillar.yml:3: a key here is a fraction"),
            "{nested}"
        );
        let listed = layer_error("listed", "users:\n  - name: a\n  - [1]: b\n");
        assert!(listed.contains("a key here is a list"), "{listed}");
        // Names, whole numbers and true/false are keys Tera takes.
        assert!(bad_key(&map("a: 1\n2: x\ntrue: y\nn: [{b: 1}]\n"), &mut Vec::new()).is_none());
        let set = parse_set("a.b=[{? : 1}]").unwrap_err().to_string();
        assert!(
            set.contains("--set \"a.b=[{? : 1}]\": a key in the value is nothing"),
            "{set}"
        );
    }

    #[test]
    fn mappings_merge_and_scalars_and_lists_replace() {
        let mut p = Pillar::new(true);
        p.merge_layer("defaults".into(), map("a: {b: 1, c: [1, 2]}\nx: 1\n"));
        p.merge_layer("operator".into(), map("a: {c: [3]}\nx: {y: 2}\n"));
        assert_eq!(p.value, map("a: {b: 1, c: [3]}\nx: {y: 2}\n"));
        assert_eq!(p.origin(&["a", "b"]), Some("defaults"));
        assert_eq!(p.origin(&["a", "c"]), Some("operator"));
        assert_eq!(p.origin(&["x", "y"]), Some("operator"));
        let shown = p.describe();
        assert!(shown.contains("a.b: 1  # from defaults"), "{shown}");
        assert!(shown.contains("a.c: [3]  # from operator"), "{shown}");
    }

    #[test]
    fn a_replaced_subtree_forgets_old_origins() {
        let mut p = Pillar::new(true);
        p.merge_layer("one".into(), map("a: {b: 1}\n"));
        p.merge_layer("two".into(), map("a: 5\n"));
        assert_eq!(p.origin(&["a"]), Some("two"));
        assert_eq!(p.describe(), "a: 5  # from two\n");
    }

    #[test]
    fn set_values_are_yaml_scalars() {
        assert_eq!(
            parse_set("nginx.port=8080").unwrap(),
            map("nginx: {port: 8080}")
        );
        assert_eq!(parse_set("a=true").unwrap(), map("a: true"));
        assert_eq!(parse_set("a=hello world").unwrap(), map("a: hello world"));
        assert_eq!(parse_set("a=x: y").unwrap(), map("a: 'x: y'"));
        assert!(parse_set("novalue").is_err());
        assert!(parse_set("a..b=1").is_err());
    }
}
