//! Compiles `native-server/main.rs`, the HTTP server of the runc image that
//! `mayfly compare`'s cold start runs through containerd, as a static
//! executable for the target, into `$OUT_DIR/native-server`; the crate
//! carries its bytes (`cold_start::NATIVE_SERVER`).
//!
//! It uses the standard library alone, so rustc builds it directly: no
//! cargo, no dependencies, nothing outside this crate. Where it cannot be
//! built (no static C library for the target, say), the file is left empty
//! and the reason passed on, and the cold start says why it is skipped
//! rather than the whole crate failing to build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = PathBuf::from(env("CARGO_MANIFEST_DIR")).join("native-server/main.rs");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env("OUT_DIR")).join("native-server");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let built = Command::new(rustc)
        .args(["--edition", "2021", "--crate-type", "bin"])
        .args(["--crate-name", "native_server"])
        .args(["--target", &env("TARGET")])
        .args([
            "-C",
            "opt-level=2",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        // Static, so that it runs alone in an image of two files.
        .args(["-C", "target-feature=+crt-static"])
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .output();
    let failure = match built {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .find(|line| line.starts_with("error"))
                .unwrap_or("rustc failed")
                .to_string(),
        ),
        Err(err) => Some(format!("cannot run rustc: {err}")),
    };
    if let Some(why) = &failure {
        println!("cargo:warning=the cold start's native server was not built: {why}");
        std::fs::write(&out, b"").expect("write an empty native server");
    }
    println!(
        "cargo:rustc-env=MAYFLY_COMPARE_NATIVE_SERVER_ERROR={}",
        failure.unwrap_or_default().replace('\n', " ")
    );
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name}"))
}
