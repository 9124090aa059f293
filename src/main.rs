//! The `launch` binary: the fast path of `launch -- CMD`, and [`launch::cli`] for the
//! rest of the command line.

// The standard runtime's start-up sets SIGPIPE to "ignore" before `main`, and the
// command must see the disposition launch was really given. So launch has its own C
// `main`; std still works (glibc hands argv to it through .init_array).
#![no_main]

use std::ffi::OsString;

use launch::cli::{self, DEFAULT_GRACE};
use launch::config::configure_worker;
use launch::exit::Remap;
use launch::supervise::{self, PlainInit};

/// The entry point, called by the C runtime.
// SAFETY: this is the process's only `main` symbol; the C runtime calls it once with
// argc/argv, which std reads on its own.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // `ENTRYPOINT ["launch", "--"]`, the common case, with every option at its default:
    // straight to plain init. Building clap's whole command tree first is about a third
    // of launch's own start-up (docs/performance.md).
    let mut args = std::env::args_os();
    let first = args.nth(1);
    if first
        .as_ref()
        .is_some_and(|a| a == configure_worker::SUBCOMMAND)
    {
        return configure_worker::main(args);
    }
    if first.is_some_and(|a| a == "--")
        && let Ok(grace) = launch::duration::parse(DEFAULT_GRACE)
    {
        let command: Vec<OsString> = args.collect();
        if !command.is_empty() {
            return supervise::plain_init(PlainInit {
                command,
                forward_to_group: false,
                grace,
                remap: Remap::new(Vec::new()),
                verbose: false,
            });
        }
    }
    cli::dispatch()
}
