//! `mayfly oci build`: an app as an OCI image layout tarball, the same
//! bytes for the same app, and nothing written for a bad one.

use std::ffi::OsStr;
use std::path::Path;

use crate::guests;
use crate::harness::{run_mayfly, write_file};

/// Runs `mayfly oci build MANIFEST -o OUTPUT --name NAME`.
fn oci_build(manifest: &Path, output: &Path, name: &str) -> (bool, String, String) {
    let output = run_mayfly(&[
        OsStr::new("oci"),
        OsStr::new("build"),
        manifest.as_os_str(),
        OsStr::new("-o"),
        output.as_os_str(),
        OsStr::new("--name"),
        OsStr::new(name),
    ]);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The digest in `Built REFERENCE (sha256:...) into OUTPUT`.
fn printed_digest(stdout: &str, reference: &str, output: &Path) -> String {
    let line = stdout.lines().next().unwrap_or_default();
    let digest = line
        .strip_prefix(&format!("Built {reference} ("))
        .and_then(|rest| rest.strip_suffix(&format!(") into {}", output.display())))
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"));
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest}"
    );
    digest.to_string()
}

#[test]
fn an_app_builds_into_the_same_image_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_file(
        dir.path(),
        "hello.toml",
        format!(
            "[component.hello]\nsource = {:?}\n[[route]]\npath = \"/\"\ncomponent = \"hello\"\n",
            guests::HELLO
        ),
    );
    let first = dir.path().join("first.tar");
    let (ok, stdout, stderr) = oci_build(&manifest, &first, "hello:1");
    assert!(ok, "{stdout}\n{stderr}");
    let digest = printed_digest(&stdout, "docker.io/library/hello:1", &first);
    assert!(
        stdout.contains(&format!("ctr image import {}", first.display())),
        "{stdout}"
    );

    let second = dir.path().join("second.tar");
    let (ok, stdout, stderr) = oci_build(&manifest, &second, "hello:1");
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(
        printed_digest(&stdout, "docker.io/library/hello:1", &second),
        digest
    );
    let bytes = std::fs::read(&first).unwrap();
    assert_eq!(bytes, std::fs::read(&second).unwrap());
    // The manifest the digest names is a blob of the tarball.
    let blob = format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap());
    assert!(
        bytes
            .windows(blob.len())
            .any(|window| window == blob.as_bytes()),
        "no {blob} in the tarball"
    );
}

#[test]
fn a_bad_manifest_or_name_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_file(
        dir.path(),
        "app.toml",
        format!(
            "[limits]\ntimeout = \"forever\"\n[component.hello]\nsource = {:?}\n\
             [[route]]\npath = \"/\"\ncomponent = \"hello\"\n",
            guests::HELLO
        ),
    );
    let output = dir.path().join("app.tar");
    let (ok, stdout, stderr) = oci_build(&manifest, &output, "hello:1");
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: invalid manifest {}: field `limits.timeout`: ",
            manifest.display()
        )),
        "{stderr}"
    );

    let missing = write_file(
        dir.path(),
        "missing.toml",
        "[component.api]\nsource = \"api.wasm\"\n[[route]]\npath = \"/\"\ncomponent = \"api\"\n",
    );
    let (ok, stdout, stderr) = oci_build(&missing, &output, "hello:1");
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("field `component.api.source`: "),
        "{stderr}"
    );
    assert!(stderr.contains("api.wasm: No such file"), "{stderr}");

    let good = write_file(
        dir.path(),
        "good.toml",
        format!(
            "[component.hello]\nsource = {:?}\n[[route]]\npath = \"/\"\ncomponent = \"hello\"\n",
            guests::HELLO
        ),
    );
    let (ok, stdout, stderr) = oci_build(&good, &output, "Hello:1");
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(
        stderr
            .contains("'Hello:1' for '--name <NAME[:TAG]>': the repository name must be lowercase"),
        "{stderr}"
    );

    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["app.toml", "good.toml", "missing.toml"]);
}
