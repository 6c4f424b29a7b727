//! Status codes and the thread-local last error: every entry point returns a [`Status`], and on failure
//! leaves a message that `carve_last_error` returns until the next failing call on the same thread.
//! [`guard`] runs an entry point's body, turns its error into a status and catches panics so that none
//! crosses the C boundary.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Status codes of the C API (`carve_status` in carve.h; the numbers are part of the ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// A pointer was null, a string not UTF-8, an index out of range or an option unknown.
    InvalidArgument = 1,
    /// The model could not be read or imported.
    Load = 2,
    /// The model could not be compiled (target, code generator, pipeline).
    Compile = 3,
    /// The inputs do not fit the model (name, dtype, rank, dims, byte size).
    Input = 4,
    /// Running the model failed.
    Run = 5,
    /// An output buffer is too small; the output's shape and needed `byte_size` were written.
    BufferTooSmall = 6,
    /// carve panicked (a bug); the message says where.
    Panic = 7,
}

/// An error of one entry point: its status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct Error {
    /// The status returned to C.
    pub status: Status,
    /// The message `carve_last_error` returns.
    pub msg: String,
}

impl Error {
    /// An error with `status` and `msg`.
    pub fn new(status: Status, msg: impl Into<String>) -> Error {
        Error {
            status,
            msg: msg.into(),
        }
    }

    /// An [`Status::InvalidArgument`] error.
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::new(Status::InvalidArgument, msg)
    }
}

pub use carve::error_chain as chain;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `msg` as this thread's last error (interior NUL bytes are replaced).
pub fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\u{FFFD}")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// This thread's last error message (empty when no call failed yet).
pub fn last_error() -> String {
    LAST_ERROR.with(|e| e.borrow().to_string_lossy().into_owned())
}

/// A pointer to this thread's last error message, valid until the next failing call on this thread.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs an entry point's body: `Ok` → [`Status::Ok`]; an error or a panic → its status, with the
/// message recorded as the last error.
pub fn guard(f: impl FnOnce() -> Result<(), Error>) -> Status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Status::Ok,
        Ok(Err(e)) => {
            set_last_error(&e.msg);
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            set_last_error(&format!("internal error (carve panicked): {what}"));
            Status::Panic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_set_the_status_and_the_thread_local_message() {
        assert_eq!(guard(|| Ok(())), Status::Ok);
        let s = guard(|| Err(Error::new(Status::Input, "input 'x': dtype is i64")));
        assert_eq!(s, Status::Input);
        assert_eq!(last_error(), "input 'x': dtype is i64");
        // A success leaves the last error alone (C callers read it after a failure only).
        assert_eq!(guard(|| Ok(())), Status::Ok);
        assert_eq!(last_error(), "input 'x': dtype is i64");
        // Another thread has its own.
        let other = std::thread::spawn(|| {
            let before = last_error();
            let _ = guard(|| Err(Error::invalid("other thread")));
            (before, last_error())
        })
        .join()
        .unwrap();
        assert_eq!(other, (String::new(), "other thread".to_string()));
        assert_eq!(last_error(), "input 'x': dtype is i64");
    }

    #[test]
    fn panics_are_caught_and_reported() {
        let s = guard(|| panic!("boom at {}", 42));
        assert_eq!(s, Status::Panic);
        assert_eq!(last_error(), "internal error (carve panicked): boom at 42");
        let s = guard(|| std::panic::panic_any(7u32));
        assert_eq!(s, Status::Panic);
        assert!(
            last_error().contains("unknown panic payload"),
            "{}",
            last_error()
        );
    }

    #[test]
    fn nul_bytes_do_not_truncate_or_fail() {
        set_last_error("a\0b");
        assert_eq!(last_error(), "a\u{FFFD}b");
    }

    #[test]
    fn chains_join_sources_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&e), "outer: inner");
    }
}
