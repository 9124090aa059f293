//! The operator's side of the volume: `configuration/`, root's and 0750, and on a first
//! start `configuration/pillar.yml` with every default commented out, so that the file
//! the operator will edit shows every knob. Both written through held descriptors.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::config::layout::Layout;
use crate::config::pillar::{PillarError, override_files};
use crate::volume::access::{self, Dir, Trust};
use crate::volume::atomic::{self, Attributes};

/// The operator's directory, `configuration/`, held: root's, 0750, created if missing
/// and its own mode and owner corrected at every start through its descriptor (the
/// files in it are left as the operator keeps them; no recursive walk of the volume).
/// A symlink there is refused, never followed.
pub fn prepare_configuration_dir(layout: &Layout) -> Result<Dir, PillarError> {
    let volume = Dir::open_root(&layout.data, true)?.ok_or_else(|| {
        PillarError::Access(access::AccessError::Io {
            path: layout.data.clone(),
            op: "open the volume",
            source: io::ErrorKind::NotFound.into(),
        })
    })?;
    let owner = nix::unistd::geteuid().is_root().then_some((0, 0));
    let attrs = Attributes::owned(0o750, owner);
    let dir = volume
        .open_dir(Path::new("configuration"), Some(attrs))?
        .ok_or_else(|| {
            PillarError::Access(access::AccessError::Io {
                path: layout.data.join("configuration"),
                op: "create",
                source: io::ErrorKind::NotFound.into(),
            })
        })?;
    dir.set_attributes(attrs)?;
    Ok(dir)
}

/// The text of a new operator file: every default, commented out.
fn operator_file_text(layout: &Layout) -> String {
    let mut text = String::from(
        "# The operator's configuration of this service: launch reads it at every start\n\
         # and on `docker kill -s HUP`. Uncomment a line and change its value to override\n\
         # the image's default; `launch check --show-pillar` shows the merged result.\n",
    );
    let mut sources = vec![layout.defaults_file()];
    sources.extend(override_files(layout));
    for source in sources {
        let Ok(Some(defaults)) =
            access::read_path(&source, &Trust::default(), access::max_file_size())
        else {
            continue;
        };
        let _ = write!(text, "\n# --- defaults from {} ---\n", source.display());
        for line in String::from_utf8_lossy(&defaults).lines() {
            if line.trim().is_empty() {
                text.push('\n');
            } else {
                let _ = writeln!(
                    text,
                    "#{}{line}",
                    if line.starts_with('#') { "" } else { " " }
                );
            }
        }
    }
    text
}

/// On first start the operator's file does not exist: create it in the held
/// `configuration/` with every default commented out, so that the file they will edit
/// shows every knob. Returns true when it was written; an existing name (whatever it
/// is) is never touched.
pub fn write_operator_file(layout: &Layout, dir: &Dir) -> Result<bool, PillarError> {
    let name = std::ffi::OsStr::new("pillar.yml");
    if dir.lstat_name(name)?.is_some() {
        return Ok(false);
    }
    let owner = nix::unistd::geteuid().is_root().then_some((0, 0));
    atomic::write_in(
        dir,
        name,
        operator_file_text(layout).as_bytes(),
        Attributes::owned(0o640, owner),
    )?;
    Ok(true)
}
