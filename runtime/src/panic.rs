//! The panic hook: a panic on a goroutine reports
//! `goroutine N panicked at <file:line:col>:` and the message, as Rust does
//! for threads (`thread 'x' panicked at …`). Panics on plain threads go to
//! the hook that was installed before ours.

use std::sync::Once;

static HOOK: Once = Once::new();

/// Installs the hook once per process, chaining to the previous one.
pub(crate) fn install() {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let id = crate::sched::g::current_goid();
            if id == 0 {
                return prev(info);
            }
            let msg = payload_str(info.payload());
            let loc = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_else(|| "<unknown>".into());
            let bt = std::backtrace::Backtrace::capture();
            let tail = match bt.status() {
                std::backtrace::BacktraceStatus::Captured => format!("stack backtrace:\n{bt}"),
                _ => {
                    "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
                        .to_string()
                }
            };
            eprintln!("goroutine {id} panicked at {loc}:\n{msg}\n{tail}");
        }));
    });
}

/// The message of a panic payload (`&str` or `String`), else a placeholder.
pub(crate) fn payload_str(p: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}
