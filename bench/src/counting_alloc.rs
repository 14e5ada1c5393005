//! A global allocator that counts live heap bytes, for the benchmarks that
//! report memory per actor or per timer. Included by `#[path]`.
//!
//! It counts only once [`count_from_now`] is called: until then an
//! allocation costs one relaxed load of a flag nobody writes, so a process
//! that times things and never counts pays nothing measurable (a shared
//! counter updated on every allocation from every thread is what slows a
//! counting process down). A benchmark that needs both times in one process
//! and counts in another, started with `--count-heap`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

pub struct Counting;

static HEAP_BYTES: AtomicI64 = AtomicI64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Starts counting. Call it first thing in `main`: a block allocated before
/// and freed after would be subtracted without having been added.
pub fn count_from_now() {
    COUNTING.store(true, Ordering::SeqCst);
}

fn counting() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

// SAFETY: every call forwards to `System` with the caller's arguments; the
// counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            HEAP_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            HEAP_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            HEAP_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Live heap bytes now.
pub fn heap() -> i64 {
    HEAP_BYTES.load(Ordering::Relaxed)
}
