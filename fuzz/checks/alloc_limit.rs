//! Measures the largest single allocation a piece of code makes, so the
//! checks can assert that a decoder never allocates more than its frame
//! limit, however large a length the input claims.
//!
//! Every binary that runs the checks (each fuzz target, each corpus test)
//! installs [`Tracking`] as its global allocator:
//!
//! ```ignore
//! #[path = "../checks/alloc_limit.rs"]
//! mod alloc_limit;
//! #[global_allocator]
//! static ALLOC: alloc_limit::Tracking = alloc_limit::Tracking;
//! ```
//!
//! [`largest_during`] refuses to run without it, so a check can never pass
//! because nothing was measured.

// A global allocator is unsafe to implement; this one only forwards to the
// system allocator. Test and fuzz binaries only, never the library.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // Per thread: the test harness runs tests on several threads at once.
    // Const-initialised and without a destructor, so touching them from
    // inside the allocator never allocates.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest request made while armed.
pub struct Tracking;

fn note(size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping only touches plain thread-local cells.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the size of the largest single
/// allocation it made on this thread.
///
/// # Panics
/// If [`Tracking`] is not this binary's global allocator.
pub fn largest_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let previous = LARGEST.with(|l| l.replace(0));
    ARMED.with(|a| a.set(true));
    let probe = std::hint::black_box(Box::new([0u8; 48]));
    drop(probe);
    assert!(
        LARGEST.with(Cell::get) >= 48,
        "alloc_limit::Tracking is not the global allocator: nothing would be measured"
    );
    LARGEST.with(|l| l.set(0));
    let out = f();
    ARMED.with(|a| a.set(false));
    let largest = LARGEST.with(|l| l.replace(previous));
    (out, largest)
}

/// Runs `f` and asserts that no single allocation it made exceeded `limit`
/// bytes (`what` names the decoder in the failure).
pub fn within<R>(limit: usize, what: &str, f: impl FnOnce() -> R) -> R {
    let (out, largest) = largest_during(f);
    assert!(
        largest <= limit,
        "{what} allocated {largest} bytes at once, over its limit of {limit}"
    );
    out
}

/// How many bytes of memory one input byte may become at once. Values are
/// wider in memory than encoded (a four-byte workflow step is 120 bytes),
/// and serde preallocates a sequence's claimed length, which postcard caps
/// at the bytes that remain (and serde at 1 MiB).
pub const BYTES_PER_INPUT_BYTE: usize = 256;

/// The most decoding an input of `input_len` bytes may allocate at once:
/// never more than the frame limit, and never more than the input's worth
/// ([`BYTES_PER_INPUT_BYTE`] per byte, plus 64 KiB for bookkeeping). A
/// length the input claims beyond what it holds cannot pass this.
pub fn decode_limit(frame_limit: usize, input_len: usize) -> usize {
    frame_limit.min(64 * 1024 + BYTES_PER_INPUT_BYTE * input_len)
}
