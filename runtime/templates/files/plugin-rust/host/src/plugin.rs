//! The plugin's world as the host sees it, and one call, in a fresh
//! instance, under limits.

use std::path::Path;
use std::time::Duration;

use mayfly_plugin::{Host, PluginEngine, PluginError};
use wasmtime::component::HasSelf;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    exports: { default: async },
});

/// Lines of the plugin's log kept per call, and their longest.
const MAX_LINES: usize = 100;
const MAX_LINE: usize = 1024;

/// What one call gave back.
#[derive(Debug)]
pub struct Call {
    /// The plugin's answer, or its own refusal.
    pub output: Result<String, String>,
    /// What it logged (at most `MAX_LINES` lines, each escaped and cut to
    /// `MAX_LINE` bytes).
    pub log: Vec<String>,
}

/// The world's import, on the store's data: the call's log is the store's
/// user value, bounded, since the plugin is not trusted.
impl PluginImports for Host {
    fn log(&mut self, message: String) {
        if let Some(log) = self.user_mut::<Vec<String>>()
            && log.len() < MAX_LINES
        {
            let mut line: String = message.escape_debug().collect();
            if line.len() > MAX_LINE {
                let mut end = MAX_LINE;
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                line.truncate(end);
            }
            log.push(line);
        }
    }
}

/// Loads the plugin at `path` and calls `transform(input)` in a fresh
/// instance: two seconds and 32 MiB at most, nothing else reachable.
pub async fn transform(path: &Path, input: &str) -> Result<Call, PluginError> {
    let engine = PluginEngine::new()?;
    let plugin = engine
        .plugin()
        .timeout(Duration::from_secs(2))
        .memory(32 << 20)
        .link(|linker| Plugin::add_to_linker::<_, HasSelf<Host>>(linker, |host| host))
        .check(|pre| PluginPre::new(pre.clone()).map(drop))
        .load(path)?;
    plugin
        .call(async |store, instance| {
            store.data_mut().set_user(Vec::<String>::new());
            let world = Plugin::new(&mut *store, instance)?;
            let output = world.call_transform(&mut *store, input).await?;
            let log = store.data_mut().take_user::<Vec<String>>().unwrap_or_default();
            Ok(Call { output, log })
        })
        .await
}
