//! CPU time for benches that measure what a piece of work costs, not how long it waited.
//! Included with `#[path = "common/cpu.rs"] mod cpu;`.

/// This thread's CPU time, seconds.
#[allow(dead_code)] // each bench uses part of this file
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: clock_gettime writes into the timespec we pass.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// This process's CPU time (user and system, all threads), seconds.
#[allow(dead_code)] // each bench uses part of this file
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass; RUSAGE_SELF has no other preconditions.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}
