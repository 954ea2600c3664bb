//! Telling a component from a core module, or from something that is not
//! WebAssembly at all, before handing bytes to the compiler: the compiler's
//! own errors for those are cryptic.

/// Why bytes are not a WebAssembly component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    /// The bytes are not WebAssembly.
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    /// The bytes are a core module.
    #[error(
        "this is a core WebAssembly module, not a component; Mayfly runs WASI 0.2 components \
         (build for the `wasm32-wasip2` target, or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The bytes name a binary layer that is neither.
    #[error("invalid component: unknown WebAssembly binary layer {0:?}")]
    UnknownLayer([u8; 2]),
}

/// Checks that `bytes` start as a component does.
pub fn check_component(bytes: &[u8]) -> Result<(), BinaryError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(BinaryError::NotWasm);
    }
    // Bytes 4..6 are the version, 6..8 the layer: 0 for a core module, 1 for a
    // component.
    match [bytes[6], bytes[7]] {
        [1, 0] => Ok(()),
        [0, 0] => Err(BinaryError::CoreModule),
        layer => Err(BinaryError::UnknownLayer(layer)),
    }
}

/// Whether the component in `bytes` exports a WASI 0.3 world
/// (`wasi:http/handler@0.3.x` or `wasi:cli/run@0.3.x`), read from its
/// export section without compiling it. Bytes that do not parse say no:
/// the compiler will say what is wrong with them.
pub fn exports_wasi_03(bytes: &[u8]) -> bool {
    const WORLDS: [&str; 2] = ["wasi:http/handler@0.3.", "wasi:cli/run@0.3."];
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(
                wasmparser::Payload::ModuleSection { .. }
                | wasmparser::Payload::ComponentSection { .. },
            ) => {
                depth += 1;
            }
            Ok(wasmparser::Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(wasmparser::Payload::ComponentExportSection(exports)) if depth == 0 => {
                for export in exports.into_iter().flatten() {
                    if WORLDS
                        .iter()
                        .any(|world| export.name.name.starts_with(world))
                    {
                        return true;
                    }
                }
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_modules_and_other_bytes_are_told_apart() {
        assert_eq!(check_component(b"\0asm\x0d\0\x01\0rest"), Ok(()));
        assert_eq!(
            check_component(b"\0asm\x01\0\0\0"),
            Err(BinaryError::CoreModule)
        );
        assert_eq!(check_component(b"hello world"), Err(BinaryError::NotWasm));
        assert_eq!(check_component(b"\0asm"), Err(BinaryError::NotWasm));
        assert_eq!(
            check_component(b"\0asm\x01\0\x02\0"),
            Err(BinaryError::UnknownLayer([2, 0]))
        );
    }
}
