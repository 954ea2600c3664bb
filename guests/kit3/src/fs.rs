//! Files through `wasi:filesystem@0.3.0`: a path is looked up under the
//! preopened directories the way the standard library does on WASI 0.2
//! (the directory whose name is the longest prefix of the path), and the
//! rest of the path is handed to the host's `open-at` as it is, `..` and
//! all: keeping it inside the directory is the host's job.
//!
//! Errors read as the standard library's do on WASI 0.2
//! (`No such file or directory (os error 44)`), so the 0.2 and 0.3 guests
//! answer the same text for the same refusal.

use crate::wasi::filesystem::preopens;
pub use crate::wasi::filesystem::types::{Descriptor, ErrorCode};
use crate::wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
use crate::wit_stream;

/// The preopened directories, taken once.
pub struct Preopens(Vec<(Descriptor, String)>);

impl Preopens {
    /// The directories the host granted this instance.
    pub fn get() -> Preopens {
        Preopens(preopens::get_directories())
    }

    /// The directories, with their guest paths.
    pub fn dirs(&self) -> &[(Descriptor, String)] {
        &self.0
    }

    /// The directory `path` is under, and the path relative to it; `None`
    /// if no directory is (then the path does not exist, as the standard
    /// library says).
    pub fn find<'a>(&self, path: &'a str) -> Option<(&Descriptor, &'a str)> {
        self.0
            .iter()
            .filter_map(|(dir, name)| Some((dir, name.len(), relative_to(name, path)?)))
            .max_by_key(|(_, len, _)| *len)
            .map(|(dir, _, rest)| (dir, rest))
    }

    /// Opens `path` for reading, or for writing (created, truncated).
    pub async fn open(&self, path: &str, write: bool) -> Result<Descriptor, ErrorCode> {
        let (dir, rest) = self.find(path).ok_or(ErrorCode::NoEntry)?;
        open_at(dir, rest, write).await
    }

    /// The whole contents of file `path`.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, ErrorCode> {
        read_all(&self.open(path, false).await?).await
    }

    /// Replaces the contents of file `path` with `bytes` (creating it).
    pub async fn write(&self, path: &str, bytes: &[u8]) -> Result<(), ErrorCode> {
        let file = self.open(path, true).await?;
        let (mut writer, contents) = wit_stream::new();
        let done = file.write_via_stream(contents, 0);
        writer.write_all(bytes.to_vec()).await;
        drop(writer);
        done.await
    }
}

/// Opens `path` relative to `dir` through the host, exactly as given.
pub async fn open_at(dir: &Descriptor, path: &str, write: bool) -> Result<Descriptor, ErrorCode> {
    let (open, flags) = if write {
        (
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )
    } else {
        (OpenFlags::empty(), DescriptorFlags::READ)
    };
    dir.open_at(PathFlags::SYMLINK_FOLLOW, path.to_string(), open, flags)
        .await
}

/// The whole contents of an open file.
pub async fn read_all(file: &Descriptor) -> Result<Vec<u8>, ErrorCode> {
    let (mut stream, done) = file.read_via_stream(0);
    let mut bytes = Vec::new();
    loop {
        let (result, chunk) = stream.read(Vec::with_capacity(64 * 1024)).await;
        bytes.extend_from_slice(&chunk);
        if !matches!(result, wit_bindgen::StreamResult::Complete(_)) {
            break;
        }
    }
    drop(stream);
    done.await.map(|()| bytes)
}

/// `path` relative to the directory named `dir`, if it is under it.
fn relative_to<'a>(dir: &str, path: &'a str) -> Option<&'a str> {
    let rest = if dir == "." {
        if path.starts_with('/') {
            return None;
        }
        path.strip_prefix("./").unwrap_or(path)
    } else {
        let rest = path.strip_prefix(dir.trim_end_matches('/'))?;
        if !rest.is_empty() && !rest.starts_with('/') && !dir.ends_with('/') {
            return None;
        }
        rest
    };
    let rest = rest.trim_start_matches('/');
    Some(if rest.is_empty() { "." } else { rest })
}

/// The error as the standard library shows it on WASI 0.2: the libc
/// message and its WASI errno.
pub fn io_error(code: &ErrorCode) -> std::io::Error {
    let errno = match code {
        ErrorCode::Access => 2,
        ErrorCode::Already => 7,
        ErrorCode::BadDescriptor => 8,
        ErrorCode::Busy => 10,
        ErrorCode::Deadlock => 16,
        ErrorCode::Quota => 19,
        ErrorCode::Exist => 20,
        ErrorCode::FileTooLarge => 22,
        ErrorCode::IllegalByteSequence => 25,
        ErrorCode::InProgress => 26,
        ErrorCode::Interrupted => 27,
        ErrorCode::Invalid => 28,
        ErrorCode::Io => 29,
        ErrorCode::IsDirectory => 31,
        ErrorCode::Loop => 32,
        ErrorCode::TooManyLinks => 34,
        ErrorCode::MessageSize => 35,
        ErrorCode::NameTooLong => 37,
        ErrorCode::NoDevice => 43,
        ErrorCode::NoEntry => 44,
        ErrorCode::NoLock => 46,
        ErrorCode::InsufficientMemory => 48,
        ErrorCode::InsufficientSpace => 51,
        ErrorCode::NotDirectory => 54,
        ErrorCode::NotEmpty => 55,
        ErrorCode::NotRecoverable => 56,
        ErrorCode::Unsupported => 58,
        ErrorCode::NoTty => 59,
        ErrorCode::NoSuchDevice => 60,
        ErrorCode::Overflow => 61,
        ErrorCode::NotPermitted => 63,
        ErrorCode::Pipe => 64,
        ErrorCode::ReadOnly => 69,
        ErrorCode::InvalidSeek => 70,
        ErrorCode::TextFileBusy => 74,
        ErrorCode::CrossDevice => 75,
        ErrorCode::Other(text) => {
            return std::io::Error::other(text.clone().unwrap_or_else(|| "other".into()));
        }
    };
    std::io::Error::from_raw_os_error(errno)
}
