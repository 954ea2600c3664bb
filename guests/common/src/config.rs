//! `config-reader`'s answers (and `counter-p3`'s, at `/config`): one
//! configuration value, or all of them.

use crate::state::config;

/// `?key=K`: the value of K, or 404; no key: every value, one `key=value`
/// per line, sorted.
pub fn answer(key: Option<String>) -> (u16, String) {
    match key {
        Some(key) => match config::get(&key) {
            Ok(Some(value)) => (200, value),
            Ok(None) => (404, format!("{key} is not set\n")),
            Err(err) => (500, format!("config error: {err:?}\n")),
        },
        None => match config::get_all() {
            Ok(mut all) => {
                all.sort();
                (200, all.iter().map(|(k, v)| format!("{k}={v}\n")).collect())
            }
            Err(err) => (500, format!("config error: {err:?}\n")),
        },
    }
}
