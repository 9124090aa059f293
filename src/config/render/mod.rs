//! Tera, as config files need it: strict (an undefined variable is an error), no HTML
//! autoescaping (it would mangle an XML or shell config; the spec alone has its values
//! escaped, into tokens that keep them out of its YAML: [`crate::config::spec_text`]), with
//! `to_json`, `to_yaml`, `shell_quote` and `default` filters, includes and components
//! from `templates/`, and a `secret(name=...)` function that reads `/run/secrets/NAME`
//! and whose values are masked wherever launch shows content.
//!
//! Everything is rendered in memory first ([`Renderer`], here); [`apply`] (in `output`)
//! then stages every changed output
//! beside its destination, runs the checks, and only when all are good renames them
//! into place.

mod output;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tera::{Context, Kwargs, State, Tera, TeraResult};

use crate::config::layout::Layout;
use crate::config::pillar::Pillar;
use crate::config::secrets::Secrets;
use crate::config::spec::Template;
use crate::config::spec_text;
use crate::config::yaml::{self, Place};
use crate::volume::atomic::AtomicError;

pub use crate::config::secrets::SECRETS_DIR;

/// A template or output problem.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Tera refused a template (syntax, undefined variable, missing include, ...).
    #[error("{place}: {what}{excerpt}\n  fix: {fix}")]
    Template {
        /// Where.
        place: Place,
        /// What Tera said.
        what: String,
        /// The offending line.
        excerpt: String,
        /// What to do.
        fix: String,
    },
    /// The merged pillar cannot be handed to Tera.
    #[error(
        "the merged pillar cannot be given to the templates: {0}\n  fix: give every pillar key a name"
    )]
    Context(String),
    /// A template file cannot be read.
    #[error("{path}: cannot read: {source}\n  fix: check that the file exists and is UTF-8 text")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A spec entry names a template that does not exist.
    #[error("{place}: template {src} does not exist\n  fix: create {path}, or correct src")]
    MissingSource {
        /// The spec entry.
        place: Place,
        /// Its src.
        src: String,
        /// The full path looked for.
        path: PathBuf,
    },
    /// The destination exists and is not a regular file.
    #[error(
        "{dest}: exists and is a directory (or not a regular file)\n  fix: remove it, or choose another dest in {spec}"
    )]
    NotAFile {
        /// The destination.
        dest: PathBuf,
        /// The spec file.
        spec: Place,
    },
    /// The check command refused the staged output.
    #[error(
        "{dest}: the check `{command}` failed ({status}):\n{output}  fix: correct the template or the pillar so that the check passes; the old file is untouched"
    )]
    CheckFailed {
        /// The destination.
        dest: PathBuf,
        /// The command, as run.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed, indented.
        output: String,
    },
    /// Staging failed: nothing was replaced.
    #[error("{0}\n  fix: nothing was changed; make the destination writable and try again")]
    Write(#[from] AtomicError),
    /// A rename failed after others had succeeded.
    #[error(
        "{source}\n  already replaced: {written}\n  fix: make the destination writable and reload; the files above are new, the others old"
    )]
    PartlyWritten {
        /// The destinations already replaced, comma-separated.
        written: String,
        /// Why the next one failed.
        source: AtomicError,
    },
}

/// The Tera environment of one project.
pub struct Renderer {
    tera: Tera,
    /// Template name -> (file, source), for error excerpts.
    sources: HashMap<String, (PathBuf, String)>,
    secrets: Arc<Mutex<Secrets>>,
    templates_dir: PathBuf,
}

/// The name `launch.yml` is known by inside Tera. Tera escapes the templates whose
/// names end with it, so no file under templates/ may: a file name cannot hold a NUL.
const SPEC_NAME: &str = "\0launch.yml";

impl Renderer {
    /// Loads every file under `templates/` (so includes and components resolve) and the
    /// spec. All syntax errors are reported.
    pub fn new(layout: &Layout, spec_text: &str) -> Result<Renderer, Vec<RenderError>> {
        let secrets = Arc::new(Mutex::new(Secrets {
            volume: Some(layout.data.clone()),
            ..Secrets::default()
        }));
        let mut tera = Tera::new();
        // Config files are not HTML: never escape them. The spec's values become tokens
        // that stay inside YAML scalars, whatever they hold.
        tera.autoescape_on([SPEC_NAME]);
        tera.set_escape_fn(spec_text::escape);
        register(&mut tera, secrets.clone());

        let mut errors = Vec::new();
        let templates_dir = layout.templates_dir();
        let mut sources = read_templates(&templates_dir, &mut errors);
        sources.insert(
            SPEC_NAME.to_string(),
            (layout.spec_file(), spec_text.to_string()),
        );
        let mut renderer = Renderer {
            tera,
            sources,
            secrets,
            templates_dir,
        };
        // One by one, so that every broken file is reported (references to other files
        // cannot resolve alone: those are left to the pass with all files together).
        for (name, (_, text)) in &renderer.sources {
            let mut alone = Tera::new();
            register(&mut alone, Arc::new(Mutex::new(Secrets::default())));
            if let Err(e) = alone.add_raw_template(name, text) {
                errors.extend(
                    renderer
                        .errors(&e, name)
                        .into_iter()
                        .filter(|(what, _)| {
                            !what.starts_with("Unknown template")
                                && !what.starts_with("Unknown component")
                        })
                        .map(|(_, e)| e),
                );
            }
        }
        if errors.is_empty() {
            let all: Vec<(String, String)> = renderer
                .sources
                .iter()
                .map(|(n, (_, t))| (n.clone(), t.clone()))
                .collect();
            if let Err(e) = renderer.tera.add_raw_templates(all) {
                errors.extend(renderer.errors(&e, SPEC_NAME).into_iter().map(|(_, e)| e));
            }
        }
        if errors.is_empty() {
            Ok(renderer)
        } else {
            Err(errors)
        }
    }

    /// Renders `project/launch.yml`, each value as a token ([`spec_text::SpecText`]
    /// takes them out). In it, `{{ staged }}` stays as written, for the template `check`
    /// commands that use it.
    pub fn render_spec(&self, context: &Context) -> Result<String, RenderError> {
        let mut context = context.clone();
        context.insert("staged", "{{ staged }}");
        self.tera
            .render(SPEC_NAME, &context)
            .map_err(|e| self.error(&e, SPEC_NAME))
    }

    /// Renders one template of the spec.
    pub fn render(
        &self,
        template: &Template,
        spec_file: &Path,
        context: &Context,
    ) -> Result<String, RenderError> {
        let name = template
            .src
            .strip_prefix("templates")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| template.src.to_string_lossy().into_owned());
        if !self.sources.contains_key(&name) || name == SPEC_NAME {
            return Err(RenderError::MissingSource {
                place: Place {
                    file: spec_file.into(),
                    line: template.line,
                    col: 0,
                },
                src: template.src.display().to_string(),
                path: self.templates_dir.join(&name),
            });
        }
        self.tera
            .render(&name, context)
            .map_err(|e| self.error(&e, &name))
    }

    /// Every secret value read so far (to mask them in what launch shows).
    pub fn secrets(&self) -> Vec<String> {
        self.secrets
            .lock()
            .map(|s| s.known.clone())
            .unwrap_or_default()
    }

    /// The secrets rendering made (`generate=`), to be kept in the volume by apply.
    pub fn generated(&self) -> Vec<(String, String)> {
        self.secrets
            .lock()
            .map(|s| s.generated.clone())
            .unwrap_or_default()
    }

    fn error(&self, e: &tera::Error, fallback: &str) -> RenderError {
        self.errors(e, fallback).into_iter().next().map_or_else(
            || self.located(fallback, 0, 0, plain_message(e), e),
            |(_, e)| e,
        )
    }

    /// Every problem in a Tera error, each with its message (a build error lists all the
    /// missing filters and includes of a template as formatted reports: they are read
    /// back into places here).
    fn errors(&self, e: &tera::Error, fallback: &str) -> Vec<(String, RenderError)> {
        use tera::ErrorKind as K;
        if let K::SyntaxError(r) | K::RenderingError(r) = e.kind() {
            let name = if r.filename().is_empty() {
                fallback
            } else {
                r.filename()
            };
            let what = r.message().to_string();
            return vec![(
                what.clone(),
                self.located(name, r.span().start_line, r.span().start_col + 1, what, e),
            )];
        }
        let text = plain_message(e);
        let mut found = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let Some(what) = line.strip_prefix("error: ") else {
                continue;
            };
            let Some(at) = lines
                .peek()
                .and_then(|l| l.trim_start().strip_prefix("--> "))
            else {
                continue;
            };
            let mut parts = at.rsplitn(3, ':');
            let col = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            let line_no = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
            let name = parts.next().unwrap_or(fallback);
            found.push((
                what.to_string(),
                self.located(name, line_no, col, what.to_string(), e),
            ));
        }
        if found.is_empty() {
            found.push((text.clone(), self.located(fallback, 0, 0, text, e)));
        }
        found
    }

    fn located(
        &self,
        name: &str,
        line: usize,
        col: usize,
        what: String,
        e: &tera::Error,
    ) -> RenderError {
        use tera::ErrorKind as K;
        let (file, text) = self
            .sources
            .get(name)
            .map(|(f, t)| (f.clone(), t.as_str()))
            .unwrap_or_else(|| (PathBuf::from(name), ""));
        let lower = what.to_lowercase();
        if lower.contains("unexpected end of input") {
            if let Some((line, tag, end)) = crate::config::hints::unclosed_block(text) {
                return RenderError::Template {
                    place: Place { file, line, col: 0 },
                    what: format!("this {{% {tag} %}} is never closed"),
                    excerpt: yaml::excerpt(text, line, 0),
                    fix: format!("close it with {{% {end} %}} where the block ends"),
                };
            }
        }
        let fix = if lower.contains("unknown template")
            || matches!(e.kind(), K::TemplateNotFound(_))
        {
            "create the included file under project/templates/, or correct its name"
        } else if lower.contains("unknown filter") {
            "use a filter Tera has, or one launch adds: to_json, to_yaml, shell_quote, default"
        } else if lower.contains("unknown function") {
            "use a function Tera has (range, throw), or launch's secret(name=\"...\")"
        } else if lower.contains("not found")
            || lower.contains("undefined")
            || lower.contains("not defined")
        {
            "define it in project/pillar.yml (or the operator's configuration/pillar.yml), or give a fallback: {{ x | default(value=\"...\") }}"
        } else if matches!(e.kind(), K::SyntaxError(_)) {
            "correct the Tera syntax here ({{ value }}, {% if %}...{% endif %}, {# comment #})"
        } else {
            "correct the template or the pillar value it uses"
        };
        RenderError::Template {
            place: Place { file, line, col },
            what,
            excerpt: yaml::excerpt(text, line, col),
            fix: fix.to_string(),
        }
    }
}

/// Every file under `templates_dir` by its name there (so that includes and components
/// resolve), with its path and text; what cannot be read goes to `errors`.
fn read_templates(
    templates_dir: &Path,
    errors: &mut Vec<RenderError>,
) -> HashMap<String, (PathBuf, String)> {
    let mut sources = HashMap::new();
    if templates_dir.is_dir() {
        for entry in walkdir::WalkDir::new(templates_dir).sort_by_file_name() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    errors.push(RenderError::Read {
                        path: e
                            .path()
                            .map(Path::to_path_buf)
                            .unwrap_or_else(|| templates_dir.to_path_buf()),
                        source: e.into(),
                    });
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path().to_path_buf();
            let name = path
                .strip_prefix(templates_dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            match fs::read_to_string(&path) {
                Ok(text) => {
                    sources.insert(name, (path, text));
                }
                Err(source) => errors.push(RenderError::Read { path, source }),
            }
        }
    }
    sources
}

fn plain_message(e: &tera::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The context every template and the spec see: `pillar`, `image` (the pillar without
/// the operator's layer), `env`, `project`.
///
/// Fails only on a pillar that [`Pillar::load`] would have refused (a key Tera cannot
/// take); Tera's own `insert` would panic on it.
pub fn context(pillar: &Pillar, layout: &Layout) -> Result<Context, RenderError> {
    let mut context = Context::new();
    for (name, map) in [("pillar", &pillar.value), ("image", &pillar.image)] {
        let value = tera::Value::try_from_serializable(map)
            .map_err(|e| RenderError::Context(plain_message(&e)))?;
        context.insert_value(name, value);
    }
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    context.insert("env", &env);
    let mut project = std::collections::BTreeMap::new();
    project.insert("name", layout.name.clone());
    project.insert("dir", layout.project.display().to_string());
    project.insert("data", layout.data.display().to_string());
    context.insert("project", &project);
    Ok(context)
}

fn register(tera: &mut Tera, secrets: Arc<Mutex<Secrets>>) {
    tera.register_filter(
        "to_json",
        |value: tera::Value, kwargs: Kwargs, _: &State| -> TeraResult<String> {
            let pretty = kwargs.get::<bool>("pretty")?.unwrap_or(false);
            let result = if pretty {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            };
            result.map_err(|e| tera::Error::message(format!("to_json: {e}")))
        },
    );
    tera.register_filter(
        "to_yaml",
        |value: tera::Value, _: Kwargs, _: &State| -> TeraResult<String> {
            serde_yaml::to_string(&value).map_err(|e| tera::Error::message(format!("to_yaml: {e}")))
        },
    );
    tera.register_filter(
        "shell_quote",
        |value: tera::Value, _: Kwargs, _: &State| -> String {
            shell_quote(&scalar_string(&value))
        },
    );
    tera.register_function(
        "secret",
        move |kwargs: Kwargs, _: &State| -> TeraResult<String> {
            let name: String = kwargs.must_get("name")?;
            let generate: Option<usize> = kwargs.get("generate")?;
            let mut store = secrets
                .lock()
                .map_err(|_| tera::Error::message("secret: the store is unusable"))?;
            store.lookup(&name, generate).map_err(tera::Error::message)
        },
    );
}

fn scalar_string(value: &tera::Value) -> String {
    match value.as_str() {
        Some(s) => s.to_string(),
        None => value.to_string(),
    }
}

/// Quotes `s` for a POSIX shell: `it's` becomes `'it'\''s'`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Replaces every secret value in `text` by `********`.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    // Longest first, so that a secret containing another is masked whole.
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in sorted {
        out = out.replace(secret.as_str(), "********");
    }
    out
}

pub use output::{Applied, Change, Output, apply, check_only};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pillar_tera_cannot_take_is_an_error_not_a_panic() {
        let mut pillar = Pillar::new(false);
        pillar.value = serde_yaml::from_str("a: {? : 1}\n").unwrap();
        let layout = Layout {
            name: "x".into(),
            project: "/p".into(),
            pillar: "/q".into(),
            data: "/d".into(),
        };
        let e = context(&pillar, &layout).unwrap_err().to_string();
        assert!(
            e.contains("the merged pillar cannot be given to the templates"),
            "{e}"
        );
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("plain-word_1.conf"), "plain-word_1.conf");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b;rm -rf /"), "'a b;rm -rf /'");
    }

    #[test]
    fn masking_longest_first() {
        let secrets = vec!["abc".to_string(), "abcdef".to_string()];
        assert_eq!(mask("x abcdef y abc", &secrets), "x ******** y ********");
    }
}
