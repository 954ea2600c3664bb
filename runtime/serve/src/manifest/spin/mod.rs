//! Spin manifests (`spin.toml`, `spin_manifest_version = 2`), served as
//! Mayfly apps: [`file`](mod@file) is the manifest as written, `resolve` maps it onto
//! an [`AppSpec`](super::AppSpec). A manifest is a Spin one when it has a
//! top-level `spin_manifest_version`.

pub mod file;
mod resolve;

pub(in crate::manifest) use self::resolve::resolve;
