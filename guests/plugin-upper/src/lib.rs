//! A well-behaved `mayfly:plugin/filter` plugin: upper-cases ASCII text,
//! telling the host's `log` what it does. Refuses empty input, to show a
//! plugin's own error.

wit_bindgen::generate!({ path: "../../wit/plugin", world: "filter" });

struct Upper;

impl Guest for Upper {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        if input.is_empty() {
            log("refused: empty input");
            return Err("nothing to transform: the input is empty".into());
        }
        log(&format!("upper-casing {} bytes", input.len()));
        Ok(input.to_ascii_uppercase())
    }
}

export!(Upper);
