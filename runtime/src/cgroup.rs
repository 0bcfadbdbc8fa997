//! The default GOMAXPROCS: CPU affinity and the cgroup CPU limit (Go 1.25+).
//!
//! Design doc: `docs/design/gomaxprocs.md`. Go's equivalents are
//! `runtime/cgroup_linux.go` (the rule and the refresh caveats) and
//! `internal/runtime/cgroup/` (discovery and the file formats).
//!
//! # The rule
//!
//! When `GOMAXPROCS` is not set explicitly, gort uses Go 1.25's default:
//!
//! ```text
//! procs = affinity                                   no CPU limit
//! procs = min(affinity, max(2, ceil(quota/period)))  with a CPU limit
//! ```
//!
//! `affinity` is the number of CPUs in the process's `sched_getaffinity` mask (Go's `NumCPU`).
//! `quota/period` is the average throughput the cgroup allows, in CPUs. Go rounds a fractional
//! limit **up** and never goes below 2, so a 0.5-CPU container still gets two Ps: a program that is
//! throttled now and then runs better than one that cannot overlap a blocking syscall, a GC worker
//! and user code. std's `available_parallelism` floors the quota instead and only enforces a
//! minimum of 1 (rust-lang/rust#92697), so it is not used except as a fallback for the affinity
//! count.
//!
//! # Discovery (once, at startup)
//!
//! 1. Read `/proc/self/cgroup`. Each line is `hierarchy-ID:controller-list:cgroup-path`. A v1
//!    hierarchy whose comma-separated controller list contains `cpu` (`1:cpu:/a`,
//!    `4:cpu,cpuacct:/a`) wins at once. Otherwise the v2 line (`0::/a`) is used. A controller
//!    can be attached to only one hierarchy, so on a hybrid system the v1 `cpu` line, if present,
//!    is the one that carries the limit (as in Go).
//! 2. Read `/proc/self/mountinfo` and take the first mount whose type is `cgroup2` (v2), or
//!    `cgroup` with `cpu` among the super options (v1), and whose root (field 4) is a path prefix
//!    of the cgroup path. Inside a container without a cgroup namespace the mount root is
//!    `/docker/abc` and the cgroup path `/docker/abc/x`. The part below the root (`/x`, or nothing)
//!    is appended to the mount point (field 5). A root of `/` keeps the whole cgroup path. A
//!    remainder starting with `/..` means the cgroup lies outside our cgroup namespace, where this
//!    mount cannot reach it, so the mount is skipped. Fields 4 and 5 are unescaped first: the
//!    kernel writes space, tab, newline and backslash as `\ooo` octal (`\040` for a space).
//! 3. Open the limit files in that directory and keep them open: v1 `cpu.cfs_quota_us` (`-1` means
//!    no limit) and `cpu.cfs_period_us`; v2 `cpu.max` (`max 100000` or `50000 100000`).
//!
//! # Refresh
//!
//! [`CgroupCpu::read_limit`] re-reads the open files with `pread` at offset 0 (cgroupfs files
//! regenerate their contents on every read from the start), so a refresh costs one or two system
//! calls and no path walk. Sysmon calls it at most once a second unless GOMAXPROCS was set
//! explicitly or `GODEBUG=updatemaxprocs=0`.
//!
//! # Caveats (shared with Go)
//!
//! * Only the **leaf** cgroup that holds the process is read. A tighter limit on a parent cgroup
//!   is missed. Container runtimes usually hide the parents anyway.
//! * The cgroup is found once. If the process is migrated to another cgroup later, the runtime
//!   keeps reading the old one's files (or nothing, if it was removed).
//! * nix's `CpuSet` is a fixed 1024-CPU `cpu_set_t`. On larger machines `sched_getaffinity` fails
//!   with `EINVAL` and [`affinity_cpus`] falls back to `available_parallelism`.
//!
//! # Failure policy
//!
//! Nothing here panics on bad input. Missing or unreadable files, malformed lines and unparsable
//! numbers all mean "no cgroup" ([`CgroupCpu::discover`] returns `None`) or "no limit"
//! ([`CgroupCpu::read_limit`] returns `None`). Either way the result is the affinity count, as it
//! is without cgroups.
//!
//! Every path is resolved below a root directory ([`CgroupCpu::discover_at`]) so the unit tests
//! run against fake `/proc` and `/sys/fs/cgroup` trees.

use std::ffi::OsStr;
use std::fs::File;
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::sched::{CpuSet, sched_getaffinity};
use nix::unistd::Pid;

/// The minimum GOMAXPROCS a CPU limit can produce (Go: "A limit less than 2 is rounded up to 2").
const MIN_LIMITED_PROCS: usize = 2;

/// Size of the buffer a limit file is read into. The longest valid content is `cpu.max` with two
/// 19-digit numbers, a space and a newline (40 bytes). A read that fills the buffer is malformed.
const LIMIT_BUF: usize = 64;

/// Number of CPUs this process may run on (Go's `NumCPU`, `getCPUCount`).
///
/// Counts the CPUs in the `sched_getaffinity` mask of the calling thread, which at startup is the
/// process's mask. If that call fails (more than 1024 CPUs, see the module caveats), falls back to
/// `std::thread::available_parallelism`. That fallback already folds in a cgroup quota (floored,
/// minimum 1), which only makes the later `min` in [`gomaxprocs_rule`] a no-op. Never returns 0.
pub(crate) fn affinity_cpus() -> usize {
    if let Ok(set) = sched_getaffinity(Pid::from_raw(0)) {
        let n = (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .count();
        if n > 0 {
            return n;
        }
    }
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The default GOMAXPROCS on this machine: [`gomaxprocs_rule`] applied to [`affinity_cpus`] and
/// the current limit of the process's CPU cgroup, if any.
///
/// Discovers the cgroup afresh on each call. Sysmon instead keeps one [`CgroupCpu`] and calls
/// [`CgroupCpu::read_limit`].
pub(crate) fn default_gomaxprocs() -> usize {
    let limit = CgroupCpu::discover().and_then(|mut cpu| cpu.read_limit());
    gomaxprocs_rule(affinity_cpus(), limit)
}

/// Go 1.25's default GOMAXPROCS: `min(affinity, max(2, ceil(limit)))`, or `affinity` when there
/// is no limit.
///
/// `limit` is the cgroup's average CPU throughput (quota/period, in CPUs). A limit that is not a
/// finite, non-negative number is ignored, as if there were none. The result is at least 1 even
/// for `affinity == 0`.
pub(crate) fn gomaxprocs_rule(affinity: usize, limit: Option<f64>) -> usize {
    let procs = affinity.max(1);
    match limit {
        Some(limit) if limit.is_finite() && limit >= 0.0 => {
            // `as` saturates, so an absurdly large limit becomes usize::MAX and loses to `procs`.
            let limited = (limit.ceil() as usize).max(MIN_LIMITED_PROCS);
            procs.min(limited)
        }
        _ => procs,
    }
}

/// The open limit file(s) of the process's CPU cgroup (Go's `cgroup.CPU`).
///
/// Made once by [`CgroupCpu::discover`], then read repeatedly by [`CgroupCpu::read_limit`]. The
/// files stay open for the life of the value, so the limit can be re-read without walking paths.
///
/// Owner: whoever discovered it (startup, then sysmon); `read_limit` takes `&mut self`, so it is
/// never read from two threads at once.
#[derive(Debug)]
pub(crate) struct CgroupCpu {
    /// Directory of the leaf cgroup. Immutable after discovery.
    #[allow(dead_code)] // Read through `path()`, which only tests use until schedtrace lands.
    path: PathBuf,
    /// The open limit file(s). Immutable after discovery.
    files: LimitFiles,
}

/// The limit files, by cgroup version.
#[derive(Debug)]
enum LimitFiles {
    /// cgroup v1: `cpu.cfs_quota_us` (`-1` = no limit) and `cpu.cfs_period_us`, both in µs.
    V1 { quota: File, period: File },
    /// cgroup v2: `cpu.max`, holding `"<quota|max> <period>\n"` in µs.
    V2 { max: File },
}

/// cgroup version, as found in `/proc/self/cgroup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl CgroupCpu {
    /// Finds the CPU cgroup of this process and opens its limit files, or `None` if the process
    /// is not in a CPU cgroup or anything about it cannot be read or parsed.
    pub(crate) fn discover() -> Option<CgroupCpu> {
        Self::discover_at(Path::new("/"))
    }

    /// Like [`CgroupCpu::discover`], but reads `root/proc/self/cgroup`, `root/proc/self/mountinfo`
    /// and resolves mount points below `root`. Used by tests with fixture trees.
    pub(crate) fn discover_at(root: &Path) -> Option<CgroupCpu> {
        let proc_cgroup = std::fs::read(root.join("proc/self/cgroup")).ok()?;
        let (version, cgroup) = parse_proc_cgroup(&proc_cgroup)?;
        let mountinfo = std::fs::read(root.join("proc/self/mountinfo")).ok()?;
        let dir = find_cgroup_dir(&mountinfo, version, &cgroup)?;

        let mut path = root.to_path_buf();
        for component in dir.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            path.push(OsStr::from_bytes(component));
        }

        let files = match version {
            Version::V1 => LimitFiles::V1 {
                quota: File::open(path.join("cpu.cfs_quota_us")).ok()?,
                period: File::open(path.join("cpu.cfs_period_us")).ok()?,
            },
            Version::V2 => LimitFiles::V2 {
                max: File::open(path.join("cpu.max")).ok()?,
            },
        };
        Some(CgroupCpu { path, files })
    }

    /// The current CPU limit in CPUs (quota/period, e.g. `1.5`), or `None` for no limit.
    ///
    /// Re-reads the open files from offset 0. A read error or malformed content also yields
    /// `None` (no limit), never a panic. Costs one `pread` (v2, or v1 without a quota) or two.
    pub(crate) fn read_limit(&mut self) -> Option<f64> {
        match &self.files {
            LimitFiles::V1 { quota, period } => {
                let quota = parse_v1_number(&read_small(quota)?)?;
                if quota < 0 {
                    return None; // -1: no limit.
                }
                let period = parse_v1_number(&read_small(period)?)?;
                limit_from(quota, period)
            }
            LimitFiles::V2 { max } => parse_v2_max(&read_small(max)?),
        }
    }

    /// The cgroup version in use: 1 or 2.
    #[allow(dead_code)] // For schedtrace/debug output (later issue); tests use it now.
    pub(crate) fn version(&self) -> u8 {
        match self.files {
            LimitFiles::V1 { .. } => 1,
            LimitFiles::V2 { .. } => 2,
        }
    }

    /// The directory of the leaf cgroup whose limit files are open (below the discovery root).
    #[allow(dead_code)] // For schedtrace/debug output (later issue); tests use it now.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads a whole small file from offset 0 (`pread`), or `None` on error or if it does not fit.
fn read_small(file: &File) -> Option<Vec<u8>> {
    let mut buf = [0u8; LIMIT_BUF];
    let n = file.read_at(&mut buf, 0).ok()?;
    if n == buf.len() {
        return None; // Longer than any valid limit file.
    }
    Some(buf[..n].to_vec())
}

/// Parses a v1 `cpu.cfs_quota_us` or `cpu.cfs_period_us`: one decimal `i64` and a newline.
fn parse_v1_number(buf: &[u8]) -> Option<i64> {
    std::str::from_utf8(buf).ok()?.trim().parse().ok()
}

/// Parses v2 `cpu.max`: `"max <period>"` (no limit) or `"<quota> <period>"`.
fn parse_v2_max(buf: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(buf).ok()?;
    let mut fields = text.split_ascii_whitespace();
    let (quota, period, rest) = (fields.next()?, fields.next()?, fields.next());
    if rest.is_some() || quota == "max" {
        return None;
    }
    limit_from(quota.parse().ok()?, period.parse().ok()?)
}

/// quota/period in CPUs. A negative quota or a non-positive period is malformed: `None`.
fn limit_from(quota: i64, period: i64) -> Option<f64> {
    if quota < 0 || period <= 0 {
        return None;
    }
    Some(quota as f64 / period as f64)
}

/// Finds the CPU cgroup in `/proc/self/cgroup` contents (discovery step 1).
///
/// Returns the version and the cgroup path (always starting with `/`), or `None` if there is no
/// CPU cgroup or a line is malformed (as Go, one bad line rejects the file).
fn parse_proc_cgroup(data: &[u8]) -> Option<(Version, Vec<u8>)> {
    let mut v2 = None;
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut fields = line.splitn(3, |&b| b == b':');
        let (hierarchy, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        if path.first() != Some(&b'/') {
            return None;
        }
        if hierarchy == b"0" {
            // Keep looking: a v1 hierarchy with the cpu controller takes precedence.
            v2 = Some(path.to_vec());
        } else if contains_cpu(controllers) {
            return Some((Version::V1, path.to_vec()));
        }
    }
    v2.map(|path| (Version::V2, path))
}

/// Whether a comma-separated list (controllers, or super options) contains exactly `cpu`.
fn contains_cpu(list: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|item| item == b"cpu")
}

/// Finds the directory of `cgroup` in `/proc/self/mountinfo` contents (discovery step 2).
///
/// Returns the absolute, unescaped directory (mount point plus the cgroup path below the mount's
/// root), or `None` if no mount matches. Lines that cannot be parsed are skipped: the kernel
/// writes cgroup mounts in the fixed format below, so an unparsable line is not one of them.
///
/// ```text
/// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
/// (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
/// ```
fn find_cgroup_dir(mountinfo: &[u8], version: Version, cgroup: &[u8]) -> Option<Vec<u8>> {
    for line in mountinfo.split(|&b| b == b'\n') {
        if let Some(dir) = match_mount(line, version, cgroup) {
            return Some(dir);
        }
    }
    None
}

/// Returns the cgroup directory if this mountinfo line is a mount of the right cgroup hierarchy
/// that can reach `cgroup`.
fn match_mount(line: &[u8], version: Version, cgroup: &[u8]) -> Option<Vec<u8>> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    // Fields 1-6, the optional fields (7), then "-" (8), type (9), source (10), options (11).
    let sep = 6 + fields.get(6..)?.iter().position(|f| *f == b"-")?;
    let (root, mount_point) = (*fields.get(3)?, *fields.get(4)?);
    let fstype = *fields.get(sep + 1)?;
    match version {
        Version::V2 if fstype == b"cgroup2" => {}
        Version::V1 if fstype == b"cgroup" && contains_cpu(fields.get(sep + 3)?) => {}
        _ => return None,
    }

    let root = unescape(root)?;
    if root.first() != Some(&b'/') || !has_path_prefix(cgroup, &root) {
        return None;
    }
    // The cgroup path below the mount's root: empty or starting with '/'.
    let rel = if root == b"/" {
        if cgroup == b"/" { &[][..] } else { cgroup }
    } else {
        &cgroup[root.len()..]
    };
    if has_path_prefix(rel, b"/..") {
        return None; // Outside our cgroup namespace: unreachable through this mount.
    }
    let mut dir = unescape(mount_point)?;
    dir.extend_from_slice(rel);
    Some(dir)
}

/// Whether `prefix` is `/` or a whole-component prefix of `path` (`/a` is one of `/a/b`, not of
/// `/ab`).
fn has_path_prefix(path: &[u8], prefix: &[u8]) -> bool {
    if prefix == b"/" {
        return true;
    }
    path.starts_with(prefix) && (path.len() == prefix.len() || path[prefix.len()] == b'/')
}

/// Undoes the kernel's `show_path` escaping: `\ooo` (three octal digits) becomes that byte. Any
/// other backslash sequence is invalid and yields `None`.
fn unescape(escaped: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(escaped.len());
    let mut i = 0;
    while i < escaped.len() {
        if escaped[i] != b'\\' {
            out.push(escaped[i]);
            i += 1;
            continue;
        }
        let digits = escaped.get(i + 1..i + 4)?;
        let mut byte: u32 = 0;
        for &d in digits {
            if !(b'0'..=b'7').contains(&d) {
                return None;
            }
            byte = byte * 8 + u32::from(d - b'0');
        }
        out.push(u8::try_from(byte).ok()?);
        i += 4;
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fake root directory with `proc/self/*` and cgroup files, removed on drop.
    pub(crate) struct Fixture {
        root: PathBuf,
    }

    impl Fixture {
        fn new(proc_cgroup: &str, mountinfo: &str) -> Fixture {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed); // Relaxed: only uniqueness matters.
            let root = std::env::temp_dir().join(format!("gort-cgroup-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            let f = Fixture { root };
            f.write("proc/self/cgroup", proc_cgroup);
            f.write("proc/self/mountinfo", mountinfo);
            f
        }

        /// Writes `rel` (relative to the root), creating parent directories.
        pub(crate) fn write(&self, rel: &str, contents: &str) {
            let path = self.root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }

        pub(crate) fn discover(&self) -> Option<CgroupCpu> {
            CgroupCpu::discover_at(&self.root)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    const V1_CPU_PROC: &str = "\
12:pids:/user.slice
4:cpu:/user.slice/app
3:cpuset:/
2:cpuacct:/user.slice/app
1:name=systemd:/user.slice/app
0::/user.slice/app
";

    const V1_MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime shared:10 - cgroup cgroup rw,cpuset
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:8 - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
";

    const V1_DIR: &str = "sys/fs/cgroup/cpu/user.slice/app";

    fn v1(quota: &str, period: &str) -> Fixture {
        let f = Fixture::new(V1_CPU_PROC, V1_MOUNTINFO);
        f.write(&format!("{V1_DIR}/cpu.cfs_quota_us"), quota);
        f.write(&format!("{V1_DIR}/cpu.cfs_period_us"), period);
        f
    }

    const V2_PROC: &str = "0::/system.slice/app.service\n";
    const V2_MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";
    pub(crate) const V2_DIR: &str = "sys/fs/cgroup/system.slice/app.service";

    /// A cgroup v2 fixture whose `cpu.max` holds `cpu_max`.
    pub(crate) fn v2(cpu_max: &str) -> Fixture {
        let f = Fixture::new(V2_PROC, V2_MOUNTINFO);
        f.write(&format!("{V2_DIR}/cpu.max"), cpu_max);
        f
    }

    /// The default GOMAXPROCS a fixture yields on a machine with `affinity` CPUs.
    fn procs(f: &Fixture, affinity: usize) -> usize {
        let limit = f.discover().and_then(|mut c| c.read_limit());
        gomaxprocs_rule(affinity, limit)
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn rule() {
        assert_eq!(gomaxprocs_rule(8, None), 8);
        assert_eq!(gomaxprocs_rule(8, Some(4.0)), 4);
        assert_eq!(gomaxprocs_rule(8, Some(1.5)), 2);
        assert_eq!(gomaxprocs_rule(8, Some(2.01)), 3);
        assert_eq!(gomaxprocs_rule(8, Some(0.5)), 2);
        assert_eq!(gomaxprocs_rule(8, Some(0.0)), 2);
        assert_eq!(gomaxprocs_rule(4, Some(16.0)), 4);
        assert_eq!(
            gomaxprocs_rule(1, Some(0.5)),
            1,
            "never above the affinity count"
        );
        assert_eq!(gomaxprocs_rule(0, None), 1);
        assert_eq!(gomaxprocs_rule(8, Some(f64::NAN)), 8);
        assert_eq!(gomaxprocs_rule(8, Some(f64::INFINITY)), 8);
        assert_eq!(gomaxprocs_rule(8, Some(-1.0)), 8);
        assert_eq!(gomaxprocs_rule(8, Some(1e300)), 8);
    }

    #[test]
    fn proc_cgroup_parsing() {
        let v1 = parse_proc_cgroup(b"3:cpuset:/\n2:cpuacct:/x\n1:cpu:/a/b\n0::/c\n");
        assert_eq!(v1, Some((Version::V1, b"/a/b".to_vec())));
        let combined = parse_proc_cgroup(b"0::/c\n4:cpuacct,cpu:/a\n");
        assert_eq!(
            combined,
            Some((Version::V1, b"/a".to_vec())),
            "v1 wins even after v2"
        );
        let v2 = parse_proc_cgroup(b"2:cpuacct:/x\n3:cpuset:/y\n0::/c/d\n");
        assert_eq!(v2, Some((Version::V2, b"/c/d".to_vec())));
        let colon = parse_proc_cgroup(b"0::/a:b\n");
        assert_eq!(
            colon,
            Some((Version::V2, b"/a:b".to_vec())),
            "':' allowed in paths"
        );
        assert_eq!(parse_proc_cgroup(b""), None);
        assert_eq!(
            parse_proc_cgroup(b"2:cpuacct:/x\n"),
            None,
            "no cpu controller"
        );
        assert_eq!(parse_proc_cgroup(b"1:cpu\n"), None, "missing field");
        assert_eq!(
            parse_proc_cgroup(b"1:cpu:relative\n"),
            None,
            "relative path"
        );
        assert_eq!(parse_proc_cgroup(b"garbage\n0::/\n"), None);
    }

    #[test]
    fn path_helpers() {
        assert!(has_path_prefix(b"/a/b", b"/"));
        assert!(has_path_prefix(b"/a/b", b"/a"));
        assert!(has_path_prefix(b"/a", b"/a"));
        assert!(!has_path_prefix(b"/ab", b"/a"));
        assert!(!has_path_prefix(b"/", b"/a"));
        assert!(!has_path_prefix(b"", b"/.."));
        assert_eq!(unescape(br"/a\040b").as_deref(), Some(&b"/a b"[..]));
        assert_eq!(unescape(br"\134\011").as_deref(), Some(&b"\\\t"[..]));
        assert_eq!(unescape(br"/a\04"), None, "short escape");
        assert_eq!(unescape(br"/a\089"), None, "non-octal digit");
        assert_eq!(unescape(br"\777"), None, "above 0xff");
    }

    #[test]
    fn mountinfo_matching() {
        let find = |mi: &str, v, cg: &str| {
            find_cgroup_dir(mi.as_bytes(), v, cg.as_bytes()).map(|d| String::from_utf8(d).unwrap())
        };
        // Root "/" keeps the whole cgroup path; cgroup "/" is the mount point itself.
        let mi = "32 31 0:29 / /sys/fs/cgroup/cpu rw shared:8 - cgroup cgroup rw,cpu\n";
        assert_eq!(
            find(mi, Version::V1, "/a/b").as_deref(),
            Some("/sys/fs/cgroup/cpu/a/b")
        );
        assert_eq!(
            find(mi, Version::V1, "/").as_deref(),
            Some("/sys/fs/cgroup/cpu")
        );
        assert_eq!(
            find(mi, Version::V2, "/a"),
            None,
            "v1 mount does not serve v2"
        );
        // Container without a cgroup namespace: the mount root is the container's cgroup.
        let mi =
            "1 0 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpuacct,cpu\n";
        let cpu_dir = "/sys/fs/cgroup/cpu,cpuacct";
        assert_eq!(
            find(mi, Version::V1, "/docker/abc").as_deref(),
            Some(cpu_dir)
        );
        assert_eq!(
            find(mi, Version::V1, "/docker/abc/sub").as_deref(),
            Some("/sys/fs/cgroup/cpu,cpuacct/sub")
        );
        assert_eq!(
            find(mi, Version::V1, "/docker/abcd"),
            None,
            "component boundary"
        );
        assert_eq!(find(mi, Version::V1, "/other"), None);
        // Outside the cgroup namespace.
        let mi = "1 0 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(find(mi, Version::V2, "/../../init"), None);
        assert_eq!(
            find(mi, Version::V2, "/..x").as_deref(),
            Some("/sys/fs/cgroup/..x")
        );
        // Escaped mount point and root; no optional fields; the first match wins.
        let mi = "\
bad line
1 0 0:23 /my\\040root /mnt/cg\\040two rw - cgroup2 none rw
2 0 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
";
        assert_eq!(
            find(mi, Version::V2, "/my root/x").as_deref(),
            Some("/mnt/cg two/x")
        );
        assert_eq!(
            find(mi, Version::V2, "/y").as_deref(),
            Some("/sys/fs/cgroup/y")
        );
        // Several optional fields; v1 "cpuacct" or "cpuset" alone is not "cpu".
        let mi = "\
1 0 0:30 / /c/acct rw shared:9 master:2 - cgroup cgroup rw,cpuacct
2 0 0:31 / /c/set rw shared:10 master:3 propagate_from:1 - cgroup cgroup rw,cpuset
3 0 0:29 / /c/cpu rw shared:8 master:1 - cgroup cgroup rw,cpu
";
        assert_eq!(find(mi, Version::V1, "/a").as_deref(), Some("/c/cpu/a"));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn v1_limit() {
        let f = v1("50000\n", "100000\n");
        let mut cpu = f.discover().expect("v1 cgroup");
        assert_eq!(cpu.version(), 1);
        assert_eq!(cpu.path(), f.root.join(V1_DIR));
        assert_eq!(cpu.read_limit(), Some(0.5));
        let f = v1("400000\n", "100000\n");
        assert_eq!(procs(&f, 8), 4);
        assert_eq!(procs(&f, 2), 2);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn v1_no_limit() {
        let f = v1("-1\n", "100000\n");
        assert_eq!(f.discover().unwrap().read_limit(), None);
        assert_eq!(procs(&f, 8), 8);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn v1_fractional_rounds_up() {
        let f = v1("150000\n", "100000\n");
        assert_eq!(f.discover().unwrap().read_limit(), Some(1.5));
        assert_eq!(procs(&f, 8), 2);
        let f = v1("250001\n", "100000\n");
        assert_eq!(procs(&f, 8), 3);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn v1_half_cpu_is_two() {
        assert_eq!(procs(&v1("50000\n", "100000\n"), 8), 2);
        assert_eq!(procs(&v1("1000\n", "100000\n"), 8), 2);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn v1_combined_cpu_cpuacct() {
        let proc_cgroup = "5:cpuacct,cpu:/kubepods/pod1/ctr\n3:memory:/kubepods/pod1/ctr\n";
        let mountinfo = "\
31 22 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
35 31 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpuacct,cpu
36 31 0:33 / /sys/fs/cgroup/memory rw,nosuid shared:16 - cgroup cgroup rw,memory
";
        let f = Fixture::new(proc_cgroup, mountinfo);
        let dir = "sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/ctr";
        f.write(&format!("{dir}/cpu.cfs_quota_us"), "300000\n");
        f.write(&format!("{dir}/cpu.cfs_period_us"), "100000\n");
        let mut cpu = f.discover().unwrap();
        assert_eq!((cpu.version(), cpu.path()), (1, f.root.join(dir).as_path()));
        assert_eq!(cpu.read_limit(), Some(3.0));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn v2_limit() {
        let f = v2("250000 100000\n");
        let mut cpu = f.discover().expect("v2 cgroup");
        assert_eq!(cpu.version(), 2);
        assert_eq!(cpu.path(), f.root.join(V2_DIR));
        assert_eq!(cpu.read_limit(), Some(2.5));
        assert_eq!(procs(&f, 8), 3);
        assert_eq!(procs(&v2("50000 100000\n"), 8), 2);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn v2_max_is_no_limit() {
        let f = v2("max 100000\n");
        assert_eq!(f.discover().unwrap().read_limit(), None);
        assert_eq!(procs(&f, 6), 6);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn v2_nested_leaf() {
        let f = Fixture::new("0::/a/b/c/leaf\n", V2_MOUNTINFO);
        f.write("sys/fs/cgroup/a/cpu.max", "100000 100000\n"); // parent: not read (caveat)
        f.write("sys/fs/cgroup/a/b/c/leaf/cpu.max", "800000 100000\n");
        let mut cpu = f.discover().unwrap();
        assert_eq!(cpu.path(), f.root.join("sys/fs/cgroup/a/b/c/leaf"));
        assert_eq!(cpu.read_limit(), Some(8.0));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn container_mount_root() {
        // Docker without a cgroup namespace: /proc/self/cgroup shows the host path, and the
        // container sees that cgroup mounted at the usual place.
        let f = Fixture::new(
            "4:cpu,cpuacct:/docker/abc123\n0::/\n",
            "900 800 0:29 /docker/abc123 /sys/fs/cgroup/cpu,cpuacct ro,nosuid master:11 - cgroup cpu rw,cpu,cpuacct\n",
        );
        f.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n");
        f.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        let mut cpu = f.discover().unwrap();
        assert_eq!(cpu.path(), f.root.join("sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(cpu.read_limit(), Some(2.0));

        // v2 with a cgroup namespace: both the path and the mount root are "/".
        let f = Fixture::new(
            "0::/\n",
            "1 0 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        );
        f.write("sys/fs/cgroup/cpu.max", "150000 100000\n");
        let mut cpu = f.discover().unwrap();
        assert_eq!(cpu.path(), f.root.join("sys/fs/cgroup"));
        assert_eq!(cpu.read_limit(), Some(1.5));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn escaped_mount_point() {
        let f = Fixture::new(
            "0::/job\n",
            "1 0 0:23 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n",
        );
        f.write("mnt/my cgroups/job/cpu.max", "300000 100000\n");
        let mut cpu = f.discover().unwrap();
        assert_eq!(cpu.path(), f.root.join("mnt/my cgroups/job"));
        assert_eq!(cpu.read_limit(), Some(3.0));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn hybrid_prefers_v1_cpu() {
        let proc_cgroup = "4:cpu,cpuacct:/user.slice\n1:name=systemd:/user.slice\n0::/user.slice\n";
        let mountinfo = "\
30 22 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
35 22 0:32 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
";
        let f = Fixture::new(proc_cgroup, mountinfo);
        f.write(
            "sys/fs/cgroup/unified/user.slice/cpu.max",
            "100000 100000\n",
        );
        f.write(
            "sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_quota_us",
            "-1\n",
        );
        f.write(
            "sys/fs/cgroup/cpu,cpuacct/user.slice/cpu.cfs_period_us",
            "100000\n",
        );
        let mut cpu = f.discover().unwrap();
        assert_eq!(cpu.version(), 1);
        assert_eq!(cpu.read_limit(), None);

        // Hybrid without the cpu controller on v1: the v2 hierarchy is used.
        let f = Fixture::new("1:name=systemd:/u\n0::/u\n", mountinfo);
        f.write("sys/fs/cgroup/unified/u/cpu.max", "100000 100000\n");
        let mut cpu = f.discover().unwrap();
        assert_eq!(cpu.version(), 2);
        assert_eq!(cpu.read_limit(), Some(1.0));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn missing_files() {
        // Limit files absent (e.g. the cpu controller is not enabled in this v2 subtree).
        assert!(Fixture::new(V2_PROC, V2_MOUNTINFO).discover().is_none());
        let f = Fixture::new(V1_CPU_PROC, V1_MOUNTINFO);
        f.write(&format!("{V1_DIR}/cpu.cfs_quota_us"), "50000\n");
        assert!(f.discover().is_none(), "period file missing");
        // No cgroup mount; no /proc files at all.
        let f = Fixture::new(V2_PROC, "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n");
        f.write(&format!("{V2_DIR}/cpu.max"), "50000 100000\n");
        assert!(f.discover().is_none());
        let empty = std::env::temp_dir().join(format!("gort-cgroup-none-{}", std::process::id()));
        assert!(CgroupCpu::discover_at(&empty).is_none());
        // Not in any cgroup with a cpu controller.
        assert!(Fixture::new("", V2_MOUNTINFO).discover().is_none());
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn garbage_content_is_no_limit() {
        for (quota, period) in [
            ("abc\n", "100000\n"),
            ("50000\n", "0\n"),
            ("50000\n", "-5\n"),
            ("50000\n", "\n"),
            ("", ""),
            ("99999999999999999999999\n", "100000\n"),
            ("1.5\n", "100000\n"),
        ] {
            let f = v1(quota, period);
            let mut cpu = f.discover().expect("files exist");
            assert_eq!(cpu.read_limit(), None, "{quota:?} / {period:?}");
            assert_eq!(procs(&f, 8), 8);
        }
        let long = "1".repeat(LIMIT_BUF);
        for cpu_max in [
            "",
            "max",
            "50000\n",
            "abc 100000\n",
            "50000 abc\n",
            "-5 100000\n",
            "50000 0\n",
            "50000 100000 7\n",
            "\u{fffd} 100000",
            long.as_str(),
        ] {
            let f = v2(cpu_max);
            assert_eq!(f.discover().unwrap().read_limit(), None, "{cpu_max:?}");
        }
        // Garbage in /proc itself.
        assert!(
            Fixture::new("\u{0}\u{1}garbage", V2_MOUNTINFO)
                .discover()
                .is_none()
        );
        let f = Fixture::new(V2_PROC, "\\\\\\ - - - \n\n- cgroup2\n");
        assert!(f.discover().is_none());
    }

    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn read_limit_rereads_open_files() {
        let f = v2("max 100000\n");
        let mut cpu = f.discover().unwrap();
        assert_eq!(cpu.read_limit(), None);
        // Rewrite in place (same inode, as cgroupfs does): the open file sees the new value.
        f.write(&format!("{V2_DIR}/cpu.max"), "350000 100000\n");
        assert_eq!(cpu.read_limit(), Some(3.5));
        assert_eq!(
            cpu.read_limit(),
            Some(3.5),
            "reads from offset 0 every time"
        );
        f.write(&format!("{V2_DIR}/cpu.max"), "max 100000\n");
        assert_eq!(cpu.read_limit(), None);

        let f = v1("-1\n", "100000\n");
        let mut cpu = f.discover().unwrap();
        assert_eq!(cpu.read_limit(), None);
        f.write(&format!("{V1_DIR}/cpu.cfs_quota_us"), "50000\n");
        f.write(&format!("{V1_DIR}/cpu.cfs_period_us"), "20000\n");
        assert_eq!(cpu.read_limit(), Some(2.5));
    }

    /// Discovery on the real machine agrees with an independent reading of `/proc/self/cgroup`.
    #[test]
    #[cfg_attr(miri, ignore)] // touches the filesystem / sched_getaffinity
    fn real_machine() {
        let affinity = affinity_cpus();
        assert!(affinity >= 1);
        let default = default_gomaxprocs();
        assert!(
            (1..=affinity).contains(&default),
            "{default} vs affinity {affinity}"
        );

        let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let has_v1_cpu = proc_cgroup.lines().any(|l| {
            let mut f = l.splitn(3, ':');
            f.next() != Some("0") && f.next().is_some_and(|c| c.split(',').any(|c| c == "cpu"))
        });
        let Some(mut cpu) = CgroupCpu::discover() else {
            // No CPU cgroup (or it is not mounted): the default is the affinity count.
            assert_eq!(default, affinity);
            return;
        };
        assert_eq!(cpu.version(), if has_v1_cpu { 1 } else { 2 });
        assert!(cpu.path().is_dir(), "{}", cpu.path().display());
        let limit = cpu.read_limit();
        assert_eq!(gomaxprocs_rule(affinity, limit), default);
        match limit {
            None => assert_eq!(default, affinity),
            Some(l) => {
                assert!(default >= 2.min(affinity) && default as f64 >= l.min(affinity as f64))
            }
        }
    }
}
