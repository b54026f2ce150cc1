//! The BLAS behind ndarray: the system OpenBLAS, linked through `blas-src`.
//!
//! OpenBLAS runs each call on its own thread pool. streamnmf runs its own threads over
//! fixed row chunks instead, for two reasons:
//!
//! - **Determinism.** OpenBLAS picks different kernels and splits for different thread
//!   counts, so the same product can differ in the last bit between 1 and 2 BLAS threads;
//!   with BLAS single-threaded, a model depends only on the data, the seed and the
//!   settings, never on the thread count.
//! - **Speed.** Both pools on the same cores fight: a 20000 × 1000 fit took 6.0 s instead
//!   of 1.1 s with 2 chunk threads on top of 2 OpenBLAS threads (this 2-core machine).
//!
//! So the first model, solve or pipeline in a process calls [`single_threaded`], which
//! turns OpenBLAS's threading off for the whole process, unless `OPENBLAS_NUM_THREADS` is
//! set (an explicit choice wins; the model then also depends on it).

use std::sync::Once;

extern "C" {
    // OpenBLAS's own API.
    fn openblas_set_num_threads(n: std::os::raw::c_int);
}

/// Sets OpenBLAS to `n` threads per call (process-wide).
///
/// ```
/// streamnmf::blas::set_threads(1);
/// ```
pub fn set_threads(n: usize) {
    let n = n.clamp(1, i32::MAX as usize) as std::os::raw::c_int;
    // SAFETY: a plain setter in OpenBLAS that takes any positive count.
    unsafe { openblas_set_num_threads(n) };
}

/// Makes every OpenBLAS call single-threaded, once per process, unless the user chose a
/// count with `OPENBLAS_NUM_THREADS` (which then wins). Called whenever streamnmf runs
/// its own threads.
pub fn single_threaded() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() {
            tracing::debug!("OpenBLAS set to one thread per call: streamnmf runs the threads");
            set_threads(1);
        }
    });
}
