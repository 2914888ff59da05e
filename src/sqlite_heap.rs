//! SQLite's own heap: mimalloc instead of the C library's `malloc`, and no memory statistics.
//!
//! sqlx copies every column value it reads (`sqlite3_value_dup`) on its worker thread, and the
//! row is dropped on a runtime thread. Through glibc's `malloc` that churn, and the global mutex
//! SQLite takes around each allocation to keep statistics, were a fifth of scenario (a)'s
//! instructions (callgrind, see docs/performance.md).

// Unsafe code (as in `allocator.rs`): SQLite's allocator hooks are a C interface.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use libsqlite3_sys as ffi;

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    // SQLite only asks for positive sizes below its own limit (`sqlite3Malloc` checks).
    unsafe { libmimalloc_sys::mi_malloc(n as usize) }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    unsafe { libmimalloc_sys::mi_free(p) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    unsafe { libmimalloc_sys::mi_realloc(p, n as usize) }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    let size = unsafe { libmimalloc_sys::mi_usable_size(p) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    c_int::try_from(unsafe { libmimalloc_sys::mi_good_size(n as usize) }).unwrap_or(n)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// Points SQLite's allocator at mimalloc and turns its memory statistics off. Call it before
/// anything opens an SQLite database and while no other thread uses SQLite (`sqlite3_config`
/// is not thread-safe); once SQLite is initialized it refuses, and this returns `false`.
pub fn configure() -> bool {
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(x_malloc),
        xFree: Some(x_free),
        xRealloc: Some(x_realloc),
        xSize: Some(x_size),
        xRoundup: Some(x_roundup),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLite copies the methods; every one is a thin call into mimalloc, which is
    // thread-safe. After initialization SQLite answers SQLITE_MISUSE and changes nothing, so
    // memory is never freed by an allocator other than the one that allocated it.
    unsafe {
        ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods as *const _) == ffi::SQLITE_OK
            && ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int) == ffi::SQLITE_OK
    }
}

#[cfg(test)]
mod tests {
    use super::configure;

    /// Once SQLite is in use its allocator stays: memory it holds is never freed by another.
    /// (The binary's path, configuring first, is run by the CLI test in tests/foundation.rs.)
    #[tokio::test]
    async fn refuses_once_sqlite_is_initialized() {
        let db = sea_orm::Database::connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite");
        assert!(!configure());
        use sea_orm::ConnectionTrait;
        db.execute_unprepared("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('still works')")
            .await
            .expect("SQLite still works");
    }
}
