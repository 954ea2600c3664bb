//! Integration tests of `mayfly-plugin`: plugins of a host program's own
//! worlds (`wit/plugin`), built from `guests/`, loaded and called through
//! the library's public API alone.
//!
//! One test binary, a module per world.

/// The guest components, built by `mayfly-guests`.
use mayfly_guests as guests;

mod async_filter;
mod filter;

/// The test that runs each plugin guest (`foreach_guest!`'s `plugin`
/// kind): a plugin added to `guests/` without one does not compile. The
/// other guests are `tests/all`'s.
mod tested {
    pub(crate) use crate::async_filter::an_async_plugin_fetches_its_documents_concurrently as plugin_async;
    pub(crate) use crate::filter::a_well_behaved_plugin_transforms_and_refuses as plugin_upper;
    pub(crate) use crate::filter::every_call_gets_a_fresh_instance_unless_reuse_is_asked_for as plugin_hostile;
}

macro_rules! has_test {
    (plugin, $name:ident, $path:ident) => {
        #[allow(unused_imports)]
        use tested::$name as _;
    };
    (mayfly, $name:ident, $path:ident) => {};
}

guests::foreach_guest!(has_test);
