//! `mayfly_oci::build` on real files: the tarball it writes, read back
//! with the tar crate as containerd would read it, and the errors that
//! keep it from writing anything.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use mayfly_oci::{BuildError, Image, Reference};
use mayfly_serve::manifest::{AppSpec, Source};
use serde_json::Value;

/// The smallest bytes that pass for a component: the magic, a version, and
/// the component layer.
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0 a component's bytes";

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// An app with a component, a granted tree, a secrets file and config
/// from it, in `dir`, as `shop.toml` (no `name`: it comes from the file).
fn sample_app(dir: &Path) -> PathBuf {
    write(dir, "build/web.wasm", COMPONENT);
    write(dir, "public/index.html", "<h1>hi</h1>");
    write(dir, "public/css/site.css", "h1 {}");
    std::fs::create_dir_all(dir.join("public/empty")).unwrap();
    write(dir, "secrets/app-secrets.toml", "token = \"s3cret\"\n");
    write(
        dir,
        "shop.toml",
        r#"
secrets = "secrets/app-secrets.toml"

[limits]
timeout = "5s"

[component.web]
source = "build/web.wasm"
env = { MODE = "prod" }
config = { token = { secret = "token" }, greeting = "hello" }

[[component.web.files]]
host = "public"
guest = "/public"

[[route]]
path = "/..."
component = "web"
"#,
    )
}

fn reference() -> Reference {
    Reference::parse("shop:1").unwrap()
}

fn build(manifest: &Path) -> Result<Image, BuildError> {
    mayfly_oci::build(manifest, &reference(), None)
}

/// The files of an image layout tarball, by path.
fn layout_files(tarball: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(tarball).unwrap());
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(path, bytes);
    }
    files
}

fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, digest: &str) -> &'a [u8] {
    let hex = digest.strip_prefix("sha256:").unwrap();
    &files[&format!("blobs/sha256/{hex}")]
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The image as a reader finds it: the index, the manifest it names, that
/// manifest's config, and its one layer, uncompressed.
struct Unpacked {
    index: Value,
    manifest_digest: String,
    config: Value,
    layer_tar: Vec<u8>,
}

fn unpack(tarball: &Path) -> Unpacked {
    let files = layout_files(tarball);
    assert_eq!(
        json(&files["oci-layout"]),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = json(&files["index.json"]);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let manifest_digest = manifests[0]["digest"].as_str().unwrap().to_string();
    let manifest = json(blob(&files, &manifest_digest));
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let config = json(blob(&files, manifest["config"]["digest"].as_str().unwrap()));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let gzip = blob(&files, layers[0]["digest"].as_str().unwrap());
    let mut layer_tar = Vec::new();
    flate2::read::GzDecoder::new(gzip)
        .read_to_end(&mut layer_tar)
        .unwrap();
    Unpacked {
        index,
        manifest_digest,
        config,
        layer_tar,
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", mayfly_sandbox::cache::sha256_hex(bytes))
}

/// The names in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_same_app_gives_the_same_bytes_wherever_and_whenever_it_is_built() {
    let first = tempfile::tempdir().unwrap();
    let manifest = sample_app(first.path());
    let image = build(&manifest).unwrap();
    let a = first.path().join("a.tar");
    image.write_to(&a).unwrap();
    let b = first.path().join("b.tar");
    build(&manifest).unwrap().write_to(&b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    // The same content elsewhere, written later, with other modes.
    let second = tempfile::tempdir().unwrap();
    let elsewhere = sample_app(second.path());
    use std::os::unix::fs::PermissionsExt as _;
    for (path, mode) in [("build/web.wasm", 0o755), ("public/index.html", 0o600)] {
        let path = second.path().join(path);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let other = build(&elsewhere).unwrap();
    assert_eq!(other.digest(), image.digest());
    let c = second.path().join("c.tar");
    other.write_to(&c).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());

    // The digest is the manifest's, as the index names it.
    let unpacked = unpack(&a);
    assert_eq!(unpacked.manifest_digest, image.digest());
    let files = layout_files(&a);
    assert_eq!(sha256(blob(&files, image.digest())), image.digest());

    // A change to any file the app names is a new image.
    write(second.path(), "public/css/site.css", "h1 { color: red }");
    assert_ne!(build(&elsewhere).unwrap().digest(), image.digest());
}

#[test]
fn the_layer_holds_exactly_the_app_with_fixed_owners_times_and_modes() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let manifest = sample_app(dir.path());
    let runtime = write(
        dir.path(),
        "runtime.toml",
        "[key_value]\nbackend = \"embedded\"\n",
    );
    let image = mayfly_oci::build(&manifest, &reference(), Some(&runtime)).unwrap();
    let tarball = dir.path().join("shop.tar");
    image.write_to(&tarball).unwrap();
    // The image holds the secrets: its file is the owner's alone.
    let mode = std::fs::metadata(&tarball).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let unpacked = unpack(&tarball);

    let mut listed = Vec::new();
    let mut archive = tar::Archive::new(unpacked.layer_tar.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        assert_eq!(header.mtime().unwrap(), 0, "{path}");
        assert_eq!(header.uid().unwrap(), 0, "{path}");
        assert_eq!(header.gid().unwrap(), 0, "{path}");
        assert_eq!(header.username().unwrap(), Some(""), "{path}");
        assert_eq!(header.groupname().unwrap(), Some(""), "{path}");
        let kind = header.entry_type();
        // What holds secrets, or the shim's own files, is private.
        let expected = match path.as_str() {
            "app/secrets.toml" | "app/runtime.toml" => 0o600,
            "var/cache/mayfly" | "var/lib/mayfly" => 0o700,
            _ if kind.is_dir() => 0o755,
            _ => 0o644,
        };
        assert!(kind.is_dir() || kind.is_file(), "{path}: {kind:?}");
        assert_eq!(header.mode().unwrap(), expected, "{path}");
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        listed.push((path, kind.is_dir(), bytes));
    }
    let paths: Vec<(&str, bool)> = listed
        .iter()
        .map(|(path, dir, _)| (path.as_str(), *dir))
        .collect();
    assert_eq!(
        paths,
        [
            ("app", true),
            ("app/app.toml", false),
            ("app/components", true),
            ("app/components/web.wasm", false),
            ("app/files", true),
            ("app/files/web", true),
            ("app/files/web/0", true),
            ("app/files/web/0/css", true),
            ("app/files/web/0/css/site.css", false),
            ("app/files/web/0/empty", true),
            ("app/files/web/0/index.html", false),
            ("app/runtime.toml", false),
            ("app/secrets.toml", false),
            ("var", true),
            ("var/cache", true),
            ("var/cache/mayfly", true),
            ("var/lib", true),
            ("var/lib/mayfly", true),
        ]
    );
    let content = |wanted: &str| {
        let (_, _, bytes) = listed.iter().find(|(path, _, _)| path == wanted).unwrap();
        bytes.clone()
    };
    assert_eq!(content("app/components/web.wasm"), COMPONENT);
    assert_eq!(content("app/files/web/0/index.html"), b"<h1>hi</h1>");
    assert_eq!(content("app/secrets.toml"), b"token = \"s3cret\"\n");
    assert_eq!(
        content("app/runtime.toml"),
        std::fs::read(&runtime).unwrap()
    );

    // The config: the platform of this machine, how the shim finds the
    // app, and no time anywhere.
    let config = &unpacked.config;
    assert_eq!(config["os"], "linux");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(config["architecture"], arch);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/app/app.toml"])
    );
    assert_eq!(config["config"]["WorkingDir"], "/app");
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "8081/tcp": {}})
    );
    assert_eq!(
        config["config"]["Labels"],
        serde_json::json!({"org.opencontainers.image.title": "shop"})
    );
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([sha256(&unpacked.layer_tar)])
    );
    assert!(config.get("created").is_none(), "{config}");
    assert!(config.get("history").is_none(), "{config}");

    // The index names the image for containerd and for other tools.
    let descriptor = &unpacked.index["manifests"][0];
    assert_eq!(
        descriptor["annotations"],
        serde_json::json!({
            "io.containerd.image.name": "docker.io/library/shop:1",
            "org.opencontainers.image.ref.name": "1",
        })
    );
    assert_eq!(descriptor["platform"]["os"], "linux");
    assert_eq!(descriptor["platform"]["architecture"], arch);
    assert_eq!(image.reference().to_string(), "docker.io/library/shop:1");
    assert_eq!(image.app_name(), "shop");
}

#[test]
fn the_rewritten_manifest_loads_from_the_unpacked_layer() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = sample_app(&dir.path().join("src"));
    let tarball = dir.path().join("shop.tar");
    build(&manifest).unwrap().write_to(&tarball).unwrap();
    let root = dir.path().join("rootfs");
    tar::Archive::new(unpack(&tarball).layer_tar.as_slice())
        .unpack(&root)
        .unwrap();
    // The sources are gone: only the image's files can be found.
    std::fs::remove_dir_all(dir.path().join("src")).unwrap();

    let app = root.join("app");
    let text = std::fs::read_to_string(app.join("app.toml")).unwrap();
    assert!(text.contains("source = \"components/web.wasm\""), "{text}");
    assert!(text.contains("host = \"files/web/0\""), "{text}");
    assert!(text.contains("secrets = \"secrets.toml\""), "{text}");
    // Named after the manifest's file, as it was before.
    assert!(text.contains("name = \"shop\""), "{text}");

    let spec = AppSpec::from_manifest(&app.join("app.toml")).unwrap();
    assert_eq!(spec.name, "shop");
    let [web] = spec.components.as_slice() else {
        panic!("{spec:?}");
    };
    let Source::File(source) = &web.source else {
        panic!("{:?}", web.source);
    };
    assert_eq!(source, &app.join("components/web.wasm"));
    assert_eq!(std::fs::read(source).unwrap(), COMPONENT);
    assert_eq!(web.grants.files.len(), 1);
    assert_eq!(web.grants.files[0].host, app.join("files/web/0"));
    assert_eq!(web.grants.files[0].guest, "/public");
    assert_eq!(
        std::fs::read_to_string(app.join("files/web/0/css/site.css")).unwrap(),
        "h1 {}"
    );
    // Everything else as written: limits, env, config (with the secret).
    assert_eq!(web.limits.store.timeout, std::time::Duration::from_secs(5));
    assert_eq!(web.grants.env, [("MODE".to_string(), "prod".to_string())]);
    let mut config = web.grants.config.clone();
    config.sort();
    assert_eq!(
        config,
        [
            ("greeting".to_string(), "hello".to_string()),
            ("token".to_string(), "s3cret".to_string()),
        ]
    );
    assert_eq!(spec.routes.len(), 1);
    assert!(root.join("var/lib/mayfly").is_dir());
    assert!(root.join("var/cache/mayfly").is_dir());
}

/// The error of a failed build, after checking that the build wrote
/// nothing beside the manifest's own files.
fn refused(manifest: &Path) -> String {
    let dir = manifest.parent().unwrap();
    let before = listing(dir);
    let err = build(manifest).unwrap_err().to_string();
    assert_eq!(listing(dir), before, "{err}");
    err
}

#[test]
fn a_bad_manifest_is_refused_with_the_field_that_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web.wasm", COMPONENT);
    let manifest = write(
        dir.path(),
        "app.toml",
        "[component.web]\nsource = \"web.wasm\"\nlimits = { timeout = \"forever\" }\n\
         [[route]]\npath = \"/\"\ncomponent = \"web\"\n",
    );
    let err = refused(&manifest);
    assert!(
        err.starts_with(&format!(
            "invalid manifest {}: field `component.web.limits.timeout`: ",
            manifest.display()
        )),
        "{err}"
    );

    let manifest = write(
        dir.path(),
        "typo.toml",
        "[component.web]\nsorce = \"web.wasm\"\n",
    );
    let err = refused(&manifest);
    assert!(
        err.contains("typo.toml:2:1: field `component.web`: unknown field `sorce`"),
        "{err}"
    );
}

#[test]
fn a_component_that_is_missing_or_not_a_component_is_refused_by_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let app = |source: &str| {
        write(
            dir.path(),
            "app.toml",
            format!(
                "[component.api]\nsource = {source:?}\n[[route]]\npath = \"/\"\ncomponent = \"api\"\n"
            ),
        )
    };
    let manifest = app("missing.wasm");
    let err = refused(&manifest);
    let field = format!(
        "invalid manifest {}: field `component.api.source`: ",
        manifest.display()
    );
    assert!(err.starts_with(&field), "{err}");
    assert!(
        err.contains(&format!(
            "{}: No such file",
            dir.path().join("missing.wasm").display()
        )),
        "{err}"
    );

    write(dir.path(), "text.wasm", "not wasm at all");
    let err = refused(&app("text.wasm"));
    assert!(err.starts_with(&field), "{err}");
    assert!(err.contains("text.wasm: not a WebAssembly file"), "{err}");

    write(dir.path(), "module.wasm", b"\0asm\x01\0\0\0");
    let err = refused(&app("module.wasm"));
    assert!(err.starts_with(&field), "{err}");
    assert!(
        err.contains("module.wasm: this is a core WebAssembly module"),
        "{err}"
    );

    std::fs::create_dir(dir.path().join("dir.wasm")).unwrap();
    let err = refused(&app("dir.wasm"));
    assert!(err.starts_with(&field), "{err}");
    assert!(err.contains("dir.wasm: not a regular file"), "{err}");
}

#[test]
fn a_symlink_or_a_missing_directory_in_the_grants_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web.wasm", COMPONENT);
    write(dir.path(), "public/ok.txt", "fine");
    write(dir.path(), "outside/secret.txt", "private");
    let manifest = write(
        dir.path(),
        "app.toml",
        "[component.web]\nsource = \"web.wasm\"\n\
         [[component.web.files]]\nhost = \"scratch\"\nguest = \"/scratch\"\nmode = \"read-write\"\n\
         [[component.web.files]]\nhost = \"public\"\nguest = \"/public\"\n\
         [[route]]\npath = \"/\"\ncomponent = \"web\"\n",
    );
    let err = refused(&manifest);
    assert!(
        err.contains("field `component.web.files[0].host`: "),
        "{err}"
    );
    assert!(err.contains("scratch"), "{err}");

    std::fs::create_dir(dir.path().join("scratch")).unwrap();
    std::fs::create_dir_all(dir.path().join("public/deep/er")).unwrap();
    let link = dir.path().join("public/deep/er/secret.txt");
    std::os::unix::fs::symlink(dir.path().join("outside/secret.txt"), &link).unwrap();
    let err = refused(&manifest);
    assert_eq!(
        err,
        format!(
            "invalid manifest {}: field `component.web.files[1].host`: {} is a symbolic link: \
             an image holds only directories and regular files (copy what it points to into \
             the directory instead)",
            manifest.display(),
            link.display()
        )
    );

    // A link to a directory is refused the same way.
    std::fs::remove_file(&link).unwrap();
    let link = dir.path().join("scratch/elsewhere");
    std::os::unix::fs::symlink(dir.path().join("outside"), &link).unwrap();
    let err = refused(&manifest);
    assert!(
        err.contains("field `component.web.files[0].host`: "),
        "{err}"
    );
    assert!(
        err.contains(&format!("{} is a symbolic link", link.display())),
        "{err}"
    );

    std::fs::remove_file(&link).unwrap();
    build(&manifest).unwrap();
}

#[test]
fn a_bad_runtime_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = sample_app(dir.path());
    let runtime = write(
        dir.path(),
        "runtime.toml",
        "[key_value]\nbackend = \"redis\"\n",
    );
    let err = mayfly_oci::build(&manifest, &reference(), Some(&runtime))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "invalid runtime config {}: field `key_value.url`: the `redis` backend needs a URL",
            runtime.display()
        )),
        "{err}"
    );
    let missing = dir.path().join("nope.toml");
    let err = mayfly_oci::build(&manifest, &reference(), Some(&missing))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("cannot read runtime config {}", missing.display())),
        "{err}"
    );
}

#[test]
fn a_failed_write_leaves_nothing_and_a_good_one_replaces_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = sample_app(dir.path());
    let image = build(&manifest).unwrap();
    let out = dir.path().join("out");

    // A directory in the way: the rename fails, and the temporary file goes.
    std::fs::create_dir(&out).unwrap();
    write(&out, "keep", "x");
    let err = image.write_to(&out).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot write the image to {}: ", out.display())),
        "{err}"
    );
    assert_eq!(
        listing(dir.path()),
        ["build", "out", "public", "secrets", "shop.toml"]
    );

    // Into a directory that does not exist.
    let nowhere = dir.path().join("missing/shop.tar");
    let err = image.write_to(&nowhere).unwrap_err().to_string();
    assert!(err.starts_with("cannot write the image to "), "{err}");
    assert!(!dir.path().join("missing").exists());

    // An old file is replaced whole.
    let tar = write(dir.path(), "shop.tar", "old contents");
    image.write_to(&tar).unwrap();
    assert_eq!(unpack(&tar).manifest_digest, image.digest());
    assert_eq!(
        listing(dir.path()),
        ["build", "out", "public", "secrets", "shop.tar", "shop.toml"]
    );
}
