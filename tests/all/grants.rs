//! Capabilities: a component reaches exactly what its manifest grants.

use std::path::Path;
use std::time::Instant;

use crate::guests;
use crate::harness::{PATIENCE, Server, get, write_file};

const SECRET: &str = "the host's secret";

/// A host tree with a secret outside the grants, a read-only and a
/// read-write grant, and a symlink inside the read-only grant that points
/// at the secret.
fn setup(dir: &Path) -> Server {
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::create_dir_all(dir.join("scratch")).unwrap();
    write_file(dir, "secret.txt", SECRET);
    write_file(&dir.join("public"), "hello.txt", "public data");
    std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("public/escape.txt")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", dir.join("public/relative-escape.txt")).unwrap();
    let manifest = format!(
        r#"
[component.caps]
source = {:?}
env = {{ GREETING = "hi there", MODE = "test" }}

[[component.caps.files]]
host = "public"
guest = "/public"

[[component.caps.files]]
host = "scratch"
guest = "/scratch"
mode = "read-write"

[component.bare]
source = {:?}

[[route]]
path = "/caps"
component = "caps"
[[route]]
path = "/bare"
component = "bare"
"#,
        guests::CAPABILITIES,
        guests::CAPABILITIES,
    );
    Server::start(&write_file(dir, "app.toml", manifest))
}

#[tokio::test]
pub(crate) async fn granted_files_are_readable_and_everything_else_is_denied() {
    let dir = tempfile::tempdir().unwrap();
    let server = setup(dir.path());
    let ok = get(server.addr, "/caps?op=read&path=/public/hello.txt").await;
    assert_eq!(
        (ok.status.as_u16(), ok.text().as_str()),
        (200, "public data")
    );

    // Escaping a grant is refused by the grant's capability handle; a path
    // under no grant is not found at all, since nothing else is mounted.
    const ESCAPE: &str = "denied: Operation not permitted (os error 63)";
    const ELSEWHERE: &str = "denied: No such file or directory (os error 44)";
    let secret_path = dir.path().join("secret.txt").display().to_string();
    for (attempt, expected) in [
        ("/public/../secret.txt", ESCAPE),
        ("/public/../../../../etc/passwd", ESCAPE),
        ("/public/escape.txt", ESCAPE),
        ("/public/relative-escape.txt", ESCAPE),
        ("../../etc/passwd", ELSEWHERE),
        (secret_path.as_str(), ELSEWHERE),
        ("/etc/passwd", ELSEWHERE),
    ] {
        let reply = get(server.addr, &format!("/caps?op=read&path={attempt}")).await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (403, expected),
            "{attempt}"
        );
    }
    still_serves(&server).await;
}

/// Both components still answer normally.
async fn still_serves(server: &Server) {
    let ok = get(server.addr, "/caps?op=read&path=/public/hello.txt").await;
    assert_eq!(
        (ok.status.as_u16(), ok.text().as_str()),
        (200, "public data")
    );
    let bare = get(server.addr, "/bare?op=getenv&name=GREETING").await;
    assert_eq!(bare.status, 404);
}

#[tokio::test]
async fn read_only_grants_refuse_writes_and_read_write_grants_accept_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = setup(dir.path());

    let refused = get(server.addr, "/caps?op=write&path=/public/new.txt").await;
    assert_eq!(
        (refused.status.as_u16(), refused.text().as_str()),
        (403, "denied: Operation not permitted (os error 63)")
    );
    assert!(!dir.path().join("public/new.txt").exists());
    let overwrite = get(server.addr, "/caps?op=write&path=/public/hello.txt").await;
    assert_eq!(overwrite.status, 403);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("public/hello.txt")).unwrap(),
        "public data"
    );

    let written = get(server.addr, "/caps?op=write&path=/scratch/out.txt").await;
    assert_eq!(
        (written.status.as_u16(), written.text().as_str()),
        (200, "written")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("scratch/out.txt")).unwrap(),
        "written by guest"
    );
    // A read-write grant is still a boundary.
    let escape = get(server.addr, "/caps?op=write&path=/scratch/../pwned.txt").await;
    assert_eq!(
        (escape.status.as_u16(), escape.text().as_str()),
        (403, "denied: Operation not permitted (os error 63)")
    );
    assert!(!dir.path().join("pwned.txt").exists());
    still_serves(&server).await;
}

#[tokio::test]
async fn only_granted_environment_variables_are_visible() {
    let dir = tempfile::tempdir().unwrap();
    let server = setup(dir.path());

    let env = get(server.addr, "/caps?op=env").await;
    assert_eq!(
        (env.status.as_u16(), env.text().as_str()),
        (200, "GREETING=hi there\nMODE=test\n")
    );
    // The host's own environment (PATH, HOME...) is not there, nor is a
    // name the manifest never mentions.
    assert!(std::env::var_os("PATH").is_some());
    for (path, name) in [
        ("/caps", "PATH"),
        ("/caps", "HOME"),
        ("/caps", "UNGRANTED"),
        // Granted to `caps`, not to `bare`.
        ("/bare", "GREETING"),
    ] {
        let reply = get(server.addr, &format!("{path}?op=getenv&name={name}")).await;
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (404, "environment variable not found"),
            "{path} {name}"
        );
    }

    // A component with no grants sees nothing at all.
    let bare = get(server.addr, "/bare?op=env").await;
    assert_eq!((bare.status.as_u16(), bare.text().as_str()), (200, ""));
    let bare = get(server.addr, "/bare?op=read&path=/public/hello.txt").await;
    assert_eq!(
        (bare.status.as_u16(), bare.text().as_str()),
        (403, "denied: No such file or directory (os error 44)")
    );
    still_serves(&server).await;
}

#[tokio::test]
async fn a_grant_stays_the_directory_that_was_granted() {
    let dir = tempfile::tempdir().unwrap();
    let server = setup(dir.path());
    let read = "/caps?op=read&path=/public/hello.txt";
    assert_eq!(get(server.addr, read).await.text(), "public data");

    // Someone with write access to the host swaps the granted path for a
    // symlink to a directory holding the secret.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    write_file(&elsewhere, "hello.txt", SECRET);
    std::fs::rename(dir.path().join("public"), dir.path().join("public-old")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("public")).unwrap();

    // Instances still get the directory that was granted at load time.
    let reply = get(server.addr, read).await;
    assert_eq!(
        (reply.status.as_u16(), reply.text().as_str()),
        (200, "public data")
    );
}

#[tokio::test]
async fn a_reload_grants_the_directory_a_path_names_now() {
    let dir = tempfile::tempdir().unwrap();
    for release in ["release-1", "release-2"] {
        std::fs::create_dir_all(dir.path().join(release)).unwrap();
        write_file(&dir.path().join(release), "version.txt", release);
    }
    std::os::unix::fs::symlink("release-1", dir.path().join("current")).unwrap();
    let manifest = format!(
        r#"
[component.caps]
source = {:?}

[[component.caps.files]]
host = "current"
guest = "/site"

[[route]]
path = "/caps"
component = "caps"
"#,
        guests::CAPABILITIES,
    );
    let app = write_file(dir.path(), "app.toml", &manifest);
    let server = Server::start_with(&[app.to_str().unwrap(), "--watch"]);
    let read = "/caps?op=read&path=/site/version.txt";
    assert_eq!(get(server.addr, read).await.text(), "release-1");

    // The link moves to the next release, and the manifest is touched (the
    // component's declaration reads the same): the new directory is granted.
    let next = dir.path().join("next");
    std::os::unix::fs::symlink("release-2", &next).unwrap();
    std::fs::rename(&next, dir.path().join("current")).unwrap();
    write_file(dir.path(), "app.toml", format!("{manifest}\n# deployed\n"));
    let deadline = Instant::now() + PATIENCE;
    while get(server.addr, read).await.text() != "release-2" {
        assert!(Instant::now() < deadline, "still granted the old directory");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A WASI 0.3 guest's grants, through the 0.3 interfaces (`hostile-p3`'s
/// `env`, `escape` and `outbound` answer as `capabilities`' operations do).
#[tokio::test]
async fn a_0_3_guest_reaches_only_what_it_is_granted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("note.txt"), "granted text").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
    let manifest = format!(
        r#"
[component.bare]
source = {hostile_p3:?}

[component.granted]
source = {hostile_p3:?}
env = {{ GREETING = "hi there" }}
files = [{{ host = {data:?}, guest = "/data" }}]

[[route]]
path = "/p3/bare"
component = "bare"
[[route]]
path = "/p3/granted"
component = "granted"
"#,
        hostile_p3 = guests::HOSTILE_P3,
        data = data.display().to_string(),
    );
    let server = Server::start(&write_file(dir.path(), "app.toml", manifest));

    // Ungranted: no variables, no directories, no outbound calls.
    assert_eq!(get(server.addr, "/p3/bare?attack=env").await.text(), "");
    let escape = get(server.addr, "/p3/bare?attack=escape").await.text();
    assert!(escape.contains("no preopened directories"), "{escape}");
    assert!(!escape.contains("ESCAPED"), "{escape}");
    let outbound = get(
        server.addr,
        "/p3/bare?attack=outbound&url=http://example.com/",
    )
    .await;
    assert_eq!(outbound.status, 403);
    assert_eq!(outbound.text(), "denied: ErrorCode::HttpRequestDenied");
    server.wait_for_output("outbound request to http://example.com/ denied");

    // Granted: exactly the variable and the directory.
    let env = get(server.addr, "/p3/granted?attack=env").await.text();
    assert_eq!(env, "GREETING=hi there\n");
    let read = get(server.addr, "/p3/granted?attack=escape&path=/data/note.txt")
        .await
        .text();
    assert!(read.contains("granted text"), "{read}");
    let escape = get(server.addr, "/p3/granted?attack=escape").await.text();
    assert!(!escape.contains("ESCAPED"), "{escape}");
    assert!(!escape.contains("outside"), "{escape}");
    // Read-only by default.
    let write = get(
        server.addr,
        "/p3/granted?attack=escape&path=/data/new.txt&write=1",
    )
    .await
    .text();
    assert!(write.contains("denied"), "{write}");
    assert!(!data.join("new.txt").exists());
}
