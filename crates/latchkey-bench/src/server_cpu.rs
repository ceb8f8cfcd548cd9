//! The server's own CPU time (`--server-pid`), read from `/proc/PID/stat`
//! at the start and the end of the timed phase, so that CPU per request
//! leaves setup (sign-ups, first sign-ins) out.

use std::time::Duration;

/// Why the server's CPU time could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServerCpuError {
    /// `/proc/PID/stat` could not be read (no such process, or not Linux).
    #[error("reading /proc/{pid}/stat: {reason}")]
    Read {
        /// The process.
        pid: u32,
        /// The I/O error.
        reason: String,
    },
    /// The file did not have the expected shape.
    #[error("unexpected /proc/PID/stat format: {0}")]
    Format(&'static str),
    /// `sysconf(_SC_CLK_TCK)` gave no usable value.
    #[error("sysconf(_SC_CLK_TCK) failed")]
    ClockTicks,
}

/// utime + stime, in clock ticks, of a `/proc/PID/stat` line.
///
/// The second field (the command name in parentheses) may itself contain
/// spaces and parentheses, so the fixed fields are counted from the last `)`:
/// after it come field 3 (state) onwards, utime and stime being fields 14 and 15.
pub fn parse_cpu_ticks(stat: &str) -> Result<u64, ServerCpuError> {
    let close = stat
        .rfind(')')
        .ok_or(ServerCpuError::Format("no ')' after the command name"))?;
    let mut fields = stat[close + 1..].split_ascii_whitespace().skip(14 - 3);
    let mut tick_field = |name| {
        fields
            .next()
            .ok_or(ServerCpuError::Format(name))?
            .parse::<u64>()
            .map_err(|_| ServerCpuError::Format(name))
    };
    let utime = tick_field("utime missing or not a number")?;
    let stime = tick_field("stime missing or not a number")?;
    Ok(utime.saturating_add(stime))
}

/// Clock ticks per second of the `/proc` CPU figures.
fn clock_ticks_per_sec() -> Result<u64, ServerCpuError> {
    // SAFETY: sysconf reads a configuration value; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks)
        .ok()
        .filter(|t| *t > 0)
        .ok_or(ServerCpuError::ClockTicks)
}

/// Reads a process's CPU time (user + system) so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerCpuProbe {
    pid: u32,
    ticks_per_sec: u64,
}

impl ServerCpuProbe {
    /// Checks that the process's figures can be read now.
    pub fn new(pid: u32) -> Result<Self, ServerCpuError> {
        let probe = ServerCpuProbe {
            pid,
            ticks_per_sec: clock_ticks_per_sec()?,
        };
        probe.read_ticks()?;
        Ok(probe)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// utime + stime in clock ticks.
    pub fn read_ticks(&self) -> Result<u64, ServerCpuError> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path).map_err(|e| ServerCpuError::Read {
            pid: self.pid,
            reason: e.to_string(),
        })?;
        parse_cpu_ticks(&stat)
    }

    /// CPU time between two tick readings.
    pub fn elapsed(&self, before: u64, after: u64) -> Duration {
        ticks_to_duration(after.saturating_sub(before), self.ticks_per_sec)
    }
}

fn ticks_to_duration(ticks: u64, ticks_per_sec: u64) -> Duration {
    let secs = ticks / ticks_per_sec;
    let rest = ticks % ticks_per_sec;
    Duration::from_secs(secs) + Duration::from_nanos(rest * 1_000_000_000 / ticks_per_sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fields 3.. of a real line; utime = 1234, stime = 567.
    const TAIL: &str = "S 1 4242 4242 0 -1 4194560 1020 0 0 0 1234 567 0 0 20 0 \
                        9 0 777 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 \
                        4096 17663 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn parses_utime_plus_stime() {
        let line = format!("4242 (latchkey) {TAIL}\n");
        assert_eq!(parse_cpu_ticks(&line), Ok(1234 + 567));
    }

    #[test]
    fn command_names_with_spaces_and_parentheses() {
        for comm in [
            "tokio-runtime w",
            "a) (b",
            ") 1 2 3 4 5 6 7 8 9 10 11 12 13",
            "((",
        ] {
            let line = format!("99 ({comm}) {TAIL}");
            assert_eq!(parse_cpu_ticks(&line), Ok(1801), "comm {comm:?}");
        }
    }

    #[test]
    fn refuses_malformed_lines() {
        assert!(parse_cpu_ticks("").is_err());
        assert!(parse_cpu_ticks("1 (x S 1 2").is_err());
        assert!(parse_cpu_ticks("1 (x) S 1 2 3").is_err());
        let bad_stime = format!("1 (x) {}", TAIL.replace(" 567 ", " -5 "));
        assert!(parse_cpu_ticks(&bad_stime).is_err());
    }

    #[test]
    fn reads_its_own_process() {
        let probe = ServerCpuProbe::new(std::process::id()).expect("own /proc/PID/stat");
        let before = probe.read_ticks().unwrap();
        // Burn a little CPU so the reading can only go up.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let after = probe.read_ticks().unwrap();
        assert!(after >= before);
        assert_eq!(probe.elapsed(after, before), Duration::ZERO);
    }

    #[test]
    fn ticks_to_time() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
        assert_eq!(ticks_to_duration(1, 3), Duration::from_nanos(333_333_333));
    }

    #[test]
    fn missing_process_is_an_error() {
        // Above the kernel's pid_max limit (2^22), so never a live process.
        let err = ServerCpuProbe::new(u32::MAX).unwrap_err();
        assert!(matches!(err, ServerCpuError::Read { .. }), "{err}");
    }
}
