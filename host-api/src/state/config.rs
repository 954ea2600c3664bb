//! `wasi:config/store`: the component's own configuration values, resolved
//! when it was loaded.

use super::StateView;
use super::bindings::wasi::config::store as config;

impl config::Host for StateView<'_> {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, config::Error>> {
        Ok(Ok(self
            .ctx
            .component
            .config
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value.clone())))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, config::Error>> {
        Ok(Ok(self.ctx.component.config.clone()))
    }
}
