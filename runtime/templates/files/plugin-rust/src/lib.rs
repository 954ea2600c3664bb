//! {{name}}: a plugin of the host's own world (`wit/plugin.wit`). The host
//! (`host/`) runs each call in a fresh instance, with limits: whatever the
//! plugin does, the host carries on.
//!
//! It upper-cases its input, and refuses an empty one.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

struct Plugin;

impl Guest for Plugin {
    fn transform(input: String) -> Result<String, String> {
        if input.is_empty() {
            return Err("nothing to transform: the input is empty".into());
        }
        log(&format!("upper-casing {} bytes", input.len()));
        Ok(input.to_uppercase())
    }
}

export!(Plugin);
