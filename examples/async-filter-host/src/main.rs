//! A host program that runs an untrusted `mayfly:plugin/async-filter`
//! plugin, whose world has async functions (component-model async).
//!
//! ```sh
//! cargo run --release -- PLUGIN.wasm DOCUMENTS_DIR "some {key} text"
//! ```
//!
//! It is a crate of its own, outside Mayfly's workspace, as any program
//! that embeds Mayfly would be: it depends on `mayfly-plugin` alone (and on
//! wasmtime for `bindgen!`), and builds without the `wasm32-wasip2` target.
//!
//! The world (`wit/plugin/async-filter.wit`) has the host's `fetch` import,
//! an `async func`: here it reads the document named `key` from
//! `DOCUMENTS_DIR` with Tokio, while the plugin goes on (it may fetch many
//! documents at once). A key is a plain file name, never a path; a call
//! fetches a bounded number of documents, each of a bounded size. The
//! plugin's `transform` is async too: the host calls it inside the store's
//! event loop. `log` is an ordinary import, as in `examples/filter-host`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mayfly_plugin::{CompileCache, EngineSettings, Host, HostError, PluginEngine, PluginError};
use tokio::io::AsyncReadExt;
use wasmtime::component::{Accessor, HasSelf};

wasmtime::component::bindgen!({
    path: "../../wit/plugin",
    world: "async-filter",
    // Reading a document may fail on the host's side.
    imports: { "fetch": trappable },
});

/// Most documents one call may fetch: any more are `none`.
const MAX_FETCHES: usize = 64;
/// Largest document the host reads.
const MAX_DOCUMENT: u64 = 64 << 10;
const MAX_LINES: usize = 100;
const MAX_LINE: usize = 1024;

/// One call's state, the store's user value.
struct Call {
    documents: Arc<Path>,
    fetches: usize,
    log: CallLog,
}

/// What one call logged: at most `MAX_LINES` lines of `MAX_LINE` bytes.
#[derive(Default)]
struct CallLog {
    lines: Vec<String>,
    dropped: usize,
}

impl AsyncFilterImports for Host {
    fn log(&mut self, mut message: String) {
        let Some(Call { log, .. }) = self.user_mut::<Call>() else {
            return;
        };
        if log.lines.len() >= MAX_LINES {
            log.dropped += 1;
            return;
        }
        if message.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        log.lines.push(message);
    }
}

/// The async import: the accessor reaches the store only between awaits,
/// so the call's state is read first, and the file afterwards.
impl AsyncFilterImportsWithStore<Host> for HasSelf<Host> {
    async fn fetch(
        accessor: &Accessor<Host, Self>,
        key: String,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        let documents = accessor.with(|mut access| {
            let call = access.get().user_mut::<Call>()?;
            call.fetches += 1;
            (call.fetches <= MAX_FETCHES).then(|| call.documents.clone())
        });
        let Some(documents) = documents else {
            return Ok(None);
        };
        if !is_plain_name(&key) {
            return Ok(None);
        }
        read_document(&documents.join(&key))
            .await
            .map_err(|err| HostError::new(format!("cannot read document `{key}`: {err}")).into())
    }
}

/// Whether `key` names a file in the documents directory: no separator, no
/// `..`, no hidden file.
fn is_plain_name(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
}

/// The document at `path`, `None` if there is none; larger than
/// `MAX_DOCUMENT`, an error (read no further than that).
async fn read_document(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    // Only plain files, asked before opening: opening a FIFO would block
    // until something writes to it.
    match tokio::fs::metadata(path).await {
        Ok(metadata) if metadata.is_file() => {}
        Ok(_) => return Ok(None),
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    }
    let file = tokio::fs::File::open(path).await?;
    let mut document = Vec::new();
    file.take(MAX_DOCUMENT + 1)
        .read_to_end(&mut document)
        .await?;
    if u64::try_from(document.len()).unwrap_or(u64::MAX) > MAX_DOCUMENT {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_DOCUMENT} bytes"
        )));
    }
    Ok(Some(document))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plugin, documents, input] = args.as_slice() else {
        eprintln!("usage: async_filter_host PLUGIN.wasm DOCUMENTS_DIR INPUT");
        return ExitCode::from(2);
    };
    let (result, log) = match run(plugin, PathBuf::from(documents), input).await {
        Ok((result, log)) => (Ok(result), log),
        Err(err) => (Err(err), CallLog::default()),
    };
    for line in &log.lines {
        eprintln!("plugin log: {line}");
    }
    if log.dropped > 0 {
        eprintln!("plugin log: {} more lines dropped", log.dropped);
    }
    match result {
        Ok(Ok(output)) => {
            println!("{}", String::from_utf8_lossy(&output));
            ExitCode::SUCCESS
        }
        Ok(Err(refusal)) => {
            eprintln!("the plugin refused the input: {refusal}");
            ExitCode::from(1)
        }
        Err(err) => {
            let what = match &err {
                PluginError::Invalid { .. } => "not an async filter plugin",
                PluginError::DeadlineExceeded { .. } => "too slow",
                PluginError::MemoryLimit { .. } | PluginError::TableLimit { .. } => "too greedy",
                PluginError::Denied { .. } => "not allowed",
                PluginError::Trap { .. } => "crashed",
                PluginError::Host(_) => "the host failed",
                _ => "failed",
            };
            eprintln!("{what}: {err}");
            ExitCode::from(1)
        }
    }
}

async fn run(
    plugin: &str,
    documents: PathBuf,
    input: &str,
) -> Result<(Result<Vec<u8>, String>, CallLog), PluginError> {
    // Async worlds need an engine with component-model async.
    let settings = EngineSettings {
        wasi_03: true,
        ..EngineSettings::default()
    };
    let cache = CompileCache::open_default().map_err(|err| PluginError::Host(err.to_string()))?;
    let engine = PluginEngine::with_settings(&settings, cache)?;
    let plugin = engine
        .plugin()
        .timeout(Duration::from_secs(2))
        .memory(32 << 20)
        .link(|linker| AsyncFilter::add_to_linker::<_, HasSelf<Host>>(linker, |host| host))
        .check(|pre| AsyncFilterPre::new(pre.clone()).map(drop))
        .load(plugin)?;
    let documents: Arc<Path> = documents.into();
    plugin
        .call(async |store, instance| {
            store.data_mut().set_user(Call {
                documents,
                fetches: 0,
                log: CallLog::default(),
            });
            let filter = AsyncFilter::new(&mut *store, instance)?;
            let output = store
                .run_concurrent(async |accessor| {
                    filter
                        .call_transform(accessor, input.as_bytes().to_vec())
                        .await
                })
                .await??;
            let log = store
                .data_mut()
                .take_user::<Call>()
                .map(|call| call.log)
                .unwrap_or_default();
            Ok((output, log))
        })
        .await
}
