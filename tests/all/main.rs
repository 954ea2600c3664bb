//! Integration tests: the real `mayfly` binary, real guest components built
//! from `guests/`, and real HTTP over loopback sockets.
//!
//! One test binary, a module per area. A test that holds for both WASI
//! worlds is one body run for each (`harness::for_both_worlds!`); what only
//! WASI 0.3 does is in `component_async`, both worlds in one server in
//! `worlds`.

/// The guest components, built by `mayfly-guests`.
use mayfly_guests as guests;

mod harness;

mod budgets;
mod busy_poll;
mod chaining;
mod check;
mod cli;
mod clients;
mod compare;
mod compile_cache;
mod component_async;
mod deploy;
mod fresh_instances;
mod grants;
mod guest_log;
mod guest_text;
mod host_memory;
mod hostile;
mod limits;
mod load_errors;
mod network_fuzz;
mod oci;
mod operating;
mod outbound;
mod polyglot;
mod queue;
mod rebuild;
mod routing;
mod run;
mod shutdown;
mod soak;
mod spin;
mod state;
mod streaming;
mod templates;
mod traps;
mod worlds;

/// The test that runs each guest `foreach_guest!` lists as `mayfly`'s (the
/// `plugin` guests are `mayfly-plugin`'s tests'), by the guest's name; for
/// a pair of twins, the one body's case for each world. A guest added to
/// `guests/` without an entry here does not compile ("no `NAME` in
/// `tested`"): give it a test, and name it here.
mod tested {
    pub(crate) use crate::spin::a_spin_sdk_5_app_runs_unmodified as spin_v2;
    pub(crate) use crate::spin::a_spin_sdk_7_app_on_wasi_03_runs_unmodified as spin_v3;
    pub(crate) use crate::fresh_instances::the_probe_never_sees_state_from_another_request::{
        wasi_02 as probe, wasi_03 as probe_p3,
    };
    pub(crate) use crate::grants::granted_files_are_readable_and_everything_else_is_denied as capabilities;
    pub(crate) use crate::hostile::a_panic_gives_500_with_the_trap_and_logs_the_message::{
        wasi_02 as hostile, wasi_03 as hostile_p3,
    };
    pub(crate) use crate::operating::metrics_count_requests_traps_limits_and_instantiations::{
        wasi_02 as hello, wasi_03 as hello_p3,
    };
    pub(crate) use crate::queue::beyond_the_instance_limit_requests_queue_then_get_503::{
        wasi_02 as slow, wasi_03 as slow_p3,
    };
    pub(crate) use crate::run::arguments_and_exit_status_pass_through::{
        wasi_02 as cli, wasi_03 as cli_p3,
    };
    pub(crate) use crate::state::compare_and_swap_reports_conflicts::{
        wasi_02 as counter, wasi_03 as counter_p3,
    };
    pub(crate) use crate::state::config_comes_from_the_manifest_the_environment_and_the_secrets_file::wasi_02 as config_reader;
    pub(crate) use crate::state::documents_are_stored_listed_and_bounded as crud;
    pub(crate) use crate::streaming::echo_streams_back_a_10_mib_chunked_body_with_request_metadata::{
        wasi_02 as echo, wasi_03 as echo_p3,
    };
    pub(crate) use crate::traps::a_trap_before_the_response_gives_500_and_the_next_request_succeeds as trap;
    pub(crate) use crate::worlds::internal_calls_go_both_ways_between_worlds as chain_p3;
    // `mayfly compare` runs both workloads in every mode it compares.
    pub(crate) use crate::compare as workload;
    pub(crate) use crate::compare as workload_http;
}

macro_rules! has_test {
    (mayfly, $name:ident, $path:ident) => {
        #[allow(unused_imports)]
        use tested::$name as _;
    };
    (plugin, $name:ident, $path:ident) => {};
}

guests::foreach_guest!(has_test);
