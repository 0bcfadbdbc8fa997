//! Failure vocabulary (docs/HACKING.md): `fatal!` is an unrecoverable user or
//! environment error (Go's `fatal`): print the message and exit with status
//! 2, as Go does. `throw!` is a runtime bug: print `fatal error:` with the
//! detail and abort. Neither unwinds.
#![forbid(unsafe_code)]

/// Prints a fatal error to stderr and exits the process with status 2.
#[macro_export]
#[doc(hidden)]
macro_rules! fatal {
    ($($arg:tt)*) => {
        $crate::fatal::fatal_exit(format_args!($($arg)*))
    };
}

/// Prints `fatal error: <msg>` (a runtime bug) and aborts.
#[macro_export]
#[doc(hidden)]
macro_rules! throw {
    ($($arg:tt)*) => {
        $crate::fatal::throw_abort(format_args!($($arg)*))
    };
}

#[doc(hidden)]
#[cold]
pub fn fatal_exit(args: std::fmt::Arguments<'_>) -> ! {
    use std::io::Write;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{args}");
    let _ = e.flush();
    std::process::exit(2)
}

#[doc(hidden)]
#[cold]
pub fn throw_abort(args: std::fmt::Arguments<'_>) -> ! {
    use std::io::Write;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "fatal error: {args}");
    let _ = e.flush();
    std::process::abort()
}
