//! Shared by the loadtest's end-to-end tests: the gateway binary, built next to this one.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

/// Build the gateway binary into the same target directory and profile as this test's
/// loadtest binary (cargo does not build another package's binary for us) and return it.
pub fn ringway_bin() -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    let profile_dir = loadtest.parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cmd.args(["build", "--quiet", "-p", "ringway", "--bin", "ringway"])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => panic!("odd target path {}", loadtest.display()),
    }
    let status = cmd.status().expect("run cargo build for ringway");
    assert!(status.success(), "building ringway failed");
    let bin = profile_dir.join("ringway");
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}
