//! A source check for the one rule that keeps the runtime's own
//! thread-locals sound under goroutine migration (docs/design/soundness.md):
//! every access to a runtime `thread_local!` sits in a function marked
//! `#[inline(never)]`, so LLVM cannot compute the thread-local's address
//! once in a caller and reuse it after that caller's goroutine moved to
//! another M (llvm/llvm-project#98479). Functions that only ever run on an
//! M's own stack (g0) or on plain threads are listed with the reason.

use std::path::Path;

/// (file, function): accesses allowed without `#[inline(never)]`, and why.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "sched/m.rs",
        "m_main",
        "the M's thread body (g0): never runs on a goroutine",
    ),
    (
        "sched/mod.rs",
        "run_timers_of",
        "scheduler code on g0, sysmon or a plain thread",
    ),
    (
        "glocal.rs",
        "with",
        "the THREAD_LOCALS branch runs only off goroutines",
    ),
    (
        "sched/m.rs",
        "with_slot",
        "inlined only into #[inline(never)] callers: with_m and try_with_m (checked below)",
    ),
    (
        "sched/preempt.rs",
        "set_locks_inline",
        "inlined only into #[inline(never)] callers: set_locks and g::enter (checked below)",
    ),
    (
        "sched/g.rs",
        "set_current_inline",
        "inlined only into #[inline(never)] callers: clear_current and enter (checked below)",
    ),
    ("sched/preempt.rs", "register_m", "M start-up on g0"),
    ("sched/preempt.rs", "unregister_m", "M exit on g0"),
    (
        "sched/preempt.rs",
        "enter_section",
        "inlined only into #[inline(never)] callers: NoPreempt, and NoPreemptHere in \
         with_m/try_with_m (checked below)",
    ),
    ("sched/preempt.rs", "leave_section", "as enter_section"),
    (
        "sched/preempt.rs",
        "on_signal",
        "the signal handler: runs on the interrupted thread and never switches goroutines",
    ),
];

fn rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Names of the statics declared in `thread_local!` blocks of `src`.
fn tls_names(src: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in src.lines() {
        let t = line.trim();
        if t.starts_with("thread_local!") {
            inside = true;
            continue;
        }
        if inside {
            if t.starts_with('}') && !t.contains("static") {
                inside = false;
                continue;
            }
            if let Some(rest) = t.strip_prefix("static ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn runtime_thread_locals_are_read_only_in_inline_never_functions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/src");
    let mut paths = Vec::new();
    rs_files(&root, &mut paths);
    // (path relative to runtime/src, source)
    let files: Vec<(String, String)> = paths
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&root).unwrap().to_string_lossy();
            (rel.replace('\\', "/"), std::fs::read_to_string(f).unwrap())
        })
        .collect();
    let mut bad = Vec::new();
    let mut checked = 0;
    for (rel, src) in &files {
        let rel = rel.as_str();
        let names = tls_names(src);
        if names.is_empty() {
            continue;
        }
        let lines: Vec<&str> = src.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let hit = names.iter().any(|n| {
                [
                    ".with(",
                    ".with_borrow",
                    ".try_with(",
                    ".set(",
                    ".get()",
                    ".take()",
                    ".replace(",
                ]
                .iter()
                .any(|m| code.contains(&format!("{n}{m}")))
            });
            if !hit {
                continue;
            }
            checked += 1;
            // The enclosing function: the nearest `fn` line above.
            let Some(fl) = (0..=i).rev().find(|&j| {
                let t = lines[j].trim_start();
                (t.starts_with("fn ")
                    || t.starts_with("pub fn ")
                    || t.starts_with("pub(crate) fn ")
                    || t.starts_with("pub(super) fn ")
                    || t.starts_with("unsafe fn ")
                    || t.starts_with("pub(crate) unsafe fn ")
                    || t.starts_with("extern \"C\" fn "))
                    && !lines[j].contains("|")
            }) else {
                bad.push(format!("{rel}:{}: access outside any function", i + 1));
                continue;
            };
            let fname: String = lines[fl]
                .split("fn ")
                .nth(1)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // The attributes and doc comments directly above the `fn`.
            let attrs = lines[..fl]
                .iter()
                .rev()
                .take_while(|l| {
                    let t = l.trim_start();
                    t.starts_with("#[") || t.starts_with("//")
                })
                .any(|l| l.contains("#[inline(never)]"));
            let allowed = ALLOWED
                .iter()
                .any(|(file, func, _)| *file == rel && *func == fname);
            if !attrs && !allowed {
                bad.push(format!(
                    "{rel}:{}: `{fname}` touches a thread-local but is not #[inline(never)]",
                    i + 1
                ));
            }
        }
    }
    assert!(
        checked >= 10,
        "the scan found only {checked} accesses: is it broken?"
    );
    // `NoPreemptHere` inlines its thread-local accesses: only the two
    // non-switching `#[inline(never)]` functions of m.rs may use it.
    let mut users = 0;
    for (rel, src) in &files {
        let n = src.matches("NoPreemptHere::new()").count();
        if rel == "sched/preempt.rs" || n == 0 {
            continue;
        }
        if rel != "sched/m.rs" {
            bad.push(format!(
                "{rel}: uses NoPreemptHere (only with_m/try_with_m may)"
            ));
        }
        users += n;
    }
    let m = std::fs::read_to_string(root.join("sched/m.rs")).unwrap();
    for fname in ["fn with_m<", "fn try_with_m<"] {
        let at = m.find(fname).expect("with_m in m.rs");
        let head = &m[at.saturating_sub(120)..at];
        let body = &m[at..(at + 300).min(m.len())];
        assert!(
            head.contains("#[inline(never)]"),
            "{fname} lost #[inline(never)]"
        );
        assert!(
            body.contains("NoPreemptHere::new()"),
            "{fname} should use NoPreemptHere"
        );
        assert!(
            body.contains("with_slot(|"),
            "{fname} should reach MLOCAL through with_slot"
        );
    }
    // `with_slot` hands out the address of this thread's MLOCAL: only the
    // two callers checked above may use it.
    assert_eq!(
        m.matches("with_slot(").count(),
        2,
        "with_slot is called outside with_m/try_with_m"
    );
    assert_eq!(users, 2, "NoPreemptHere is used outside with_m/try_with_m");
    // The two inlined setters: called only from the #[inline(never)]
    // functions named in ALLOWED.
    for (needle, callers) in [
        ("set_locks_inline(", &["fn set_locks(", "fn enter("][..]),
        (
            "set_current_inline(",
            &["fn clear_current(", "fn enter("][..],
        ),
    ] {
        let mut calls = 0;
        for (rel, src) in &files {
            for (at, _) in src.match_indices(needle) {
                if src[..at].ends_with("fn ") {
                    continue; // the definition
                }
                calls += 1;
                // The enclosing function: the last `fn ` before the call.
                let head = &src[..at];
                let f = head.rfind("fn ").expect("call inside a function");
                let sig = &head[f..];
                let attrs = &head[head[..f].rfind("\n\n").unwrap_or(0)..f];
                if !callers.iter().any(|c| sig.starts_with(c))
                    || !attrs.contains("#[inline(never)]")
                {
                    bad.push(format!(
                        "{rel}: {needle}..) called outside {callers:?} or not #[inline(never)]"
                    ));
                }
            }
        }
        assert_eq!(calls, 2, "{needle}..) should have exactly two callers");
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
