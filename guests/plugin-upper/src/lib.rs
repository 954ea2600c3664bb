//! A well-behaved `mayfly:plugin/filter` plugin: upper-cases ASCII text.
//! Refuses empty input, to show a plugin's own error.

wit_bindgen::generate!({ path: "../../wit/plugin", world: "filter" });

struct Upper;

impl Guest for Upper {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        if input.is_empty() {
            return Err("nothing to transform: the input is empty".into());
        }
        Ok(input.to_ascii_uppercase())
    }
}

export!(Upper);
