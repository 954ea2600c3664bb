//! The cold start through containerd: how long from `ctr run` (the
//! process being spawned) to the first `200` of `GET /trivial`, for
//!
//! - a Mayfly task through the shim (`io.containerd.mayfly.v1`), serving
//!   the `workload-http` component from an image made by `mayfly-oci`: with
//!   a fresh container's empty compile cache (the component is compiled as
//!   the task starts), and with a compile-cache volume that an earlier
//!   task filled (as a node would mount one);
//! - a runc container (`io.containerd.runc.v2`, containerd's default) of
//!   the native workload behind a small static server ([`native_image`]),
//!   answering the same text.
//!
//! All in one private [`Containerd`], with the host's network, each run a
//! fresh container (`ctr run --rm`), stopped with SIGKILL once it answered.
//! After one untimed run of each (page cache, containerd's first shim
//! start, the cache volume filled), the timed runs alternate, in a
//! rotating order, so that drift on the machine spreads over all of them.
//!
//! [`prerequisites`] says why it cannot run here, if it cannot: that is a
//! skip, not an error.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use mayfly_oci::Reference;
use serde::Serialize;

use crate::child::OutputReader;
use crate::containerd::{self, Containerd, MAYFLY_RUNTIME, MAYFLY_SHIM, RUNC_RUNTIME, TaskSpec};
use crate::load;
use crate::native_image;

/// The request timed.
pub const PATH: &str = "/trivial";
/// What both answer it with.
const ANSWER: &str = "ok";
/// How long a task may take to answer before the run fails.
const ANSWER_LIMIT: Duration = Duration::from_secs(120);
/// How long one request may take, connecting included.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// How long `ctr run` may take to end once its task is killed.
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// Between attempts to connect while the task starts.
const POLL: Duration = Duration::from_micros(500);
/// Where the compile-cache volume is mounted in the Mayfly task (the
/// shim's default cache directory).
const CACHE_IN_CONTAINER: &str = "/var/cache/mayfly";

/// The cold start of every kind of task, or why it was not measured.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    /// Timed runs of each kind.
    pub runs: usize,
    /// The request timed.
    pub path: String,
    /// Why it was not measured (not root, no containerd...), if it was not.
    pub skipped: Option<String>,
    /// One row per kind of task, in the order they are reported.
    pub rows: Vec<ColdStartRow>,
}

impl ColdStart {
    /// Not measured, because of `why`.
    pub fn skipped(runs: usize, why: String) -> Self {
        Self {
            runs,
            path: PATH.into(),
            skipped: Some(why),
            rows: Vec::new(),
        }
    }
}

/// One kind of task's cold starts.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStartRow {
    /// Its short name: `mayfly`, `mayfly cached` or `runc`.
    pub task: String,
    /// The containerd runtime that ran it.
    pub runtime: String,
    /// What the task serves, and how.
    pub serves: String,
    /// The image layout tarball's size, in bytes.
    pub image_bytes: u64,
    /// Each timed run, from `ctr run` to the first `200`, in milliseconds,
    /// in the order they ran.
    pub runs_ms: Vec<f64>,
    /// The median run.
    pub median_ms: f64,
    /// The fastest run.
    pub min_ms: f64,
    /// The slowest run.
    pub max_ms: f64,
}

/// The kinds of task, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mayfly,
    MayflyCached,
    Runc,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Mayfly, Kind::MayflyCached, Kind::Runc];

    fn name(self) -> &'static str {
        match self {
            Kind::Mayfly => "mayfly",
            Kind::MayflyCached => "mayfly cached",
            Kind::Runc => "runc",
        }
    }

    fn runtime(self) -> &'static str {
        match self {
            Kind::Mayfly | Kind::MayflyCached => MAYFLY_RUNTIME,
            Kind::Runc => RUNC_RUNTIME,
        }
    }

    fn serves(self) -> &'static str {
        match self {
            Kind::Mayfly => "workload-http.wasm, compiled as the task starts",
            Kind::MayflyCached => "workload-http.wasm, from a compile-cache volume",
            Kind::Runc => "the native workload behind a static server, a process per request",
        }
    }
}

/// What the cold start needs: the Mayfly shim (`shim`, else
/// `containerd-shim-mayfly-v1` next to this program or on `PATH`), root,
/// `containerd`, `ctr`, `runc` and `containerd-shim-runc-v2`, and the
/// native server. The shim's path, or why it cannot run here.
pub fn prerequisites(shim: Option<&Path>) -> Result<PathBuf, String> {
    let shim = find_shim(shim)?;
    if let Some(why) = containerd::missing() {
        return Err(why);
    }
    for name in ["runc", "containerd-shim-runc-v2"] {
        if containerd::which(name).is_none() {
            return Err(format!(
                "no `{name}` on PATH (`apt-get install runc containerd`)"
            ));
        }
    }
    if let Some(why) = native_image::server_missing() {
        return Err(why);
    }
    Ok(shim)
}

/// The Mayfly shim: `explicit` if given (it must exist), else
/// `containerd-shim-mayfly-v1` next to this program, else on `PATH`.
pub fn find_shim(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("no shim at {} (--shim)", path.display()))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(MAYFLY_SHIM)));
    if let Some(path) = beside.as_ref().filter(|path| path.is_file()) {
        return Ok(path.clone());
    }
    containerd::which(MAYFLY_SHIM).ok_or_else(|| {
        format!(
            "no {MAYFLY_SHIM} next to this program{} or on PATH; build it with `cargo build \
             --release -p containerd-shim-mayfly` or pass --shim PATH",
            beside
                .and_then(|path| Some(format!(" (in {})", path.parent()?.display())))
                .unwrap_or_default()
        )
    })
}

/// Measures the cold starts: `runs` timed runs of each kind of task, with
/// the Mayfly shim `shim`, the `workload-http` component `component` and
/// the static native `workload`. `progress` hears of each run.
pub fn measure(
    shim: &Path,
    component: &[u8],
    workload: &[u8],
    runs: usize,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<ColdStart> {
    progress("starting a private containerd");
    let containerd = Containerd::builder("compare")
        .namespace(&format!("mayfly-cold-{}", std::process::id()))
        .shim(MAYFLY_SHIM, shim)
        .start()?;
    let images = containerd.dir().join("images");
    std::fs::create_dir(&images)?;

    let mayfly_tar = images.join("mayfly.tar");
    let mayfly_image = mayfly_image(&images, component, &mayfly_tar)?;
    let runc_tar = images.join("runc.tar");
    let runc_image: Reference = "compare-workload-native:cold".parse()?;
    native_image::write(&runc_tar, &runc_image, workload)?;
    for tarball in [&mayfly_tar, &runc_tar] {
        progress(&format!("importing {}", tarball.display()));
        containerd.import(tarball)?;
    }
    // The compile-cache volume, as the shim's cache wants it: 0700, ours.
    let cache = images.join("cache");
    std::fs::create_dir(&cache)?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700))?;
    }

    let setup = Setup {
        containerd: &containerd,
        client: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        mayfly_image: mayfly_image.to_string(),
        runc_image: runc_image.to_string(),
        cache,
    };
    let mut next = 0;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); Kind::ALL.len()];
    for round in 0..=runs {
        for i in 0..Kind::ALL.len() {
            // Round 0 is the untimed one.
            let (k, kind) = if round == 0 {
                (i, Kind::ALL[i])
            } else {
                let k = (i + round) % Kind::ALL.len();
                (k, Kind::ALL[k])
            };
            next += 1;
            let id = format!("mayfly-{}-cold-{next}", std::process::id());
            let took = setup
                .once(kind, &id)
                .with_context(|| format!("cold start of {} ({id})", kind.name()))?;
            let ms = took.as_secs_f64() * 1e3;
            if round == 0 {
                progress(&format!("{:<14} untimed   {ms:>8.1} ms", kind.name()));
            } else {
                progress(&format!(
                    "{:<14} run {round}/{runs} {ms:>8.1} ms",
                    kind.name()
                ));
                times[k].push(ms);
            }
        }
    }
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let rows = Kind::ALL
        .into_iter()
        .zip(times)
        .map(|(kind, runs_ms)| {
            let mut sorted = runs_ms.clone();
            sorted.sort_by(f64::total_cmp);
            ColdStartRow {
                task: kind.name().into(),
                runtime: kind.runtime().into(),
                serves: kind.serves().into(),
                image_bytes: size(if kind == Kind::Runc {
                    &runc_tar
                } else {
                    &mayfly_tar
                }),
                median_ms: median(&sorted),
                min_ms: sorted.first().copied().unwrap_or(0.0),
                max_ms: sorted.last().copied().unwrap_or(0.0),
                runs_ms,
            }
        })
        .collect();
    progress("stopping the private containerd");
    drop(containerd);
    Ok(ColdStart {
        runs,
        path: PATH.into(),
        skipped: None,
        rows,
    })
}

/// The image of the `workload-http` component as a Mayfly app (every path
/// to it), written to `tarball`: its name.
fn mayfly_image(dir: &Path, component: &[u8], tarball: &Path) -> anyhow::Result<Reference> {
    let app = dir.join("app");
    std::fs::create_dir(&app)?;
    std::fs::write(app.join("workload-http.wasm"), component)?;
    std::fs::write(
        app.join("app.toml"),
        "name = \"workload-http\"\n\n[component.workload]\nsource = \"workload-http.wasm\"\n\n\
         [[route]]\npath = \"/...\"\ncomponent = \"workload\"\n",
    )?;
    let reference: Reference = "compare-workload-http:cold".parse()?;
    let image = mayfly_oci::build(&app.join("app.toml"), &reference, None)
        .context("cannot build the Mayfly app image")?;
    image.write_to(tarball)?;
    Ok(reference)
}

struct Setup<'a> {
    containerd: &'a Containerd,
    /// Where the requests of [`first_answer`] run: made once, not timed.
    client: tokio::runtime::Runtime,
    mayfly_image: String,
    runc_image: String,
    cache: PathBuf,
}

impl Setup<'_> {
    /// One cold start of `kind` as task `id`: from `ctr run` to the first
    /// right answer. The task is killed and its container removed after.
    fn once(&self, kind: Kind, id: &str) -> anyhow::Result<Duration> {
        let listen = free_port()?;
        let image = match kind {
            Kind::Runc => &self.runc_image,
            Kind::Mayfly | Kind::MayflyCached => &self.mayfly_image,
        };
        let mut task = TaskSpec::new(image, id)
            .runtime(kind.runtime())
            .net_host()
            .remove()
            .env("MAYFLY_LISTEN", &listen.to_string());
        if kind != Kind::Runc {
            task = task.env("MAYFLY_HEALTH_LISTEN", &free_port()?.to_string());
        }
        if kind == Kind::MayflyCached {
            task = task.bind(&self.cache, CACHE_IN_CONTAINER, false);
        }
        let started = Instant::now();
        let mut ctr_run = self.containerd.run_foreground(&task)?;
        let stdout = OutputReader::start(ctr_run.stdout.take().context("no stdout pipe")?);
        let stderr = OutputReader::start(ctr_run.stderr.take().context("no stderr pipe")?);
        let answered = first_answer(&self.client, &mut ctr_run, listen, started);
        let took = started.elapsed();
        let stopped = self.stop(id, &mut ctr_run);
        let (said, ..) = stdout.finish();
        let (complained, ..) = stderr.finish();
        match answered {
            Ok(()) => stopped.map(|()| took),
            Err(err) => Err(err.context(format!(
                "the task printed: {}{}",
                said.trim(),
                complained.trim()
            ))),
        }
    }

    /// Kills task `id` and waits for its `ctr run` to end (having deleted
    /// the task and the container); deletes whatever is left.
    fn stop(&self, id: &str, ctr_run: &mut Child) -> anyhow::Result<()> {
        if ctr_run.try_wait()?.is_none() {
            // It may have just ended on its own.
            let _ = self.containerd.kill(id, "SIGKILL");
        }
        let deadline = Instant::now() + STOP_LIMIT;
        while ctr_run.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                let _ = ctr_run.kill();
                let _ = ctr_run.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.containerd.delete(id)
    }
}

/// Waits for the first `200` with the expected answer from `addr`, while
/// `ctr_run` runs, each try a `GET` over a new connection with the load
/// generator's client (on `client`).
fn first_answer(
    client: &tokio::runtime::Runtime,
    ctr_run: &mut Child,
    addr: SocketAddr,
    started: Instant,
) -> anyhow::Result<()> {
    loop {
        let last = match load::get_once(client, addr, PATH, REQUEST_LIMIT) {
            Ok((status, body)) => {
                let body = String::from_utf8_lossy(&body);
                if status == http::StatusCode::OK && body.trim() == ANSWER {
                    return Ok(());
                }
                format!("{}: {}", status.as_u16(), body.trim())
            }
            Err(err) => format!("{err:#}"),
        };
        if let Some(status) = ctr_run.try_wait()? {
            bail!("the task ended ({status}) before it answered; last try: {last}");
        }
        if started.elapsed() >= ANSWER_LIMIT {
            bail!("no answer within {ANSWER_LIMIT:?}; last try: {last}");
        }
        std::thread::sleep(POLL);
    }
}

/// A loopback address with a port nobody listens on (for now).
fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The median of `sorted` (the mean of the middle two of an even count).
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::{find_shim, median};

    #[test]
    fn the_median_of_an_even_count_is_between_the_middle_two() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }

    #[test]
    fn a_shim_that_is_not_there_is_a_reason_to_skip() {
        let why = find_shim(Some("/nonexistent/shim".as_ref())).unwrap_err();
        assert_eq!(why, "no shim at /nonexistent/shim (--shim)");
    }
}
