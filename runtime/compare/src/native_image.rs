//! The runc side of the cold start through containerd: an OCI image of
//! the native workload behind a small static HTTP server
//! ([`NATIVE_SERVER`], `native-server/main.rs`), which answers `GET
//! /trivial` and `GET /json/N` by running `/workload` in a fresh process,
//! as the CGI host does, with the same text as the `workload-http`
//! component.
//!
//! The image is two static executables and the empty directories a
//! container's mounts land on, in one uncompressed layer, written as an OCI
//! image layout tarball that `ctr image import` takes. Like `mayfly oci
//! build`'s, the same inputs give the same bytes: entries in path order,
//! owner 0:0, no names, time 0.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use mayfly_oci::Reference;
use mayfly_sandbox::cache::sha256_hex;
use serde_json::json;

/// The native server, a static executable for this target (empty if the
/// build script could not build it: see [`server_missing`]).
pub static NATIVE_SERVER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/native-server"));

/// Why the build script could not build [`NATIVE_SERVER`].
const SERVER_BUILD_ERROR: &str = env!("MAYFLY_COMPARE_NATIVE_SERVER_ERROR");

/// The server's path in the image: its entrypoint.
pub const SERVER_PATH: &str = "/server";
/// The workload's path in the image, where the server runs it from.
pub const WORKLOAD_PATH: &str = "/workload";

/// Directories the container's mounts (`/proc`, `/dev`, `/sys`, `/run`, the
/// host's `/etc/hosts` with `--net-host`) and the workload's temporary
/// files land on.
const EMPTY_DIRS: [&str; 6] = ["dev", "etc", "proc", "run", "sys", "tmp"];

/// Why there is no native server to put in the image, if there is none.
pub fn server_missing() -> Option<String> {
    NATIVE_SERVER.is_empty().then(|| {
        format!(
            "the native server was not built with mayfly ({})",
            if SERVER_BUILD_ERROR.is_empty() {
                "no reason given"
            } else {
                SERVER_BUILD_ERROR
            }
        )
    })
}

/// Writes the image of the native `workload` behind [`NATIVE_SERVER`],
/// named `reference`, as an image layout tarball at `out`.
pub fn write(out: &Path, reference: &Reference, workload: &[u8]) -> anyhow::Result<()> {
    if let Some(why) = server_missing() {
        anyhow::bail!("{why}");
    }
    let layer = layer(&[(SERVER_PATH, NATIVE_SERVER), (WORKLOAD_PATH, workload)])?;
    let tarball = layout(reference, &layer, &[SERVER_PATH])?;
    std::fs::write(out, tarball).with_context(|| format!("cannot write {}", out.display()))
}

/// The layer: `executables` (path and bytes, mode 0755) and
/// [`EMPTY_DIRS`], as an uncompressed tar.
fn layer(executables: &[(&str, &[u8])]) -> std::io::Result<Vec<u8>> {
    let mut entries: BTreeMap<&str, Option<&[u8]>> = BTreeMap::new();
    for dir in EMPTY_DIRS {
        entries.insert(dir, None);
    }
    for (path, bytes) in executables {
        entries.insert(path.trim_start_matches('/'), Some(bytes));
    }
    let mut tar = tar::Builder::new(Vec::new());
    for (path, bytes) in entries {
        match bytes {
            None => append(&mut tar, path, tar::EntryType::Directory, &[])?,
            Some(bytes) => append(&mut tar, path, tar::EntryType::Regular, bytes)?,
        }
    }
    tar.into_inner()
}

/// Appends an entry with nothing of this machine or this time in it.
fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(u64::try_from(data.len()).unwrap_or(u64::MAX));
    tar.append_data(&mut header, path, data)
}

/// The image layout tarball (`oci-layout`, `index.json`, `blobs/sha256/`)
/// of one image: `layer`, run as `entrypoint`, named `reference`.
fn layout(reference: &Reference, layer: &[u8], entrypoint: &[&str]) -> anyhow::Result<Vec<u8>> {
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut add = |media_type: &str, bytes: Vec<u8>| {
        let hex = sha256_hex(&bytes);
        let descriptor = json!({
            "mediaType": media_type,
            "digest": format!("sha256:{hex}"),
            "size": bytes.len(),
        });
        blobs.insert(hex, bytes);
        descriptor
    };
    let arch = go_arch()?;
    let layer_digest = format!("sha256:{}", sha256_hex(layer));
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Entrypoint": entrypoint,
            "WorkingDir": "/",
            "Env": ["PATH=/"],
        },
        // Uncompressed, so the layer's digest is its diff id.
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    });
    let config = add(
        "application/vnd.oci.image.config.v1+json",
        serde_json::to_vec(&config)?,
    );
    let layer = add("application/vnd.oci.image.layer.v1.tar", layer.to_vec());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    });
    let mut manifest_descriptor = add(
        "application/vnd.oci.image.manifest.v1+json",
        serde_json::to_vec(&manifest)?,
    );
    manifest_descriptor["platform"] = json!({ "architecture": arch, "os": "linux" });
    manifest_descriptor["annotations"] = json!({
        "io.containerd.image.name": reference.to_string(),
        "org.opencontainers.image.ref.name": reference.tag(),
    });
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_descriptor],
    });

    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, "blobs", tar::EntryType::Directory, &[])?;
    append(&mut tar, "blobs/sha256", tar::EntryType::Directory, &[])?;
    for (hex, bytes) in &blobs {
        append(
            &mut tar,
            &format!("blobs/sha256/{hex}"),
            tar::EntryType::Regular,
            bytes,
        )?;
    }
    append(
        &mut tar,
        "index.json",
        tar::EntryType::Regular,
        &serde_json::to_vec(&index)?,
    )?;
    append(
        &mut tar,
        "oci-layout",
        tar::EntryType::Regular,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(tar.into_inner()?)
}

/// This machine's architecture, as OCI (and Go) name it.
fn go_arch() -> anyhow::Result<&'static str> {
    Ok(match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "loongarch64" => "loong64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        other => anyhow::bail!("no OCI name for the architecture {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::{NATIVE_SERVER, layer, layout};

    #[test]
    fn the_native_server_is_built_into_the_crate() {
        // An ELF executable (unless this target could not build it, which
        // the build script warned about).
        assert!(
            NATIVE_SERVER.is_empty() || NATIVE_SERVER.starts_with(b"\x7fELF"),
            "{:?}",
            &NATIVE_SERVER[..NATIVE_SERVER.len().min(8)]
        );
    }

    #[test]
    fn the_image_is_the_same_bytes_every_time() {
        let reference = "compare-native:1".parse().unwrap();
        let build = || {
            let layer = layer(&[("/server", b"s"), ("/workload", b"w")]).unwrap();
            layout(&reference, &layer, &["/server"]).unwrap()
        };
        let first = build();
        assert_eq!(first, build());
        let mut archive = tar::Archive::new(first.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|entry| entry.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names[..2], ["blobs", "blobs/sha256"]);
        assert_eq!(names[names.len() - 2..], ["index.json", "oci-layout"]);
        // The config, the layer and the manifest.
        assert_eq!(names.len(), 7, "{names:?}");
    }
}
