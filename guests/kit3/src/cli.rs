//! `wasi:cli@0.3.0`: standard output and error as streams, standard input,
//! arguments, environment and exit.

use wit_bindgen::{FutureReader, StreamWriter};

use crate::wasi::cli::types::ErrorCode;
use crate::wasi::cli::{environment, exit as cli_exit, stderr, stdin, stdout};
use crate::wit_stream;

/// An open `write-via-stream` to standard output or error.
pub struct Output {
    stream: StreamWriter<u8>,
    done: FutureReader<Result<(), ErrorCode>>,
}

impl Output {
    /// Standard output.
    pub fn stdout() -> Output {
        let (stream, data) = wit_stream::new();
        Output {
            stream,
            done: stdout::write_via_stream(data),
        }
    }

    /// Standard error.
    pub fn stderr() -> Output {
        let (stream, data) = wit_stream::new();
        Output {
            stream,
            done: stderr::write_via_stream(data),
        }
    }

    /// Writes `bytes`; `false` if the host stopped taking output.
    pub async fn write(&mut self, bytes: impl Into<Vec<u8>>) -> bool {
        self.stream.write_all(bytes.into()).await.is_empty()
    }

    /// Ends the stream and waits until the host has written it all.
    pub async fn close(self) -> Result<(), ErrorCode> {
        drop(self.stream);
        self.done.await
    }
}

/// Writes `bytes` to standard output and waits until they are written.
pub async fn print(bytes: impl Into<Vec<u8>>) {
    let mut out = Output::stdout();
    out.write(bytes).await;
    let _ = out.close().await;
}

/// Writes `bytes` to standard error and waits until they are written.
pub async fn eprint(bytes: impl Into<Vec<u8>>) {
    let mut out = Output::stderr();
    out.write(bytes).await;
    let _ = out.close().await;
}

/// The whole of standard input.
pub async fn read_stdin() -> Result<Vec<u8>, ErrorCode> {
    let (mut stream, done) = stdin::read_via_stream();
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

/// The arguments, the program's name first.
pub fn args() -> Vec<String> {
    environment::get_arguments()
}

/// Every environment variable the host gives this instance.
pub fn vars() -> Vec<(String, String)> {
    environment::get_environment()
}

/// The value of environment variable `name`.
pub fn var(name: &str) -> Option<String> {
    vars()
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Ends the instance with exit status `code` (output already written stays
/// written: every helper here waits for its writes).
pub fn exit(code: u8) -> ! {
    cli_exit::exit_with_code(code);
    unreachable!("exit-with-code returned")
}
