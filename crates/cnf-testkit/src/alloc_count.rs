//! An allocation-counting global allocator, for tests that check that a hot path does not
//! allocate (the workspace's "no allocation in the stepping loop" claims are tested with it).
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: cnf_testkit::alloc_count::CountingAllocator = cnf_testkit::alloc_count::CountingAllocator;
//! let n = cnf_testkit::alloc_count::allocations_during(|| { /* hot path */ });
//! ```
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting the allocations of each thread.
pub struct CountingAllocator;

// SAFETY: forwards to the system allocator unchanged; only a thread-local counter is added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Allocations made by this thread so far (counted only when [`CountingAllocator`] is the
/// global allocator).
pub fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations this thread makes while running `f`.
pub fn allocations_during(f: impl FnOnce()) -> usize {
    let before = allocations();
    f();
    allocations() - before
}
