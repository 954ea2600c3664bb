//! The whole chain, for real: a containerd of the test's own (private root,
//! state and socket, stopped by its pid: `mayfly_compare::containerd`) with
//! `containerd-shim-mayfly-v1` on its `PATH`, an app image built by
//! `mayfly-oci` and imported with `ctr image import`, and tasks started
//! with `ctr run --runtime io.containerd.mayfly.v1 --net-host`, checked
//! over HTTP.
//!
//! Needs root, `containerd` and `ctr`. Without them the tests say so and
//! pass, unless `MAYFLY_REQUIRE_CONTAINERD=1` (as in CI), where they fail.
//! The shared-state part needs Redis (`MAYFLY_TEST_REDIS_URL`), required
//! likewise by `MAYFLY_REQUIRE_REDIS=1`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use mayfly_compare::containerd::{self, MAYFLY_RUNTIME, MAYFLY_SHIM, TaskSpec};
use mayfly_oci::Reference;
use mayfly_testing::raw::{self, get, try_get};

/// Generous bounds for a loaded machine: only a hang fails them.
const START_BOUND: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// The tests

#[test]
fn containerd_serves_an_app_image_through_the_mayfly_shim() {
    let Some(containerd) = Containerd::start_or_skip("serves") else {
        return;
    };
    let redis = redis_url();
    let app = format!("ctd-{}", std::process::id());
    let image = containerd.build_and_import(&app, &AppFiles::demo(&app), "demo:1");

    // One task: it answers, each request in a fresh instance, health
    // checks on their own port.
    let mut first = containerd.run("first", &image, redis.as_deref());
    for _ in 0..5 {
        let (status, body) = get(first.listen, "/probe");
        assert_eq!(status, 200, "{body}");
        assert!(
            body.starts_with("count=1 heap_items=1 "),
            "a reused instance: {body}"
        );
    }
    assert_eq!(get(first.health, "/healthz"), (200, "ok\n".into()));
    assert_eq!(get(first.health, "/readyz"), (200, "ready\n".into()));
    assert_eq!(get(first.listen, "/").0, 200);

    let Some(_) = redis else {
        skip_or_fail_redis();
        containerd.ctr(&["task", "kill", &first.id]);
        assert_eq!(first.wait().code(), Some(0), "a drained task exits 0");
        containerd.expect_nothing_left(&[&first.id], &image);
        return;
    };

    // A second task of the same app: increments through both add up
    // exactly in the one Redis.
    let second = containerd.run("second", &image, redis.as_deref());
    let per_task = 100;
    let threads: Vec<_> = [first.listen, second.listen]
        .into_iter()
        .flat_map(|addr| (0..2).map(move |_| addr))
        .map(|addr| {
            std::thread::spawn(move || {
                for _ in 0..per_task / 2 {
                    assert_eq!(get(addr, "/count").0, 200);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("an increment failed");
    }
    let (status, body) = get(second.listen, "/count/peek");
    assert_eq!(status, 200);
    assert!(
        body.contains(&(2 * per_task).to_string()),
        "increments from both tasks should add up to {}: {body}",
        2 * per_task
    );

    // Kill the first task (SIGKILL) mid-load: the second keeps answering
    // every request.
    let served = Arc::new(AtomicUsize::new(0));
    let (halfway, at_halfway) = mpsc::channel();
    let load = {
        let served = served.clone();
        let addr = second.listen;
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            for i in 0..400 {
                let (status, body) = get(addr, "/probe");
                if status != 200 || !body.starts_with("count=1 ") {
                    failures.push(format!("request {i}: {status} {body}"));
                }
                if served.fetch_add(1, Ordering::SeqCst) == 100 {
                    let _ = halfway.send(());
                }
            }
            failures
        })
    };
    let first_load = {
        let addr = first.listen;
        // Load on the task being killed too; its failures are expected.
        std::thread::spawn(move || while try_get(addr, "/probe").is_some() {})
    };
    at_halfway
        .recv_timeout(START_BOUND)
        .expect("the load on the second task never got halfway");
    containerd.ctr(&["task", "kill", "--signal", "SIGKILL", &first.id]);
    let status = first.wait();
    // `ctr run` passes on the task's status (137) when it sees the exit
    // event; when the kill wins a race with its wait, it reports its own
    // error (1) instead. Either way the task did not succeed, and
    // containerd no longer runs it.
    assert!(
        matches!(status.code(), Some(137 | 1)),
        "a SIGKILLed task ends with 137 (or ctr's own 1): {status:?}"
    );
    let listed = containerd.ctr(&["task", "list"]);
    assert!(
        !listed
            .lines()
            .any(|line| line.starts_with(&format!("{} ", first.id)) && line.contains("RUNNING")),
        "the killed task still runs: {listed}"
    );
    first_load.join().unwrap();
    let failures = load.join().unwrap();
    assert!(
        failures.is_empty(),
        "requests to the surviving task failed while the other was killed: {failures:?}"
    );
    assert!(served.load(Ordering::SeqCst) >= 400);

    // SIGTERM drains: a request in flight finishes, /readyz says
    // `draining` meanwhile, and the task exits 0.
    let mut second = second;
    let (in_flight, is_in_flight) = mpsc::channel();
    let slow = {
        let addr = second.listen;
        std::thread::spawn(move || get_in_flight(addr, "/slow?ms=1500&head_first=1", in_flight))
    };
    is_in_flight
        .recv_timeout(START_BOUND)
        .expect("the slow request never started");
    containerd.ctr(&["task", "kill", &second.id]);
    second.wait_for_log("shutting down");
    assert_eq!(get(second.health, "/readyz"), (503, "draining\n".into()));
    let (status, body) = slow.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "sleeping\nslept 1500 ms\n"));
    let status = second.wait();
    assert_eq!(status.code(), Some(0), "a drained task exits 0");

    containerd.expect_nothing_left(&[&first.id, &second.id], &image);
}

#[test]
fn a_broken_image_fails_its_task_with_the_error_shown_by_ctr() {
    let Some(containerd) = Containerd::start_or_skip("broken") else {
        return;
    };
    let app = format!("broken-{}", std::process::id());
    let mut files = AppFiles::demo(&app);
    // Passes `mayfly oci build` (it starts like wasm), is not a component.
    files.components[0].1 = b"\0asm\x0d\0\x01\0 definitely not a component".to_vec();
    let image = containerd.build_and_import(&app, &files, "broken:1");
    let mut task = containerd.start_task("broken", &image, None);
    let status = task.child.wait().expect("ctr run");
    let mut output = String::new();
    if let Some(stdout) = task.stdout.take() {
        let _ = BufReader::new(stdout).read_to_string(&mut output);
    }
    let mut stderr = String::new();
    if let Some(mut err) = task.child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(1), "stdout: {output}\nstderr: {stderr}");
    assert!(
        stderr.contains("component `probe`") && stderr.contains("error: "),
        "ctr should show which component failed and why: {stderr}"
    );
    containerd.ctr(&["container", "rm", &task.id]);
    containerd.expect_nothing_left(&[&task.id], &image);
}

/// An image that carries a compile cache of its own (a key, and entries
/// tagged under it, for the app's very components): the task makes a key
/// of its own, so nothing the image's author compiled is ever loaded.
#[test]
fn a_compile_cache_planted_in_an_image_is_never_trusted() {
    let Some(containerd) = Containerd::start_or_skip("planted") else {
        return;
    };
    let app = format!("planted-{}", std::process::id());
    let files = AppFiles::demo(&app);
    let image = containerd.build_and_import_with(&app, &files, "planted:1", |tarball| {
        // What an author would ship: the cache of a `mayfly compile` on
        // their own machine, with its key.
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = mayfly_sandbox::CompileCache::open(cache_dir.path()).unwrap();
        let engine = mayfly_sandbox::EngineSettings::default().build().unwrap();
        for (_, wasm) in &files.components {
            cache.load_or_compile(&engine, wasm).unwrap();
        }
        let mut planted = Vec::new();
        for entry in std::fs::read_dir(cache_dir.path()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            planted.push((
                format!("var/cache/mayfly/{name}"),
                std::fs::read(entry.path()).unwrap(),
            ));
        }
        assert_eq!(
            planted.len(),
            files.components.len() + 1,
            "a key and entries"
        );
        add_layer(tarball, &planted);
    });
    let mut task = containerd.run("planted", &image, None);
    // Every planted entry is refused, its tag checked against the task's
    // own key, and compiled again.
    task.wait_for_log("compile cache entry /var/cache/mayfly/");
    let rejected = task
        .log
        .iter()
        .filter(|line| line.contains("rejected, compiling the component again: its tag is wrong"))
        .count();
    assert!(rejected >= 1, "{:?}", task.log);
    let (status, body) = get(task.listen, "/probe");
    assert_eq!(status, 200, "{body}");
    containerd.ctr(&["task", "kill", &task.id]);
    assert_eq!(task.wait().code(), Some(0));
    containerd.expect_nothing_left(&[&task.id], &image);
}

/// Adds a layer holding `files` (paths under the root, mode 0600, in
/// directories 0700) on top of the image in the OCI layout tarball at
/// `tarball`, as anyone who builds images could.
fn add_layer(tarball: &Path, files: &[(String, Vec<u8>)]) {
    use sha2::Digest as _;
    let sha256 = |bytes: &[u8]| format!("{:x}", sha2::Sha256::digest(bytes));

    // The layer.
    let mut layer = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _) in files {
        for dir in Path::new(path).ancestors().skip(1) {
            if !dir.as_os_str().is_empty() {
                dirs.insert(dir.to_path_buf());
            }
        }
    }
    let header = |kind, mode, size| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header
    };
    for dir in &dirs {
        let mut dir_header = header(tar::EntryType::Directory, 0o700, 0);
        layer
            .append_data(&mut dir_header, dir, std::io::empty())
            .unwrap();
    }
    for (path, bytes) in files {
        let size = u64::try_from(bytes.len()).unwrap();
        let mut file_header = header(tar::EntryType::Regular, 0o600, size);
        layer
            .append_data(&mut file_header, path, bytes.as_slice())
            .unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&layer).unwrap();
    let gzip = gzip.finish().unwrap();

    // The image layout's files, by path.
    let mut blobs: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut archive = tar::Archive::new(std::fs::File::open(tarball).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            blobs.insert(path, bytes);
        }
    }
    let json = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    let blob = |digest: &serde_json::Value| {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        format!("blobs/sha256/{hex}")
    };
    let mut index = json(&blobs["index.json"]);
    let mut manifest = json(&blobs[&blob(&index["manifests"][0]["digest"])]);
    let mut config = json(&blobs[&blob(&manifest["config"]["digest"])]);

    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(format!("sha256:{}", sha256(&layer)).into());
    let config = serde_json::to_vec(&config).unwrap();
    manifest["layers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{}", sha256(&gzip)),
            "size": gzip.len(),
        }));
    manifest["config"]["digest"] = format!("sha256:{}", sha256(&config)).into();
    manifest["config"]["size"] = config.len().into();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = format!("sha256:{}", sha256(&manifest)).into();
    index["manifests"][0]["size"] = manifest.len().into();
    for bytes in [gzip, config, manifest] {
        blobs.insert(format!("blobs/sha256/{}", sha256(&bytes)), bytes);
    }
    blobs.insert("index.json".into(), serde_json::to_vec(&index).unwrap());

    let mut out = tar::Builder::new(std::fs::File::create(tarball).unwrap());
    for (path, bytes) in &blobs {
        let size = u64::try_from(bytes.len()).unwrap();
        let mut file_header = header(tar::EntryType::Regular, 0o644, size);
        out.append_data(&mut file_header, path, bytes.as_slice())
            .unwrap();
    }
    out.into_inner().unwrap().flush().unwrap();
}

// ---------------------------------------------------------------------------
// The app

struct AppFiles {
    manifest: String,
    components: Vec<(&'static str, Vec<u8>)>,
}

impl AppFiles {
    /// A probe (fresh instances), a counter (state), a slow guest (drain)
    /// and hello.
    fn demo(name: &str) -> Self {
        let read = |path: &str| std::fs::read(path).expect("a built guest");
        Self {
            manifest: format!(
                r#"name = "{name}"

[component.probe]
source = "probe.wasm"

[component.counter]
source = "counter.wasm"
key_value_stores = ["default"]

[component.slow]
source = "slow.wasm"

[component.hello]
source = "hello.wasm"

[[route]]
path = "/probe"
component = "probe"

[[route]]
path = "/count/..."
component = "counter"

[[route]]
path = "/slow"
component = "slow"

[[route]]
path = "/..."
component = "hello"
"#
            ),
            components: vec![
                ("probe.wasm", read(mayfly_guests::PROBE)),
                ("counter.wasm", read(mayfly_guests::COUNTER)),
                ("slow.wasm", read(mayfly_guests::SLOW)),
                ("hello.wasm", read(mayfly_guests::HELLO)),
            ],
        }
    }
}

// ---------------------------------------------------------------------------
// containerd

/// A containerd of this test's own (`mayfly_compare::containerd`), killed
/// by its pid (with every task it still runs) when dropped.
struct Containerd(containerd::Containerd);

impl Containerd {
    /// Starts containerd, or says why it cannot and returns `None` (a
    /// failure instead if `MAYFLY_REQUIRE_CONTAINERD=1`).
    fn start_or_skip(name: &str) -> Option<Self> {
        let required = std::env::var("MAYFLY_REQUIRE_CONTAINERD").is_ok_and(|v| v == "1");
        if let Some(why) = containerd::missing() {
            assert!(!required, "MAYFLY_REQUIRE_CONTAINERD=1, but {why}");
            eprintln!("skipped: {why} (set MAYFLY_REQUIRE_CONTAINERD=1 to require it)");
            return None;
        }
        let containerd = containerd::Containerd::builder(name)
            .namespace(&format!("mayfly-test-{name}"))
            .shim(
                MAYFLY_SHIM,
                Path::new(env!("CARGO_BIN_EXE_containerd-shim-mayfly-v1")),
            )
            .start()
            .unwrap_or_else(|err| panic!("containerd starts: {err:#}"));
        Some(Self(containerd))
    }

    fn socket(&self) -> PathBuf {
        self.0.socket()
    }

    fn try_ctr(&self, args: &[&str]) -> (ExitStatus, String) {
        self.0
            .try_ctr(args)
            .unwrap_or_else(|err| panic!("ctr runs: {err:#}"))
    }

    fn ctr(&self, args: &[&str]) -> String {
        let (status, text) = self.try_ctr(args);
        assert!(status.success(), "ctr {args:?} failed: {text}");
        text
    }

    /// Builds the app's image with `mayfly-oci` and imports it: its
    /// normalised name.
    fn build_and_import(&self, app: &str, files: &AppFiles, name: &str) -> String {
        self.build_and_import_with(app, files, name, |_| {})
    }

    /// [`Containerd::build_and_import`], with `change` made to the image
    /// layout tarball before it is imported.
    fn build_and_import_with(
        &self,
        app: &str,
        files: &AppFiles,
        name: &str,
        change: impl FnOnce(&Path),
    ) -> String {
        let dir = self.0.dir().join(app);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("app.toml"), &files.manifest).unwrap();
        for (file, bytes) in &files.components {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        let reference: Reference = name.parse().unwrap();
        let image = mayfly_oci::build(&dir.join("app.toml"), &reference, None).unwrap();
        let tarball = dir.join("app.tar");
        image.write_to(&tarball).unwrap();
        change(&tarball);
        let imported = self.ctr(&["image", "import", tarball.to_str().unwrap()]);
        let name = reference.to_string();
        assert!(imported.contains(&name), "{imported}");
        name
    }

    /// `ctr run` of `image` as task `id`, in the foreground (its stdout and
    /// stderr are the task's), on loopback ports of its own.
    fn start_task(&self, id: &str, image: &str, redis: Option<&str>) -> Task {
        let listen = free_port();
        let health = free_port();
        let mut task = TaskSpec::new(image, id)
            .runtime(MAYFLY_RUNTIME)
            .net_host()
            .env("MAYFLY_LISTEN", &listen.to_string())
            .env("MAYFLY_HEALTH_LISTEN", &health.to_string())
            .env("MAYFLY_SHUTDOWN_GRACE", "20");
        if let Some(url) = redis {
            task = task.env("MAYFLY_KEY_VALUE_URL", url);
        }
        let mut child = self
            .0
            .run_foreground(&task)
            .unwrap_or_else(|err| panic!("ctr run: {err:#}"));
        let stdout = child.stdout.take().map(BufReader::new);
        Task {
            id: id.to_string(),
            listen,
            health,
            child,
            stdout,
            log: Vec::new(),
            stderr_lines: None,
        }
    }

    /// Starts a task and waits until it serves.
    fn run(&self, id: &str, image: &str, redis: Option<&str>) -> Task {
        let mut task = self.start_task(id, image, redis);
        task.wait_for_log("Serving app");
        // The stderr pipe must not fill up and block the task's logging.
        let stderr = task.child.stderr.take();
        let (lines, logged) = mpsc::channel();
        std::thread::spawn(move || {
            if let Some(stderr) = stderr {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = lines.send(line);
                }
            }
        });
        task.stderr_lines = Some(logged);
        task
    }

    /// No task, container, image snapshot, cgroup or shim process is left
    /// once the tasks `ids` are gone and `image` is removed.
    fn expect_nothing_left(&self, ids: &[&str], image: &str) {
        for id in ids {
            let _ = self.try_ctr(&["task", "delete", "--force", id]);
            let _ = self.try_ctr(&["container", "delete", id]);
        }
        self.ctr(&["image", "remove", "--sync", image]);
        let tasks = self.ctr(&["task", "list", "--quiet"]);
        assert_eq!(tasks.trim(), "", "tasks left: {tasks}");
        let containers = self.ctr(&["container", "list", "--quiet"]);
        assert_eq!(containers.trim(), "", "containers left: {containers}");
        let snapshots = self.ctr(&["snapshot", "list"]);
        assert_eq!(
            snapshots.lines().count(),
            1,
            "snapshots left (only the header expected): {snapshots}"
        );
        for id in ids {
            let cgroups = cgroups_named(self.0.namespace(), id);
            assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
        }
        let shims = processes_matching(&self.socket().display().to_string());
        assert!(shims.is_empty(), "processes left: {shims:?}");
    }
}

/// A task started by `ctr run` in the foreground.
struct Task {
    id: String,
    listen: SocketAddr,
    health: SocketAddr,
    child: Child,
    stdout: Option<BufReader<std::process::ChildStdout>>,
    /// What the task printed so far.
    log: Vec<String>,
    stderr_lines: Option<mpsc::Receiver<String>>,
}

impl Task {
    /// Reads the task's stdout and stderr until a line contains `text`.
    fn wait_for_log(&mut self, text: &str) {
        let deadline = Instant::now() + START_BOUND;
        loop {
            if let Some(lines) = &self.stderr_lines {
                while let Ok(line) = lines.try_recv() {
                    self.log.push(line);
                }
            }
            if self.log.iter().any(|line| line.contains(text)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "task {} never logged `{text}`: {:?}",
                self.id,
                self.log
            );
            if self.stderr_lines.is_none() {
                // Before `run` hands stderr to a thread: stdout carries the
                // banner, line by line.
                let mut line = String::new();
                let read = self
                    .stdout
                    .as_mut()
                    .map_or(0, |out| out.read_line(&mut line).unwrap_or(0));
                if read == 0 {
                    let mut err = String::new();
                    if let Some(mut stderr) = self.child.stderr.take() {
                        let _ = stderr.read_to_string(&mut err);
                    }
                    panic!(
                        "task {} ended before `{text}`: {:?} {err}",
                        self.id, self.log
                    );
                }
                self.log.push(line);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("ctr run")
    }
}

// ---------------------------------------------------------------------------
// HTTP and the machine

/// `GET path` to a guest that answers `sleeping` first: says so on
/// `in_flight` once that line arrived, then reads the rest.
fn get_in_flight(addr: SocketAddr, path: &str, in_flight: mpsc::Sender<()>) -> (u16, String) {
    let mut stream = raw::send_get(addr, path).expect("connects");
    let mut response = Vec::new();
    let mut buffer = [0; 4096];
    let mut told = false;
    loop {
        let n = stream.read(&mut buffer).expect("reads the response");
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buffer[..n]);
        if !told && String::from_utf8_lossy(&response).contains("sleeping") {
            let _ = in_flight.send(());
            told = true;
        }
    }
    raw::parse_response(&response).expect("a response")
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
}

fn redis_url() -> Option<String> {
    std::env::var("MAYFLY_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

fn skip_or_fail_redis() {
    assert!(
        !std::env::var("MAYFLY_REQUIRE_REDIS").is_ok_and(|v| v == "1"),
        "MAYFLY_REQUIRE_REDIS=1, but MAYFLY_TEST_REDIS_URL is not set"
    );
    eprintln!("skipped the shared-state part: MAYFLY_TEST_REDIS_URL is not set");
}

/// Cgroup directories `.../NAMESPACE/ID` in any hierarchy.
fn cgroups_named(namespace: &str, id: &str) -> Vec<PathBuf> {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for hierarchy in hierarchies.flatten() {
        for candidate in [
            hierarchy.path().join(namespace).join(id),
            Path::new("/sys/fs/cgroup").join(namespace).join(id),
        ] {
            if candidate.exists() {
                found.push(candidate);
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Processes whose command line contains `text`.
fn processes_matching(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(text) && cmdline.contains("containerd-shim") {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}
