//! `launch import FILE`: a circus.ini, a supervisord.conf (or any file of
//! `[program:x]` sections) or a Procfile, turned into a launch.yml, with every option
//! that could not be carried over listed at its top and on stderr.
//!
//! Each reader is a pure function from text to an [`Imported`]; [`emit`] writes it.

pub mod circus;
pub mod copies;
pub mod emit;
pub mod ini;
pub mod procfile;
pub mod supervisord;
pub mod words;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::exit::code;

/// The biggest file `launch import` reads: configurations are a few KiB.
const MAX_INPUT: u64 = 1 << 20;

/// What `launch import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// circus.ini: `[watcher:x]` sections.
    Circus,
    /// supervisord.conf: `[program:x]` sections.
    Supervisord,
    /// A Procfile: `name: command` lines.
    Procfile,
}

impl Format {
    /// Tells the format from the text: INI sections name theirs; anything else is a
    /// Procfile.
    pub fn detect(text: &str) -> Format {
        let header = |prefix: &str| text.lines().any(|l| l.trim_start().starts_with(prefix));
        if header("[watcher:") || header("[circus]") {
            Format::Circus
        } else if header("[program:") || header("[supervisord]") {
            Format::Supervisord
        } else {
            Format::Procfile
        }
    }

    /// Its name, for the header of the output.
    pub fn name(self) -> &'static str {
        match self {
            Format::Circus => "circus",
            Format::Supervisord => "supervisord",
            Format::Procfile => "Procfile",
        }
    }
}

/// How a process is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Executed directly.
    Exec(Vec<String>),
    /// Run by `/bin/sh -c`.
    Shell(String),
}

/// One process of the output. Strings may hold environment references
/// ([`words::env_ref`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Its name in launch.yml.
    pub name: String,
    /// What it runs.
    pub command: Command,
    /// `kind: oneshot` instead of a service.
    pub oneshot: bool,
    /// Working directory.
    pub cwd: Option<String>,
    /// User (name or number).
    pub user: Option<String>,
    /// Group (name or number).
    pub group: Option<String>,
    /// Extra environment, in the source's order.
    pub env: Vec<(String, String)>,
    /// `always`, `on-failure` or `never`; `None` keeps launch's default (always).
    pub restart: Option<&'static str>,
    /// As `SIGQUIT`.
    pub stop_signal: Option<String>,
    /// As `10s`.
    pub stop_timeout: Option<String>,
    /// Octal, as `022`.
    pub umask: Option<String>,
    /// Restarts allowed within launch's restart window.
    pub max_restarts: Option<u32>,
    /// Recycled after running this long, as `86400s`.
    pub max_age: Option<String>,
    /// Other processes started first.
    pub depends_on: Vec<String>,
    /// The source's start order (lower first), when it gave one.
    pub priority: Option<i64>,
    /// How many copies run (`instances:`), when more than one.
    pub instances: Option<u32>,
}

impl Program {
    /// A process running `command`, every option at launch's default.
    pub fn new(name: &str, command: Command) -> Program {
        Program {
            name: name.into(),
            command,
            oneshot: false,
            cwd: None,
            user: None,
            group: None,
            env: Vec::new(),
            restart: None,
            stop_signal: None,
            stop_timeout: None,
            umask: None,
            max_restarts: None,
            max_age: None,
            depends_on: Vec::new(),
            priority: None,
            instances: None,
        }
    }
}

/// Something of the source that the output does not carry, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// 1-based line in the source.
    pub line: usize,
    /// What was there, what launch does instead, what to do.
    pub text: String,
}

/// A source read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Imported {
    /// In the source's order.
    pub programs: Vec<Program>,
    /// In the source's order.
    pub notes: Vec<Note>,
}

impl Imported {
    /// Records what was not carried over.
    pub fn note(&mut self, line: usize, text: impl Into<String>) {
        self.notes.push(Note {
            line,
            text: text.into(),
        });
    }
}

/// Why a file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read.
    #[error(
        "{0}: cannot read it ({1}); give the path of a circus.ini, supervisord.conf or Procfile"
    )]
    Read(PathBuf, std::io::Error),
    /// Not a regular file, or too big.
    #[error("{0}: {1}; give the path of a circus.ini, supervisord.conf or Procfile")]
    NotConfig(PathBuf, String),
    /// A line the reader does not understand.
    #[error("{file}:{line}: {what}")]
    Syntax {
        /// The source.
        file: PathBuf,
        /// 1-based.
        line: usize,
        /// What is wrong and what to write instead.
        what: String,
    },
    /// Nothing to import.
    #[error(
        "{0}: no [program:x], [watcher:x] or `name: command` line found; is it the right file?"
    )]
    Empty(PathBuf),
    /// The output exists.
    #[error("{0}: exists; launch import never overwrites: move it away or give another --out DIR")]
    Exists(PathBuf),
    /// The output cannot be written.
    #[error("{0}: cannot write it ({1}); give another --out DIR, or none to print on stdout")]
    Write(PathBuf, std::io::Error),
}

/// A line error, before the file name is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    /// What is wrong and what to write instead.
    pub what: String,
}

/// Reads `text` as `format`.
pub fn import(format: Format, text: &str, dir: &Path) -> Result<Imported, LineError> {
    if let Some((i, _)) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains([words::ENV_OPEN, words::ENV_CLOSE, words::INSTANCE]))
    {
        return Err(LineError {
            line: i + 1,
            what: "holds the private-use character U+E200, U+E201 or U+E202; remove it".into(),
        });
    }
    match format {
        Format::Circus => circus::read(text),
        Format::Supervisord => supervisord::read(text, dir),
        Format::Procfile => procfile::read(text),
    }
}

/// `launch import FILE [--out DIR]`: prints or writes the launch.yml; the notes also
/// go to stderr. 0 when written, 65 when the file cannot be read, 73 when the output
/// cannot be written.
pub fn command(file: &Path, out: Option<&Path>) -> i32 {
    match run(file, out) {
        Ok(notes) => {
            for note in notes {
                eprintln!("launch import: not carried over: {note}");
            }
            0
        }
        Err(e @ (ImportError::Exists(_) | ImportError::Write(..))) => {
            eprintln!("launch import: {e}");
            code::CANT_CREATE
        }
        Err(e) => {
            eprintln!("launch import: {e}");
            DATA_ERROR
        }
    }
}

/// sysexits' EX_DATAERR: the input is not what it should be.
const DATA_ERROR: i32 = 65;

fn run(file: &Path, out: Option<&Path>) -> Result<Vec<String>, ImportError> {
    let text = read(file)?;
    let format = if file.file_name().is_some_and(|n| n == "Procfile") {
        Format::Procfile
    } else {
        Format::detect(&text)
    };
    let dir = std::path::absolute(file)
        .ok()
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let imported = import(format, &text, &dir).map_err(|e| ImportError::Syntax {
        file: file.into(),
        line: e.line,
        what: e.what,
    })?;
    if imported.programs.is_empty() {
        return Err(ImportError::Empty(file.into()));
    }
    let yaml = emit::launch_yml(&imported, file, format);
    let notes = imported
        .notes
        .iter()
        .map(|n| format!("{}:{}: {}", file.display(), n.line, n.text))
        .collect();
    match out {
        None => {
            let _ = std::io::stdout().lock().write_all(yaml.as_bytes());
        }
        Some(dir) => {
            let dest = dir.join("launch.yml");
            std::fs::create_dir_all(dir).map_err(|e| ImportError::Write(dir.into(), e))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&dest)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => ImportError::Exists(dest.clone()),
                    _ => ImportError::Write(dest.clone(), e),
                })?;
            f.write_all(yaml.as_bytes())
                .map_err(|e| ImportError::Write(dest.clone(), e))?;
            eprintln!("launch import: wrote {}", dest.display());
        }
    }
    Ok(notes)
}

/// The file's text: a regular file (a FIFO would block), bounded, UTF-8.
fn read(file: &Path) -> Result<String, ImportError> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(|e| ImportError::Read(file.into(), e))?;
    let meta = f
        .metadata()
        .map_err(|e| ImportError::Read(file.into(), e))?;
    if !meta.is_file() {
        return Err(ImportError::NotConfig(
            file.into(),
            "not a regular file".into(),
        ));
    }
    let mut bytes = Vec::new();
    f.take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImportError::Read(file.into(), e))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(ImportError::NotConfig(
            file.into(),
            format!("bigger than {} KiB: not a configuration", MAX_INPUT >> 10),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| ImportError::NotConfig(file.into(), "not UTF-8 text".into()))
}

/// A program's name as launch.yml takes it: not empty, no whitespace, no `/`.
pub fn check_name(kind: &str, name: &str, line: usize) -> Result<(), LineError> {
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(LineError {
            line,
            what: format!(
                "[{kind}:{name}]: launch.yml needs a process name without spaces or /; rename the section"
            ),
        });
    }
    Ok(())
}

/// Orders programs by the source's priorities as a chain of `depends_on` when every
/// program has its own priority; otherwise says why not. `higher_first` is circus's
/// order (supervisord starts the lowest first).
pub fn chain_priorities(imported: &mut Imported, higher_first: bool, line: usize) {
    if imported.programs.iter().all(|p| p.priority.is_none()) {
        return;
    }
    let mut order: Vec<(i64, usize)> = imported
        .programs
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.priority.map(|n| (if higher_first { -n } else { n }, i)))
        .collect();
    order.sort();
    let distinct = order.windows(2).all(|w| w[0].0 != w[1].0);
    if order.len() != imported.programs.len() || !distinct || order.len() < 2 {
        if order.len() > 1 || order.len() != imported.programs.len() {
            imported.note(
                line,
                "priority: not a clear order (some programs share one or have none); \
                 launch starts processes together unless depends_on says otherwise: \
                 add depends_on where one needs another",
            );
        }
        return;
    }
    for pair in order.windows(2) {
        let first = imported.programs[pair[0].1].name.clone();
        imported.programs[pair[1].1].depends_on.push(first);
    }
}
