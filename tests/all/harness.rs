//! The test target's side of the harness: the binary under test, the test
//! app, and the guests of each world. Everything else (the server, the
//! clients, bounded processes) is `mayfly-testing`'s, re-exported here so
//! that a test module takes all it needs from one place.

use std::process::{Command, Output};

use crate::guests;

pub use mayfly_testing::{
    Binary, Body, Client, Held, Load, PATIENCE, Reply, Seen, full, get, get_streamed, in_flight,
    raw, rest_of_body, run_bounded, run_bounded_for, write_file,
};

/// The `mayfly` binary this package builds: only its own test targets know
/// where it is.
pub enum Mayfly {}

impl Binary for Mayfly {
    const PATH: &'static str = env!("CARGO_BIN_EXE_mayfly");
}

/// Path of the `mayfly` binary under test.
pub const MAYFLY: &str = Mayfly::PATH;

/// A running `mayfly serve` of the binary under test.
pub type Server = mayfly_testing::Server<Mayfly>;

/// Runs `mayfly ARGS...` to completion (see [`run_bounded`]).
pub fn run_mayfly(args: &[&std::ffi::OsStr]) -> Output {
    let mut command = Command::new(MAYFLY);
    command.args(args);
    run_bounded(command)
}

/// The manifest of the test app: every guest, each on its own routes.
pub fn test_app(dir: &std::path::Path) -> std::path::PathBuf {
    let manifest = format!(
        r#"
name = "test-app"

[component.hello]
source = {hello:?}
[component.echo]
source = {echo:?}
[component.probe]
source = {probe:?}
[component.trap]
source = {trap:?}
[component.slow]
source = {slow:?}

[[route]]
path = "/"
component = "hello"
[[route]]
path = "/echo/..."
component = "echo"
[[route]]
path = "/echo/special"
component = "hello"
[[route]]
path = "/probe"
component = "probe"
[[route]]
path = "/trap/..."
component = "trap"
[[route]]
path = "/slow"
component = "slow"
"#,
        hello = guests::HELLO,
        echo = guests::ECHO,
        probe = guests::PROBE,
        trap = guests::TRAP,
        slow = guests::SLOW,
    );
    write_file(dir, "app.toml", manifest)
}

/// The two worlds a component can be of: the same test runs for a WASI 0.2
/// guest and for its 0.3 twin (see [`for_both_worlds`]), which answer alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// WASI 0.2: `wasi:http/proxy`, `wasi:cli/command`.
    P2,
    /// WASI 0.3: `wasi:http/service`, `wasi:cli/command@0.3.0`.
    P3,
}

impl World {
    /// The guest of this world of the pair `p2` and `p3`.
    fn pick(self, p2: &'static str, p3: &'static str) -> &'static str {
        match self {
            World::P2 => p2,
            World::P3 => p3,
        }
    }

    /// `hello`: the greeting.
    pub fn hello(self) -> &'static str {
        self.pick(guests::HELLO, guests::HELLO_P3)
    }

    /// `echo`: the request sent back.
    pub fn echo(self) -> &'static str {
        self.pick(guests::ECHO, guests::ECHO_P3)
    }

    /// `probe`: whether anything survived an earlier request.
    pub fn probe(self) -> &'static str {
        self.pick(guests::PROBE, guests::PROBE_P3)
    }

    /// `slow`: a request that sleeps.
    pub fn slow(self) -> &'static str {
        self.pick(guests::SLOW, guests::SLOW_P3)
    }

    /// `counter`: a visit counter in a key-value store.
    pub fn counter(self) -> &'static str {
        self.pick(guests::COUNTER, guests::COUNTER_P3)
    }

    /// What answers `/config` with its configuration: `config-reader` of
    /// 0.2, `counter-p3` of 0.3.
    pub fn config_reader(self) -> &'static str {
        self.pick(guests::CONFIG_READER, guests::COUNTER_P3)
    }

    /// `hostile`: the attacks.
    pub fn hostile(self) -> &'static str {
        self.pick(guests::HOSTILE, guests::HOSTILE_P3)
    }

    /// `cli`: the command for `mayfly run`.
    pub fn cli(self) -> &'static str {
        self.pick(guests::CLI, guests::CLI_P3)
    }

    /// The name `mayfly run` gives [`World::cli`] (from its file's).
    pub fn cli_name(self) -> &'static str {
        self.pick("cli", "cli-p3")
    }

    /// The other world.
    pub fn other(self) -> World {
        match self {
            World::P2 => World::P3,
            World::P3 => World::P2,
        }
    }
}

/// Defines each `async fn NAME(world: World) { ... }` (or `fn`, for a test
/// with no async runtime) as a module `NAME` with two tests, `wasi_02` and
/// `wasi_03`, that run the one body for each world.
macro_rules! for_both_worlds {
    () => {};
    ($(#[$meta:meta])* async fn $name:ident($world:ident: World) $body:block $($rest:tt)*) => {
        $(#[$meta])*
        pub(crate) mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            pub(crate) async fn wasi_02() {
                run($crate::harness::World::P2).await
            }

            #[tokio::test]
            pub(crate) async fn wasi_03() {
                run($crate::harness::World::P3).await
            }

            async fn run($world: $crate::harness::World) $body
        }
        $crate::harness::for_both_worlds! { $($rest)* }
    };
    ($(#[$meta:meta])* fn $name:ident($world:ident: World) $body:block $($rest:tt)*) => {
        $(#[$meta])*
        pub(crate) mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            pub(crate) fn wasi_02() {
                run($crate::harness::World::P2)
            }

            #[test]
            pub(crate) fn wasi_03() {
                run($crate::harness::World::P3)
            }

            fn run($world: $crate::harness::World) $body
        }
        $crate::harness::for_both_worlds! { $($rest)* }
    };
}
pub(crate) use for_both_worlds;
