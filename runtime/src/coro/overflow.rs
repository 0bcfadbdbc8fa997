//! Stack-overflow detection: a SIGSEGV/SIGBUS handler on each M's
//! alternate signal stack.
//!
//! 1. [`install_handler`] (once per process) installs `on_fault` for SIGSEGV
//!    and SIGBUS with `SA_SIGINFO | SA_ONSTACK | SA_NODEFER`, remembering the
//!    previous actions (Rust's std installs its own guard-page handler at
//!    start-up; applications may have theirs).
//! 2. Every M calls [`AltStack::install`] so the handler has a stack to run
//!    on when the goroutine stack is exhausted.
//! 3. `on_fault` asks `stack::guard_hit(si_addr)` (atomics only). A hit
//!    prints `goroutine N: stack overflow (limit X bytes)` and
//!    `fatal error: stack overflow` with `write(2)` and aborts. Anything
//!    else is chained to the previous handler, or re-raised with the default
//!    action.
//!
//! Everything the handler does is async-signal-safe: no allocation, no
//! locks, no formatting machinery (numbers are rendered into a stack buffer).

use super::stack::guard_hit;
use crate::sched::g::current_goid;
use gort_alloc::sys::{self, OS_PAGE_SIZE};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Size of each M's alternate signal stack (Go uses 32 KiB; corosensei#15
/// advises ≥ 64 KiB for handlers that do real work).
const ALTSTACK_SIZE: usize = 64 * 1024;

static INSTALL: Once = Once::new();
/// Previous `sigaction`s for SIGSEGV and SIGBUS. Written once inside
/// `INSTALL` (before our handler can run), read by the handler.
static OLD_SEGV: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());
static OLD_BUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(std::ptr::null_mut());

/// Installs the overflow handler (idempotent).
pub(crate) fn install_handler() {
    INSTALL.call_once(|| {
        for (sig, slot) in [(libc::SIGSEGV, &OLD_SEGV), (libc::SIGBUS, &OLD_BUS)] {
            let old: &'static mut libc::sigaction =
                // SAFETY: `sigaction` is a plain C struct for which all-zero
                // bytes are a valid value.
                Box::leak(Box::new(unsafe { MaybeUninit::zeroed().assume_init() }));
            // SAFETY: as above.
            let mut new: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
            new.sa_sigaction = on_fault as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
            unsafe { libc::sigemptyset(&mut new.sa_mask) };
            // Publish the slot before the handler can observe a fault.
            slot.store(old, Ordering::Release); // Release: pairs with Acquire in on_fault
            // SAFETY: valid pointers to a new action and storage for the old.
            let rc = unsafe { libc::sigaction(sig, &new, old) };
            assert_eq!(rc, 0, "gort: sigaction({sig}) failed");
        }
    });
}

/// The handler. Async-signal-safe.
extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let info_ref = unsafe { &*info };
    // SAFETY: SIGSEGV/SIGBUS siginfo carries a fault address (`si_addr`).
    let addr = unsafe { info_ref.si_addr() } as usize;
    if let Some(limit) = guard_hit(addr) {
        let mut buf = [0u8; 160];
        let mut n = 0;
        let mut put = |s: &[u8]| {
            let k = s.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&s[..k]);
            n += k;
        };
        let mut num = [0u8; 20];
        put(b"goroutine ");
        put(render(current_goid(), &mut num));
        put(b": stack overflow (limit ");
        put(render(limit as u64, &mut num));
        put(b" bytes)\nfatal error: stack overflow\n");
        // SAFETY: write(2) is async-signal-safe; `buf[..n]` is initialised
        // memory of ours.
        unsafe { libc::write(2, buf.as_ptr().cast(), n) };
        // SAFETY: abort(3) is async-signal-safe.
        unsafe { libc::abort() };
    }
    chain(sig, info, ctx);
}

/// Passes a fault that is not ours to the previous handler.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let slot = if sig == libc::SIGBUS {
        &OLD_BUS
    } else {
        &OLD_SEGV
    };
    let old = slot.load(Ordering::Acquire); // Acquire: pairs with Release in install_handler
    // SAFETY: `old` is null or a leaked, initialised `sigaction` that is
    // never written after installation.
    let old = unsafe { old.as_ref() };
    let handler = old.map_or(libc::SIG_DFL, |o| o.sa_sigaction);
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction
        // runs again and the kernel kills the process with the signal.
        // SAFETY: all-zero bytes are a valid `sigaction`.
        let mut dfl: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
        dfl.sa_sigaction = libc::SIG_DFL;
        // SAFETY: a valid action; sigaction(2) is async-signal-safe.
        unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
        return;
    }
    if let Some(old) = old {
        // SAFETY: `old` is the action sigaction(2) returned when we
        // installed ours, and its handler is neither SIG_DFL nor SIG_IGN.
        unsafe { call_handler(old, sig, info, ctx) };
    }
}

/// Calls the handler of `old` (a previous action we replaced) with this
/// signal's arguments, in the form its flags say it takes.
///
/// # Safety
///
/// `old` must be an action returned by sigaction(2) whose `sa_sigaction`
/// is a real handler (not `SIG_DFL`/`SIG_IGN`), and the call must come from
/// a handler for the same signal.
pub(crate) unsafe fn call_handler(
    old: &libc::sigaction,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    let h = old.sa_sigaction;
    if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: installed as an SA_SIGINFO handler (caller's contract),
        // so this is its signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain (non-SA_SIGINFO) handler takes only the signal.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

/// Renders `v` in decimal into `buf`, returning the digits.
fn render(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// An M's alternate signal stack, installed for the life of the M.
#[derive(Debug)]
pub(crate) struct AltStack {
    mem: NonNull<u8>,
    old: libc::stack_t,
}

impl AltStack {
    /// Maps a guarded alternate stack and installs it on this thread.
    pub(crate) fn install() -> Result<AltStack, sys::SysError> {
        let total = ALTSTACK_SIZE + OS_PAGE_SIZE;
        let mem = sys::reserve(total)?;
        // SAFETY: the lowest page of our fresh mapping, holding nothing.
        if let Err(e) = unsafe { sys::guard(mem, OS_PAGE_SIZE) } {
            // SAFETY: the mapping is ours and unused.
            let _ = unsafe { sys::release(mem, total) };
            return Err(e);
        }
        let ss = libc::stack_t {
            // SAFETY: one page into our mapping: in bounds.
            ss_sp: unsafe { mem.as_ptr().add(OS_PAGE_SIZE) }.cast(),
            ss_flags: 0,
            ss_size: ALTSTACK_SIZE,
        };
        // SAFETY: all-zero is a valid stack_t to receive the old value.
        let mut old: libc::stack_t = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: `ss` describes memory we own for as long as it is
        // installed (until `Drop` restores `old`).
        let rc = unsafe { libc::sigaltstack(&ss, &mut old) };
        assert_eq!(rc, 0, "gort: sigaltstack failed");
        Ok(AltStack { mem, old })
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: restores the thread's previous alternate stack (or none);
        // afterwards nothing refers to our mapping.
        unsafe { libc::sigaltstack(&self.old, std::ptr::null_mut()) };
        // SAFETY: the mapping is ours and no longer installed.
        let _ = unsafe { sys::release(self.mem, ALTSTACK_SIZE + OS_PAGE_SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn render_numbers() {
        let mut b = [0u8; 20];
        assert_eq!(render(0, &mut b), b"0");
        assert_eq!(render(262144, &mut b), b"262144");
        assert_eq!(render(u64::MAX, &mut b), b"18446744073709551615");
    }
}
