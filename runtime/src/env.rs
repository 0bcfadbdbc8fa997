//! Environment knobs: `GOMAXPROCS`, `GODEBUG` and `GORT_STACKSIZE`.
//!
//! Design doc: `docs/design/gomaxprocs.md` (its last section is the table of knobs).
//!
//! Each knob has a pure parser (`parse_*`, unit-tested here) and a thin `*_from_env` wrapper that
//! reads the variable once at startup. A bad value never stops the program: the wrapper prints one
//! `gort:`-prefixed line to stderr and uses the default, as Go does for `GOMAXPROCS`. Go ignores
//! bad `GODEBUG` values silently; gort warns, because a typo in `schedtrace=1s` should not leave
//! the user wondering why nothing prints. Unknown `GODEBUG` keys stay silent, as in Go, since
//! `GODEBUG` is shared with real Go programs and their many other keys.
//!
//! Error strings returned by the parsers carry no `gort:` prefix and no "using the default" tail.
//! [`warning`] adds both, because only the caller knows the default.

use crate::cgroup;

/// The largest GOMAXPROCS gort accepts. Larger `GOMAXPROCS` values are clamped to it.
///
/// Go 1.10 dropped its own cap (`_MaxGomaxprocs`, last 1024). gort keeps one so per-P arrays can
/// be sized up front and a typo such as `GOMAXPROCS=99999` cannot start 99,999 Ms.
pub(crate) const MAX_GOMAXPROCS: usize = 1024;

/// Smallest goroutine stack `GORT_STACKSIZE` accepts: 16 KiB.
pub(crate) const MIN_STACK_SIZE: usize = 16 << 10;

/// Largest goroutine stack `GORT_STACKSIZE` accepts: 1 GiB (Go's `maxstacksize` on 64-bit).
pub(crate) const MAX_STACK_SIZE: usize = 1 << 30;

/// Formats a parser error for stderr: `gort: <err>; using the default (<default>)`.
pub(crate) fn warning(err: &str, default: impl std::fmt::Display) -> String {
    format!("gort: {err}; using the default ({default})")
}

/// Parses a `GOMAXPROCS` value.
///
/// * unset or empty (after trimming whitespace) → `Ok(None)`: use the default;
/// * a positive decimal integer, surrounding whitespace allowed → `Ok(Some(n))`, clamped to
///   [`MAX_GOMAXPROCS`];
/// * `0`, negative, non-numeric, or too large for `usize` → `Err` describing the value. Pass
///   it to [`warning`] with the default to get the line to print.
pub(crate) fn parse_gomaxprocs(val: Option<&str>) -> Result<Option<usize>, String> {
    let Some(raw) = val else { return Ok(None) };
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = |why: &str| format!("invalid GOMAXPROCS={raw:?}: {why}");
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("want a positive integer"));
    }
    match digits.parse::<usize>() {
        Ok(0) => Err(invalid("want a positive integer")),
        Ok(n) => Ok(Some(n.min(MAX_GOMAXPROCS))),
        Err(_) => Err(invalid("number out of range")),
    }
}

/// GOMAXPROCS at startup: `(procs, explicit)`.
///
/// `explicit` is true when a valid `GOMAXPROCS` was set; sysmon then never changes GOMAXPROCS on
/// its own. Otherwise `procs` is the Go 1.25 default ([`cgroup::default_gomaxprocs`]), or the plain
/// affinity count when `GODEBUG=containermaxprocs=0`. An invalid value is reported on stderr in
/// one line and the default is used.
pub(crate) fn gomaxprocs_from_env() -> (usize, bool) {
    let val = env_var("GOMAXPROCS");
    // Parsed without printing: GoDebug::from_env reports GODEBUG problems once, elsewhere.
    let (debug, _) = parse_godebug(env_var("GODEBUG").as_deref().unwrap_or(""));
    let (procs, explicit, warn) = resolve_gomaxprocs(val.as_deref(), || {
        if debug.containermaxprocs {
            cgroup::default_gomaxprocs()
        } else {
            cgroup::affinity_cpus()
        }
    });
    if let Some(line) = warn {
        eprintln!("{line}");
    }
    (procs, explicit)
}

/// Is `GOMAXPROCS` set to a valid value (then sysmon never changes it)?
pub(crate) fn gomaxprocs_from_env_explicit() -> bool {
    matches!(
        parse_gomaxprocs(env_var("GOMAXPROCS").as_deref()),
        Ok(Some(_))
    )
}

/// The decision in [`gomaxprocs_from_env`], minus the environment and stderr: `(procs, explicit,
/// warning line)`. `default` is called only when needed.
fn resolve_gomaxprocs(
    val: Option<&str>,
    default: impl FnOnce() -> usize,
) -> (usize, bool, Option<String>) {
    match parse_gomaxprocs(val) {
        Ok(Some(n)) => (n, true, None),
        Ok(None) => (default().clamp(1, MAX_GOMAXPROCS), false, None),
        Err(err) => {
            let procs = default().clamp(1, MAX_GOMAXPROCS);
            (procs, false, Some(warning(&err, procs)))
        }
    }
}

/// Runtime debugging knobs from `GODEBUG` (Go's `debug` struct in `runtime1.go`), the subset gort
/// implements.
///
/// Immutable after startup.
// The fields are read by sysmon, schedtrace, the GC and preemption, which arrive in later issues;
// until then only `containermaxprocs` is read.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GoDebug {
    /// `schedtrace=N`: print a scheduler summary line every N ms. 0 = off.
    pub(crate) schedtrace: u64,
    /// `scheddetail=1`: with `schedtrace`, also print every P, M and G.
    pub(crate) scheddetail: bool,
    /// `gctrace=N`: 1 prints one line per GC cycle; 2 also repeats each cycle's trace. 0 = off.
    pub(crate) gctrace: u32,
    /// `gcpacertrace=1`: print the pacer's internal state.
    pub(crate) gcpacertrace: bool,
    /// `asyncpreemptoff=1`: disable signal-based asynchronous preemption.
    pub(crate) asyncpreemptoff: bool,
    /// `updatemaxprocs=0`: sysmon does not refresh GOMAXPROCS from the cgroup limit. Default on.
    pub(crate) updatemaxprocs: bool,
    /// `containermaxprocs=0`: ignore the cgroup CPU limit; the default GOMAXPROCS is the affinity
    /// count. Default on.
    pub(crate) containermaxprocs: bool,
}

impl Default for GoDebug {
    fn default() -> GoDebug {
        GoDebug {
            schedtrace: 0,
            scheddetail: false,
            gctrace: 0,
            gcpacertrace: false,
            asyncpreemptoff: false,
            updatemaxprocs: true,
            containermaxprocs: true,
        }
    }
}

impl GoDebug {
    /// Parses `GODEBUG` from the environment, printing one stderr line per bad value.
    pub(crate) fn from_env() -> GoDebug {
        let (debug, warnings) = parse_godebug(env_var("GODEBUG").as_deref().unwrap_or(""));
        for line in warnings {
            eprintln!("{line}");
        }
        debug
    }
}

/// Parses a `GODEBUG` string: comma-separated `key=value` settings, later ones overriding
/// earlier ones (as at Go's startup).
///
/// Fields without `=` and unknown keys are ignored silently, as Go does. A known key with a bad
/// value keeps its previous value and adds one warning line (already `gort:`-prefixed) to the
/// returned list. Numbers are decimal; a boolean knob takes `0` (off) or a positive integer (on).
pub(crate) fn parse_godebug(s: &str) -> (GoDebug, Vec<String>) {
    let mut debug = GoDebug::default();
    let mut warnings = Vec::new();
    for field in s.split(',') {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let ok = match key.trim() {
            "schedtrace" => set(&mut debug.schedtrace, value.parse().ok()),
            "gctrace" => set(&mut debug.gctrace, value.parse().ok()),
            "scheddetail" => set(&mut debug.scheddetail, parse_flag(value)),
            "gcpacertrace" => set(&mut debug.gcpacertrace, parse_flag(value)),
            "asyncpreemptoff" => set(&mut debug.asyncpreemptoff, parse_flag(value)),
            "updatemaxprocs" => set(&mut debug.updatemaxprocs, parse_flag(value)),
            "containermaxprocs" => set(&mut debug.containermaxprocs, parse_flag(value)),
            _ => continue,
        };
        if !ok {
            let want = match key.trim() {
                "schedtrace" => "a non-negative integer (milliseconds)",
                "gctrace" => "a non-negative integer",
                _ => "0 or 1",
            };
            warnings.push(format!(
                "gort: invalid GODEBUG setting {}={value:?}: want {want}; ignored",
                key.trim()
            ));
        }
    }
    (debug, warnings)
}

/// Stores `parsed` into `slot` if it is `Some`; returns whether it was.
fn set<T>(slot: &mut T, parsed: Option<T>) -> bool {
    parsed.map(|v| *slot = v).is_some()
}

/// A boolean `GODEBUG` value: `0` is off, a positive integer is on, anything else is invalid.
fn parse_flag(value: &str) -> Option<bool> {
    value.parse::<u32>().ok().map(|n| n != 0)
}

/// Parses a `GORT_STACKSIZE` value: the goroutine stack size in bytes.
///
/// Accepts a decimal number with an optional binary suffix, case-insensitive: none or `b` (bytes),
/// `k`/`KiB` (×1024), `m`/`MiB` (×1024²), `g`/`GiB` (×1024³), e.g. `262144`, `256k`, `1MiB`.
/// Whitespace around the value and between number and suffix is allowed. Unset or empty →
/// `Ok(None)`. Results below [`MIN_STACK_SIZE`] or above [`MAX_STACK_SIZE`], malformed numbers and
/// ambiguous suffixes such as `kb` → `Err`, to be passed to [`warning`].
#[allow(dead_code)] // Used by the stack allocator (later issue).
pub(crate) fn parse_stack_size(val: Option<&str>) -> Result<Option<usize>, String> {
    let Some(raw) = val else { return Ok(None) };
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = |why: String| format!("invalid GORT_STACKSIZE={raw:?}: {why}");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => {
            return Err(invalid(
                "want bytes with an optional k/KiB, m/MiB or g/GiB suffix (e.g. 262144, 256k, 1MiB)"
                    .to_string(),
            ));
        }
    };
    if digits.is_empty() {
        return Err(invalid("want a number of bytes, e.g. 256k".to_string()));
    }
    let size = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n <= MAX_STACK_SIZE)
        .ok_or_else(|| invalid("above the maximum of 1 GiB".to_string()))?;
    if size < MIN_STACK_SIZE {
        return Err(invalid(format!(
            "{size} bytes is below the minimum of 16 KiB"
        )));
    }
    Ok(Some(size))
}

/// `GORT_STACKSIZE` from the environment; `None` (use the default) if unset or invalid, printing
/// one stderr line in the latter case.
#[allow(dead_code)] // Used by the stack allocator (later issue).
pub(crate) fn stack_size_from_env() -> Option<usize> {
    parse_stack_size(env_var("GORT_STACKSIZE").as_deref()).unwrap_or_else(|err| {
        eprintln!("{}", warning(&err, "built-in size"));
        None
    })
}

/// The value of an environment variable. A non-UTF-8 value is converted lossily, so that it
/// fails to parse and is reported instead of being treated as unset.
fn env_var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gomaxprocs_valid() {
        assert_eq!(parse_gomaxprocs(None), Ok(None));
        assert_eq!(parse_gomaxprocs(Some("")), Ok(None));
        assert_eq!(parse_gomaxprocs(Some("  ")), Ok(None));
        assert_eq!(parse_gomaxprocs(Some("1")), Ok(Some(1)));
        assert_eq!(parse_gomaxprocs(Some(" 4 ")), Ok(Some(4)));
        assert_eq!(parse_gomaxprocs(Some("\t8\n")), Ok(Some(8)));
        assert_eq!(parse_gomaxprocs(Some("+3")), Ok(Some(3)));
        assert_eq!(parse_gomaxprocs(Some("007")), Ok(Some(7)));
        assert_eq!(parse_gomaxprocs(Some("1024")), Ok(Some(MAX_GOMAXPROCS)));
        assert_eq!(parse_gomaxprocs(Some("1025")), Ok(Some(MAX_GOMAXPROCS)));
        assert_eq!(parse_gomaxprocs(Some("99999")), Ok(Some(MAX_GOMAXPROCS)));
    }

    #[test]
    fn gomaxprocs_invalid() {
        for bad in [
            "abc", "0", "-3", "-0", "4x", "4 4", "1.5", "+", "0x10", "４",
        ] {
            let err = parse_gomaxprocs(Some(bad)).unwrap_err();
            assert!(err.contains(&format!("GOMAXPROCS={bad:?}")), "{err}");
            assert!(err.contains("want a positive integer"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let huge = "99999999999999999999999999";
        let err = parse_gomaxprocs(Some(huge)).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
    }

    #[test]
    fn gomaxprocs_warning_line() {
        let err = parse_gomaxprocs(Some("abc")).unwrap_err();
        assert_eq!(
            warning(&err, 2),
            r#"gort: invalid GOMAXPROCS="abc": want a positive integer; using the default (2)"#
        );
        // Control characters are escaped, so the warning stays on one line.
        let err = parse_gomaxprocs(Some("1\n2")).unwrap_err();
        assert_eq!(err, r#"invalid GOMAXPROCS="1\n2": want a positive integer"#);
    }

    #[test]
    fn gomaxprocs_resolution() {
        let default = || 6;
        assert_eq!(resolve_gomaxprocs(Some("3"), default), (3, true, None));
        assert_eq!(resolve_gomaxprocs(None, default), (6, false, None));
        assert_eq!(resolve_gomaxprocs(Some(""), default), (6, false, None));
        let (procs, explicit, warn) = resolve_gomaxprocs(Some("-3"), default);
        assert_eq!((procs, explicit), (6, false));
        assert_eq!(
            warn.as_deref(),
            Some(
                r#"gort: invalid GOMAXPROCS="-3": want a positive integer; using the default (6)"#
            )
        );
        let (procs, _, warn) = resolve_gomaxprocs(Some("0"), || 2);
        assert_eq!(procs, 2);
        assert!(warn.unwrap().ends_with("using the default (2)"));
        // The default is not computed when GOMAXPROCS is explicit.
        assert_eq!(
            resolve_gomaxprocs(Some("2"), || unreachable!()),
            (2, true, None)
        );
    }

    #[test]
    #[cfg_attr(miri, ignore)] // reads /proc and cgroup files
    fn gomaxprocs_real_environment() {
        // Whatever the test runner's environment says, the result is usable.
        let (procs, explicit) = gomaxprocs_from_env();
        assert!((1..=MAX_GOMAXPROCS).contains(&procs));
        if !explicit {
            assert!(procs <= cgroup::affinity_cpus());
        }
    }

    #[test]
    fn godebug_defaults() {
        let (debug, warnings) = parse_godebug("");
        assert_eq!(debug, GoDebug::default());
        assert!(warnings.is_empty());
        assert!(debug.updatemaxprocs && debug.containermaxprocs);
        assert!(!debug.asyncpreemptoff && !debug.scheddetail && !debug.gcpacertrace);
        assert_eq!((debug.schedtrace, debug.gctrace), (0, 0));
    }

    #[test]
    fn godebug_settings() {
        let (debug, warnings) = parse_godebug(
            "schedtrace=1000,scheddetail=1,gctrace=2,gcpacertrace=1,asyncpreemptoff=1,\
             updatemaxprocs=0,containermaxprocs=0",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            debug,
            GoDebug {
                schedtrace: 1000,
                scheddetail: true,
                gctrace: 2,
                gcpacertrace: true,
                asyncpreemptoff: true,
                updatemaxprocs: false,
                containermaxprocs: false,
            }
        );
    }

    #[test]
    fn godebug_unknown_and_malformed_fields_are_silent() {
        let (debug, warnings) =
            parse_godebug("http2client=0,madvdontneed=1,,noequals,=5,gctrace=1,tlsrsakex=1");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            debug,
            GoDebug {
                gctrace: 1,
                ..GoDebug::default()
            }
        );
    }

    #[test]
    fn godebug_later_settings_win() {
        let (debug, _) = parse_godebug("gctrace=1,gctrace=0,updatemaxprocs=0,updatemaxprocs=1");
        assert_eq!(debug, GoDebug::default());
    }

    #[test]
    fn godebug_bad_values_warn() {
        let (debug, warnings) =
            parse_godebug("schedtrace=1s,gctrace=-1,asyncpreemptoff=yes,updatemaxprocs=,gctrace=1");
        assert_eq!(
            debug,
            GoDebug {
                gctrace: 1,
                ..GoDebug::default()
            },
            "bad values ignored"
        );
        assert_eq!(
            warnings,
            [
                r#"gort: invalid GODEBUG setting schedtrace="1s": want a non-negative integer (milliseconds); ignored"#,
                r#"gort: invalid GODEBUG setting gctrace="-1": want a non-negative integer; ignored"#,
                r#"gort: invalid GODEBUG setting asyncpreemptoff="yes": want 0 or 1; ignored"#,
                r#"gort: invalid GODEBUG setting updatemaxprocs="": want 0 or 1; ignored"#,
            ]
        );
    }

    #[test]
    fn stack_size_valid() {
        assert_eq!(parse_stack_size(None), Ok(None));
        assert_eq!(parse_stack_size(Some(" ")), Ok(None));
        assert_eq!(parse_stack_size(Some("262144")), Ok(Some(256 << 10)));
        assert_eq!(parse_stack_size(Some("256k")), Ok(Some(256 << 10)));
        assert_eq!(parse_stack_size(Some("256K")), Ok(Some(256 << 10)));
        assert_eq!(parse_stack_size(Some("64KiB")), Ok(Some(64 << 10)));
        assert_eq!(parse_stack_size(Some(" 1MiB ")), Ok(Some(1 << 20)));
        assert_eq!(parse_stack_size(Some("8 m")), Ok(Some(8 << 20)));
        assert_eq!(parse_stack_size(Some("16k")), Ok(Some(MIN_STACK_SIZE)));
        assert_eq!(parse_stack_size(Some("1g")), Ok(Some(MAX_STACK_SIZE)));
        assert_eq!(parse_stack_size(Some("1024MiB")), Ok(Some(MAX_STACK_SIZE)));
        assert_eq!(parse_stack_size(Some("16384b")), Ok(Some(16384)));
    }

    #[test]
    fn stack_size_invalid() {
        let err = |s| parse_stack_size(Some(s)).unwrap_err();
        assert_eq!(
            err("8k"),
            r#"invalid GORT_STACKSIZE="8k": 8192 bytes is below the minimum of 16 KiB"#
        );
        assert!(err("0").contains("below the minimum"));
        assert!(err("16383").contains("below the minimum"));
        assert!(err("2g").contains("above the maximum of 1 GiB"));
        assert!(err("1025m").contains("above the maximum"));
        assert!(err("99999999999999999999999k").contains("above the maximum"));
        assert!(
            err("18446744073709551615k").contains("above the maximum"),
            "overflow"
        );
        for bad in [
            "abc", "256kb", "256KB", "1.5m", "-256k", "k", "256 k b", "0x4000",
        ] {
            let e = err(bad);
            assert!(
                e.starts_with(&format!("invalid GORT_STACKSIZE={bad:?}: ")),
                "{e}"
            );
        }
        assert!(err("k").contains("want a number"));
        assert_eq!(
            warning(&err("abc"), "built-in size"),
            "gort: invalid GORT_STACKSIZE=\"abc\": want bytes with an optional k/KiB, m/MiB or \
             g/GiB suffix (e.g. 262144, 256k, 1MiB); using the default (built-in size)"
        );
    }
}
