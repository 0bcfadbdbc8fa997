//! Exhaustion is a clear fatal error, never a segfault: a child process
//! asks for more address space than exists and must die with Go's report.

use std::process::Command;

#[test]
#[cfg_attr(miri, ignore)]
fn unrecoverable_oom_prints_go_report_and_aborts() {
    if std::env::var_os("GORT_OOM_CHILD").is_some() {
        let heap = gort_alloc::Heap::new();
        let mut c = heap.new_mcache();
        let _ = c.alloc(24, true);
        let _ = c.alloc(1 << 47, true); // 128 TiB: cannot be reserved
        unreachable!("alloc returned");
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unrecoverable_oom_prints_go_report_and_aborts",
            "--nocapture",
        ])
        .env("GORT_OOM_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "aborted, not a segfault: {stderr}"
        );
    }
    assert!(
        stderr.contains("runtime: out of memory: cannot allocate 140737488355328-byte block"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fatal error: out of memory allocating 140737488355328 bytes"),
        "{stderr}"
    );
}
