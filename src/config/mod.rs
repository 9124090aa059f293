//! The configuration floor: from the project, the pillar and the volume to a plan of
//! what a reconfigure would write, seed, install and notify, and the worker that carries
//! it out for `launch run`. It acts on the volume only through [`crate::volume`].
//!
//! - [`layout`]: where the project, the image's pillar and the volume are.
//! - [`pillar`], [`schema`], [`operator_file`]: the layers, their shape, the operator's
//!   file.
//! - [`spec`], [`spec_text`]: launch.yml as a typed, validated spec, with the values Tera
//!   put into it kept out of its structure.
//! - [`render`], [`secrets`], [`check_command`], [`diff`]: the templates, the secrets
//!   they read, their checks, and the diffs `check` prints.
//! - [`reconfigure`]: the plan and apply pipeline; [`configure_worker`] runs it in a
//!   child process for `launch run`; [`rollback`] keeps what a reload replaced and puts
//!   it back when the reload is rolled back; [`unprivileged`]: the owners a launch that
//!   is not root can give.
//! - [`yaml`], [`hints`]: YAML errors at file:line:col, and where an error really is.

pub mod check_command;
pub mod configure_worker;
pub mod diff;
pub mod hints;
pub mod layout;
pub mod operator_file;
pub mod pillar;
pub mod reconfigure;
pub mod render;
pub mod rollback;
pub mod schema;
pub mod secrets;
pub mod spec;
pub mod spec_text;
pub mod unprivileged;
pub mod yaml;
