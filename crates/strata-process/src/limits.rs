//! The open-files limit. A broker holds one descriptor per connection and keeps segment files
//! open up to half this limit, so the soft limit many systems start processes with (1024)
//! runs out long before memory or disk do. The process raises its soft limit to the hard limit at start, as the JVM does for Kafka
//! (HotSpot's `MaxFDLimit`); the hard limit stays the administrator's to set.

use rlimit::Resource;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and logs both. Never fatal: a failure is
/// logged and the process runs with the limit it was given.
pub fn raise_open_files_limit() {
    let (before, hard) = match Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open files limit");
            return;
        }
    };
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => tracing::info!(soft, hard, was = before, "open files limit"),
        Err(e) => {
            tracing::warn!(soft = before, hard, error = %e, "cannot raise the open files limit")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let (soft, hard) = Resource::NOFILE.get().unwrap();
        assert!(soft <= hard);
        // Lower it first (always allowed), so the test shows the raise.
        let lowered = soft.min(hard).min(256);
        Resource::NOFILE.set(lowered, hard).unwrap();
        raise_open_files_limit();
        let (now, hard_now) = Resource::NOFILE.get().unwrap();
        assert_eq!(hard_now, hard);
        assert!(
            now > lowered || lowered == hard,
            "soft limit {now}, hard {hard}"
        );
    }
}
