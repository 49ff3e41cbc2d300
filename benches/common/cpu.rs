//! CPU time for benches that measure what a piece of work costs, not how long it waited.
//! Included with `#[path = "common/cpu.rs"] mod cpu;`.

/// This thread's CPU time, seconds.
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: clock_gettime writes into the timespec we pass.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}
