//! Process-wide tuning of glibc's allocator for the MPC engine's large, short-lived vectors.
//!
//! An MPC operation on 100,000 elements makes and drops dozens of vectors of 0.8-6.4 MB per
//! server (shares, masks, PrivateCompare terms, dealt bits). glibc serves a request above its
//! mmap threshold (128 KiB at start, raised only as mapped blocks are freed) with a fresh
//! mapping, and gives freed memory back with `munmap` or `madvise(MADV_DONTNEED)` as soon as
//! the free space at an arena's top passes its trim threshold. Every such vector then costs a
//! page fault and a zeroed page per 4 KiB on first touch: `bench mpc --only comparison` made
//! 129,000 minor faults, and 10-15% of its profile was the kernel clearing pages.
//!
//! [`tune`] fixes both thresholds at start-up: blocks up to [`MMAP_THRESHOLD`] come from the
//! arenas, and an arena keeps up to [`TRIM_THRESHOLD`] of free memory for the next operation.
//! Memory stays bounded: what a process holds is its high-water mark (at most
//! [`TRIM_THRESHOLD`] above what is live in the main arena, and each thread arena its peak),
//! not growth, and blocks above [`MMAP_THRESHOLD`] are still mapped and unmapped one by one.
//! Measured with the same two settings given as `GLIBC_TUNABLES`, five alternating runs of one
//! binary without and with them: SecureNN comparison of 100k 0.111-0.147 s -> 0.076-0.115 s
//! online, minor faults 129,000 -> 73,000 (the guide's benchmark chapter has the whole suite).
//!
//! On other platforms [`tune`] does nothing and says so.

/// Requests up to this size come from the arenas (glibc's own ceiling for its moving
/// threshold on 64-bit targets, `DEFAULT_MMAP_THRESHOLD_MAX`).
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// Free memory an arena keeps at its top before giving it back to the system.
pub const TRIM_THRESHOLD: usize = 256 << 20;

/// What [`tune`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tuned {
    /// Both thresholds are set.
    Set,
    /// glibc refused a setting (the `mallopt` parameter named).
    Refused(&'static str),
    /// Not glibc: the platform's allocator is left as it is.
    Unsupported,
}

/// Sets glibc's mmap and trim thresholds for this process (see the module docs). Call it first
/// thing in `main`, before threads start; calling it again is harmless.
pub fn tune() -> Tuned {
    imp::tune()
}

/// [`tune`] for a binary's `main`: a refusal is written to standard error (the process runs on,
/// only slower), since logging is not set up yet.
pub fn init() {
    if let Tuned::Refused(param) = tune() {
        eprintln!("warning: glibc refused {param}; large buffers will be mapped afresh");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::{MMAP_THRESHOLD, TRIM_THRESHOLD, Tuned};

    fn set(param: libc::c_int, value: usize) -> bool {
        let Ok(value) = libc::c_int::try_from(value) else {
            return false;
        };
        // SAFETY: `mallopt` takes two integers, touches only the allocator's own parameters
        // under its lock, and reports a refused value by returning 0; no memory is passed.
        #[allow(unsafe_code)]
        let ok = unsafe { libc::mallopt(param, value) };
        ok == 1
    }

    pub(super) fn tune() -> Tuned {
        if !set(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) {
            return Tuned::Refused("M_MMAP_THRESHOLD");
        }
        if !set(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) {
            return Tuned::Refused("M_TRIM_THRESHOLD");
        }
        Tuned::Set
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    use super::Tuned;

    pub(super) fn tune() -> Tuned {
        Tuned::Unsupported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc takes both settings (`mallopt` returns 0 for a value it refuses), and a second
    /// call is as good as the first.
    #[test]
    fn glibc_takes_both_thresholds() {
        let expected = if cfg!(all(target_os = "linux", target_env = "gnu")) {
            Tuned::Set
        } else {
            Tuned::Unsupported
        };
        assert_eq!(tune(), expected);
        assert_eq!(tune(), expected);
    }
}
