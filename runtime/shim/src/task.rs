//! The serving process inside the container, and what its exit status
//! means.
//!
//! | status | meaning |
//! | --- | --- |
//! | `0` | stopped by SIGTERM or SIGINT, every in-flight request finished |
//! | `1` | could not start: the error is on the task's stderr |
//! | `2` | stopped, but the grace period ended with requests in flight |
//! | `70` | the host panicked (a bug) |

use mayfly_serve::logging;
use mayfly_serve::server::Shutdown;

use crate::environment::Environment;

/// Every in-flight request finished.
pub const EXIT_DRAINED: i32 = 0;
/// The app could not start.
pub const EXIT_FAILED: i32 = 1;
/// The grace period ended with requests in flight.
pub const EXIT_GRACE_EXPIRED: i32 = 2;
/// The host panicked.
pub const EXIT_PANICKED: i32 = 70;

/// Serves the app at `args[0]` with the settings in `envs` until SIGTERM,
/// on a thread of its own (the caller may be inside an async runtime,
/// and the server starts its own). Returns the exit status.
pub fn run(args: Vec<String>, envs: Vec<String>) -> i32 {
    let serving = std::thread::Builder::new()
        .name("mayfly-task".into())
        .spawn(move || serve(&args, &envs));
    match serving.map(|thread| thread.join()) {
        Ok(Ok(status)) => status,
        Ok(Err(_panic)) => EXIT_PANICKED,
        Err(err) => {
            eprintln!("error: cannot start the serving thread: {err}");
            EXIT_FAILED
        }
    }
}

fn serve(args: &[String], envs: &[String]) -> i32 {
    let environment = match Environment::new(envs) {
        Ok(environment) => environment,
        Err(err) => return failed(&err),
    };
    match environment.log_format() {
        Ok(format) => logging::init(format),
        Err(err) => return failed(&err),
    }
    // As `mayfly` does at start: the container's soft limit is often 1024.
    let _ = mayfly_host_api::budget::raise_fd_limit();
    let launch = match environment.launch(args) {
        Ok(launch) => launch,
        Err(err) => return failed(&err),
    };
    match launch.run() {
        Ok(Shutdown::Drained) => EXIT_DRAINED,
        Ok(Shutdown::GraceExpired) => EXIT_GRACE_EXPIRED,
        Err(err) => failed(&err),
    }
}

/// Shows why the task could not start, on its stderr (what `ctr run`,
/// `ctr task` logs and `kubectl logs` show), in the same form as `mayfly`.
fn failed(err: &anyhow::Error) -> i32 {
    eprintln!("error: {err:#}");
    EXIT_FAILED
}
