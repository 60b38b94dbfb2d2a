//! The one integration-test binary: end-to-end runs against real services (registry, git remotes, sshd)
//! that the helpers in `support` start on free loopback ports and stop on drop.

mod corpus;
mod daemon;
mod docs;
mod forge;
mod git;
mod hostile_registry;
mod invariants;
mod notify;
mod quickstart;
mod reconcile;
mod registry;
mod reliability;
mod resolve;
mod resolve_live;
mod rewrite;
mod rewrite_properties;
mod schema;
mod semver_oracle;
mod set;
mod ship;
mod soak;
mod support;
mod validate;

/// libgit2's settings as `tagwatch`'s `main` gives them (network timeouts, open pack files, object
/// cache), for the tests that call the library in this process: without the server timeout a git
/// remote that accepts and then stalls would hold its test, and so CI, for ever instead of failing it.
/// The function runs from the ELF `.init_array`, before `main` and so before the test threads exist,
/// which is what `git2::opts` requires of its callers.
#[used]
#[allow(unsafe_code)]
#[unsafe(link_section = ".init_array")]
static SET_LIBGIT2_OPTIONS: extern "C" fn() = set_libgit2_options;

#[allow(unsafe_code)]
extern "C" fn set_libgit2_options() {
    // SAFETY: this runs before `main`, on the only thread of the process, so nothing uses libgit2.
    if let Err(error) = unsafe { tagwatch::git::set_process_options() } {
        // A panic cannot unwind out of an `extern "C"` function: say why and stop.
        eprintln!("libgit2 refused the test binary's settings: {error}");
        std::process::abort();
    }
}
