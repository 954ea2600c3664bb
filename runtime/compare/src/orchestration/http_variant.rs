//! The HTTP variant: for each mode, the server that gives every request a
//! fresh isolate of that kind (`mayfly serve` for Wasm, the CGI host for
//! the others), under the load generator at one connection and at the
//! comparison's concurrency.

use std::path::Path;
use std::sync::Arc;

use super::options::{Job, Options};
use super::serve_child::ServeChild;
use crate::cgi::CgiHost;
use crate::load::{self, HttpStats, Target};
use crate::mode::Mode;
use crate::runners::Runner;

/// Loads each mode's server with each of `jobs`: the Wasm mode's server is
/// `mayfly serve` of the HTTP workload at `component`.
pub(super) fn measure(
    options: &Options,
    runners: &[(Mode, Arc<dyn Runner>)],
    component: &Path,
    jobs: &[Job],
) -> anyhow::Result<Vec<HttpStats>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut results = Vec::new();
    for (mode, runner) in runners {
        // Keep whichever server this is alive while it is measured.
        let (server, addr, _serve, cgi) = match mode {
            Mode::Wasm => {
                let serve = ServeChild::start(&options.mayfly, component, workers)?;
                ("mayfly serve".to_string(), serve.addr, Some(serve), None)
            }
            _ => {
                let cgi = CgiHost::start(runner.clone(), workers, options.concurrency)?;
                (format!("cgi {}", mode.name()), cgi.addr(), None, Some(cgi))
            }
        };
        eprintln!("compare: http {server} on http://{addr}");
        let target = Target {
            mode: *mode,
            server: &server,
            addr,
            token: cgi.as_ref().map(CgiHost::token),
        };
        for job in jobs {
            let path = format!("/{}", job.args.join("/"));
            for connections in [1, options.concurrency] {
                eprint!("compare: http {server:<16} {path:<12} conns={connections:<4} ");
                let result = load::load(
                    &target,
                    &path,
                    &job.expect,
                    connections,
                    options.http_duration,
                )?;
                eprintln!("{:>10.0} req/s", result.requests_per_second);
                results.push(result);
            }
        }
    }
    Ok(results)
}
