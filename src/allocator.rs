//! The global allocator: mimalloc, called the way its plain `malloc` is fastest.
//!
//! The `mimalloc` crate's allocator hands every request to `mi_malloc_aligned`. mimalloc 3
//! serves that from the size's own bin only when a free block happens to be at hand there, or
//! when the bin's size is a power of two; otherwise it over-allocates by the alignment (a
//! 24-byte box took a 32-byte block, through two more calls). Under callgrind, 18 of the 114
//! allocations of a `{ me { id } }` request went that way, and allocating took 7 200 of its
//! instructions; 3 800 now. Rust asks for an alignment of 16 or less almost always, which
//! `mi_malloc` guarantees by itself: blocks of 16 bytes and more are 16-aligned, smaller ones
//! 8-aligned. Those requests go to `mi_malloc`, as the standard library's `System` sends them
//! to `malloc`; larger alignments keep the aligned calls.

// A global allocator is necessarily unsafe code: it forwards raw blocks to mimalloc.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use libmimalloc_sys as mi;

/// The alignment of every `mi_malloc` block of at least this many bytes (`MI_MAX_ALIGN_SIZE`).
const MIN_ALIGN: usize = 16;

/// mimalloc as the global allocator.
pub struct MiMalloc;

/// Whether a plain `mi_malloc` of `size` bytes is aligned enough for `align`: blocks smaller
/// than 16 bytes are 8-aligned, and `align <= size` keeps an 8-byte block from meeting a
/// 16-byte alignment.
#[inline]
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

// SAFETY: each method forwards to mimalloc, which returns null on failure or a block of at
// least the size asked, aligned as the layout requires (`plain`, else the aligned calls); blocks
// from any of these calls are freed by `mi_free`.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        let p = if plain(align, size) {
            unsafe { mi::mi_malloc(size) }
        } else {
            unsafe { mi::mi_malloc_aligned(size, align) }
        };
        p.cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        let p = if plain(align, size) {
            unsafe { mi::mi_zalloc(size) }
        } else {
            unsafe { mi::mi_zalloc_aligned(size, align) }
        };
        p.cast()
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        let p = if plain(align, new_size) {
            unsafe { mi::mi_realloc(ptr.cast(), new_size) }
        } else {
            unsafe { mi::mi_realloc_aligned(ptr.cast(), new_size, align) }
        };
        p.cast()
    }
}

/// Turns transparent huge pages off for this process (Linux; elsewhere nothing to do), and
/// says whether they are off.
///
/// mimalloc marks its 1 GiB arena `MADV_HUGEPAGE`, and on a kernel set to `madvise` (Debian's
/// default) or `always`, khugepaged then collapses every 2 MiB range with a single page in use
/// into one resident huge page. Its scan comes round the arena about every 11 minutes, and
/// each time RSS stepped up by 4 to 6 MiB while the heap's live bytes stayed the same
/// (docs/reliability.md). On small pages the soak's RSS is flat and a third lower, at the same
/// CPU per request (docs/performance.md).
pub fn disable_transparent_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE only sets a flag on the calling process; it reads no memory.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
                && libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1
        }
    }
    #[cfg(not(target_os = "linux"))]
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn transparent_huge_pages_are_turned_off() {
        assert!(disable_transparent_huge_pages());
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        assert!(status.contains("THP_enabled:\t0"), "{status}");
    }

    #[test]
    fn blocks_are_aligned_zeroed_and_kept_across_reallocation() {
        let a = MiMalloc;
        let filled = |p: *mut u8, n: usize| {
            // SAFETY: `p` holds at least `n` initialized bytes.
            unsafe { std::slice::from_raw_parts(p, n) }
                .iter()
                .all(|b| *b == 0xA5)
        };
        for size in [1, 3, 7, 8, 12, 16, 24, 40, 48, 100, 1000, 5000, 70_000] {
            for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
                let mut layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: non-zero sizes; each block is used within its size and freed once,
                // with the layout it has.
                unsafe {
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(
                        z as usize % align,
                        0,
                        "zeroed {size} bytes, aligned {align}"
                    );
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|b| *b == 0));
                    a.dealloc(z, layout);
                    let mut p = a.alloc(layout);
                    assert_eq!(p as usize % align, 0, "{size} bytes aligned {align}");
                    p.write_bytes(0xA5, size);
                    for new_size in [size / 2 + 1, size * 3] {
                        p = a.realloc(p, layout, new_size);
                        assert_eq!(
                            p as usize % align,
                            0,
                            "{size} -> {new_size}, aligned {align}"
                        );
                        assert!(filled(p, layout.size().min(new_size)), "contents kept");
                        p.write_bytes(0xA5, new_size);
                        layout = Layout::from_size_align(new_size, align).expect("layout");
                    }
                    a.dealloc(p, layout);
                }
            }
        }
    }
}
