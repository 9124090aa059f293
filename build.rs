//! Links the image binary (`cargo static`) with `.cargo/hot-text.ld`, which gathers the
//! code plain init runs (and the read-only data it reads), then the code `launch run`'s
//! PID 1 runs besides (made by scripts/hot-text).
//!
//! Why: at a page fault the kernel maps 64 KiB of the page cache around the page, or a
//! whole large folio, so a start-up that touches 300 functions scattered over 1.9 MiB of
//! text maps nearly all of it (1.7 MiB of RSS); gathered, they fill a few windows.
//! `max-page-size=64K` makes each segment's addresses agree with its file offsets modulo
//! 64 KiB, so that those windows and the page cache's folios line up (costs no file
//! size, only gaps in the address space). Only static builds get this: they are what
//! goes into images and what the benchmark measures.

fn main() {
    println!("cargo:rerun-if-changed=.cargo/hot-text.ld");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LAUNCH_LINK_MAP");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" && features.split(',').any(|f| f == "crt-static") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{dir}/.cargo/hot-text.ld");
        println!("cargo:rustc-link-arg-bins=-Wl,-z,max-page-size=65536");
        // scripts/hot-text reads where each function went from the linker's map.
        if let Ok(map) = std::env::var("LAUNCH_LINK_MAP") {
            println!("cargo:rustc-link-arg-bins=-Wl,-Map={map}");
        }
    }
}
