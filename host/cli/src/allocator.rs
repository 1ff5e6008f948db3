//! The process's allocator: mimalloc, set up before it starts.

/// mimalloc, not glibc's malloc: the converter, the HTTP client and the sinks allocate per value,
/// and glibc's malloc and free were a quarter of the read path's CPU (BENCHMARKS.md, issue 12).
/// Its options are set before it starts, by [`bound_allocator_memory`].
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Makes mimalloc hand freed memory back at once and commit its arenas as they are used: with its
/// defaults (freed memory purged after a second, arenas committed eagerly) a 1,000,000-row cdc
/// ingest peaked at 411 MiB, against 235–261 MiB on glibc's malloc; with these, 242 MiB, at the
/// same CPU.
///
/// It must run before mimalloc creates its first arena, which happens before `main`: on Linux it
/// is a constructor ordered just before mimalloc's own (priority 101, `prim.c`). Set from `main`,
/// the purge delay took but the first arena was already committed eagerly (316 MiB).
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00100")]
static BOUND_ALLOCATOR_MEMORY: extern "C" fn() = bound_allocator_memory;

/// mimalloc.h's `mi_option_t` values, which libmimalloc-sys does not name (the same in v2 and v3).
#[cfg(target_os = "linux")]
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
#[cfg(target_os = "linux")]
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[cfg(target_os = "linux")]
extern "C" fn bound_allocator_memory() {
    // SAFETY: an option is a plain store that mimalloc reads at its next use; nothing else in the
    // process sets options, and this runs single-threaded, before `main`.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_hands_memory_back_at_once() {
        // SAFETY: reading an option.
        let options = unsafe {
            (libmimalloc_sys::mi_option_get(PURGE_DELAY), libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT))
        };
        assert_eq!(options, (0, 0), "mimalloc's defaults are 1000 ms and 2: the constructor did not run");
    }
}
