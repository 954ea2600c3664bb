//! The image's OCI documents (config, manifest, index) and the image
//! layout tarball they are written as: `oci-layout`, `index.json` and
//! `blobs/sha256/...`, as `ctr image import` reads it.
//!
//! Every document is compact JSON with its keys sorted (oci-spec keeps
//! labels and annotations in hash maps, whose order changes from run to
//! run), and none holds a time, so the digests depend on the app alone.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufWriter};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use mayfly_sandbox::cache::sha256_hex;
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, PlatformBuilder,
    RootFsBuilder, SCHEMA_VERSION,
};
use serde::Serialize;
use serde_json::Value;

use crate::app::AppFiles;
use crate::error::BuildError;
use crate::layer::{self, Layer};
use crate::reference::Reference;
use crate::{APP_MANIFEST, WORKING_DIR};

/// The ports the shim serves on by default, declared in the config.
const EXPOSED_PORTS: [&str; 2] = ["8080/tcp", "8081/tcp"];
/// The label holding the app's name.
const TITLE_LABEL: &str = "org.opencontainers.image.title";
/// The annotation containerd names an imported image by.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The annotation with the image's tag, for other OCI tools.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A built image, held in memory until it is written.
pub struct Image {
    reference: Reference,
    app_name: String,
    /// `sha256:` of the image manifest.
    digest: String,
    /// The blobs (config, layer, manifest), by their sha256 in hex.
    blobs: BTreeMap<String, Vec<u8>>,
    /// `index.json`.
    index: Vec<u8>,
    /// `oci-layout`.
    layout: Vec<u8>,
}

impl Image {
    /// The image of `app`, whose layer is `layer`, named `reference`.
    pub(crate) fn assemble(
        reference: &Reference,
        app: &AppFiles,
        layer: Layer,
    ) -> Result<Self, BuildError> {
        let mut blobs = BTreeMap::new();
        let mut add_blob = |media_type: MediaType, bytes: Vec<u8>| -> Result<_, BuildError> {
            let hex = sha256_hex(&bytes);
            let digest: Digest = format!("sha256:{hex}").parse()?;
            let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            blobs.insert(hex, bytes);
            Ok(Descriptor::new(media_type, size, digest))
        };
        let arch = architecture()?;

        let config = ImageConfigurationBuilder::default()
            .os(Os::Linux)
            .architecture(arch.clone())
            .config(
                ConfigBuilder::default()
                    .entrypoint(vec![APP_MANIFEST.to_string()])
                    .working_dir(WORKING_DIR)
                    .exposed_ports(EXPOSED_PORTS.map(String::from).to_vec())
                    .labels(HashMap::from([(TITLE_LABEL.to_string(), app.name.clone())]))
                    .build()?,
            )
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(vec![layer.diff_id])
                    .build()?,
            )
            .build()?;
        let config = add_blob(MediaType::ImageConfig, json(&config)?)?;
        let layer = add_blob(MediaType::ImageLayerGzip, layer.gzip)?;

        let manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(config)
            .layers(vec![layer])
            .build()?;
        let manifest = add_blob(MediaType::ImageManifest, json(&manifest)?)?;
        let digest = manifest.digest().to_string();

        let manifest = DescriptorBuilder::default()
            .media_type(MediaType::ImageManifest)
            .digest(manifest.digest().clone())
            .size(manifest.size())
            .platform(
                PlatformBuilder::default()
                    .os(Os::Linux)
                    .architecture(arch)
                    .build()?,
            )
            .annotations(HashMap::from([
                (CONTAINERD_NAME.to_string(), reference.to_string()),
                (REF_NAME.to_string(), reference.tag().to_string()),
            ]))
            .build()?;
        let index = ImageIndexBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![manifest])
            .build()?;
        let layout = OciLayoutBuilder::default()
            .image_layout_version("1.0.0")
            .build()?;
        Ok(Self {
            reference: reference.clone(),
            app_name: app.name.clone(),
            digest,
            blobs,
            index: json(&index)?,
            layout: json(&layout)?,
        })
    }

    /// The image's name, normalised (`docker.io/library/hello:1`).
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The digest of the image manifest, as `sha256:...`: what
    /// `ctr image ls` shows once the image is imported.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The app's name (the image's `org.opencontainers.image.title`).
    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// Writes the image layout tarball to `out`.
    pub fn write(&self, out: impl io::Write) -> io::Result<()> {
        let mut tar = tar::Builder::new(out);
        layer::append_dir(&mut tar, Path::new("blobs"))?;
        layer::append_dir(&mut tar, Path::new("blobs/sha256"))?;
        for (hex, bytes) in &self.blobs {
            layer::append_file(&mut tar, &Path::new("blobs/sha256").join(hex), bytes, 0o644)?;
        }
        layer::append_file(&mut tar, Path::new("index.json"), &self.index, 0o644)?;
        layer::append_file(&mut tar, Path::new("oci-layout"), &self.layout, 0o644)?;
        tar.into_inner()?.flush()
    }

    /// Writes the image layout tarball to the file `path`, replacing it:
    /// through a temporary file in the same directory, renamed into place
    /// once complete, so that a failure leaves nothing at `path`. The file
    /// is 0600: an image may hold the app's secrets file and a runtime
    /// config with a password.
    pub fn write_to(&self, path: &Path) -> Result<(), BuildError> {
        let failed = |source| BuildError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".mayfly-oci-")
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(failed)?;
        self.write(BufWriter::new(temp.as_file())).map_err(failed)?;
        temp.as_file().sync_all().map_err(failed)?;
        temp.persist(path).map_err(|err| failed(err.error))?;
        Ok(())
    }
}

impl std::fmt::Debug for Image {
    /// The image's name, digest and app, not its bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("reference", &self.reference.to_string())
            .field("digest", &self.digest)
            .field("app_name", &self.app_name)
            .finish_non_exhaustive()
    }
}

/// The build host's architecture, as the OCI spec (and Go) names it.
fn architecture() -> Result<Arch, BuildError> {
    Ok(match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        "x86" => Arch::i386,
        "arm" => Arch::ARM,
        "riscv64" => Arch::RISCV64,
        "s390x" => Arch::s390x,
        "loongarch64" => Arch::LoongArch64,
        "powerpc64" if cfg!(target_endian = "little") => Arch::PowerPC64le,
        "powerpc64" => Arch::PowerPC64,
        other => return Err(BuildError::Architecture(other)),
    })
}

/// `doc` as compact JSON with every object's keys sorted.
fn json(doc: &impl Serialize) -> Result<Vec<u8>, BuildError> {
    let encode = |err: serde_json::Error| BuildError::Encode(err.to_string());
    let value = serde_json::to_value(doc).map_err(encode)?;
    serde_json::to_vec(&sorted(value)).map_err(encode)
}

/// `value` with its objects rebuilt in key order (serde_json keeps
/// insertion order when its `preserve_order` feature is on).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.cmp(b));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}
