//! The TCP connection under every network remote (HTTP, HTTPS and SSH): libgit2's plain socket stream,
//! replaced through `git_stream_register(GIT_STREAM_STANDARD)` by this one, which does what libgit2's
//! does (connect and I/O timeouts, keep-alive) and sets `TCP_NODELAY`, which libgit2's does not.
//!
//! Why: libgit2 sends a push's `POST …/git-receive-pack` as the request head and then the body in
//! small chunked writes. Without `TCP_NODELAY`, Nagle's algorithm holds the first body bytes until the
//! head is acknowledged, and a server that delays its ACK (Linux does, 40 ms) makes every push wait
//! for it: 40 ms of the daemon's ≈ 75 ms from a registry push to a commit on the remote
//! (BENCHMARKS.md, "Where the push's 65 ms go"). git's own HTTP transport (curl) sets `TCP_NODELAY`.
//!
//! The stream keeps the memory layout of libgit2's `git_socket_stream` (its `streams/socket.h`):
//! libgit2's SSH transport takes the socket out of that structure to hand it to libssh2.
//!
//! Must not: encrypt (libgit2 wraps this stream in TLS for `https://`), speak to proxies (libgit2
//! connects to a proxy through this stream like to any host), or panic (a panic cannot cross the C
//! callbacks; every failure becomes a libgit2 error with the class `GIT_ERROR_NET`).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

/// `GIT_STREAM_VERSION` (include/git2/sys/stream.h).
const STREAM_VERSION: c_int = 1;
/// `GIT_STREAM_STANDARD`: the plain socket, under TLS and SSH alike.
const STREAM_STANDARD: c_int = 1;
/// libgit2's `GIT_TIMEOUT`: a read or write that timed out.
const TIMEOUT: isize = libgit2_sys::GIT_TIMEOUT as isize;
/// Keep-alive as libgit2 1.9 sets it: probes after 60 s idle, every 10 s, 3 unanswered end it.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 3;

/// The timeouts every stream gets, in milliseconds (connect, read/write); 0 is none.
static TIMEOUTS: OnceLock<(c_int, c_int)> = OnceLock::new();

/// libgit2's `git_stream`, version 1.
#[repr(C)]
struct RawStream {
    version: c_int,
    /// The bit fields `encrypted : 1, proxy_support : 1`, both clear: a plain socket that does not
    /// speak to proxies itself.
    flags: c_uint,
    timeout: c_int,
    connect_timeout: c_int,
    connect: Option<unsafe extern "C" fn(*mut RawStream) -> c_int>,
    certificate: Option<unsafe extern "C" fn(*mut *mut c_void, *mut RawStream) -> c_int>,
    set_proxy: Option<unsafe extern "C" fn(*mut RawStream, *const c_void) -> c_int>,
    read: Option<unsafe extern "C" fn(*mut RawStream, *mut c_void, usize) -> isize>,
    write: Option<unsafe extern "C" fn(*mut RawStream, *const c_char, usize, c_int) -> isize>,
    close: Option<unsafe extern "C" fn(*mut RawStream) -> c_int>,
    free: Option<unsafe extern "C" fn(*mut RawStream)>,
}

/// libgit2's `git_stream_registration`.
#[repr(C)]
struct Registration {
    version: c_int,
    init: Option<unsafe extern "C" fn(*mut *mut RawStream, *const c_char, *const c_char) -> c_int>,
    wrap: Option<unsafe extern "C" fn(*mut *mut RawStream, *mut RawStream, *const c_char) -> c_int>,
}

unsafe extern "C" {
    /// Part of libgit2's public API (include/git2/sys/stream.h), linked through `libgit2-sys`, which
    /// does not declare it.
    fn git_stream_register(kind: c_int, registration: *mut Registration) -> c_int;
}

/// One connection. The first four fields are libgit2's `git_socket_stream`.
#[repr(C)]
struct Stream {
    parent: RawStream,
    host: *const c_char,
    port: *const c_char,
    /// The socket's descriptor while connected, else -1 (`INVALID_SOCKET`).
    fd: RawFd,
    // Ours; libgit2 never reads past `fd`.
    owned_host: CString,
    owned_port: CString,
    socket: Option<Socket>,
}

/// Registers this stream for every connection libgit2 opens from now on, with `connect` and
/// `server` (read and write) timeouts in milliseconds (0: none), the values libgit2's own settings
/// got. The timeouts of the first call stay.
///
/// # Safety
/// libgit2's stream registry is a global: as for [`super::set_process_options`], no other thread
/// may be opening a connection meanwhile.
pub(super) unsafe fn register(connect: i32, server: i32) -> Result<(), git2::Error> {
    TIMEOUTS.get_or_init(|| (connect.max(0), server.max(0)));
    libgit2_sys::init();
    let mut registration = Registration {
        version: STREAM_VERSION,
        init: Some(init),
        wrap: None,
    };
    // SAFETY: libgit2 is initialized; it copies the registration, whose functions are `'static`.
    let code = unsafe { git_stream_register(STREAM_STANDARD, &mut registration) };
    if code < 0 {
        return Err(git2::Error::from_str(
            "libgit2 refused to register tagwatch's TCP stream",
        ));
    }
    Ok(())
}

/// Sets libgit2's last error (class `GIT_ERROR_NET`), which git2 turns into the operation's error.
fn set_error(message: &str) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: a NUL-terminated string that libgit2 copies.
    unsafe {
        libgit2_sys::git_error_set_str(libgit2_sys::GIT_ERROR_NET as c_int, message.as_ptr());
    }
}

fn milliseconds(value: c_int) -> Option<Duration> {
    (value > 0).then(|| Duration::from_millis(value.unsigned_abs().into()))
}

/// `git_stream_registration.init`: a stream for `host`:`port`, not connected yet.
unsafe extern "C" fn init(
    out: *mut *mut RawStream,
    host: *const c_char,
    port: *const c_char,
) -> c_int {
    if out.is_null() || host.is_null() || port.is_null() {
        set_error("no host or port to connect to");
        return -1;
    }
    // SAFETY: libgit2 passes NUL-terminated strings that live for the call; they are copied.
    let (owned_host, owned_port) = unsafe {
        (
            CStr::from_ptr(host).to_owned(),
            CStr::from_ptr(port).to_owned(),
        )
    };
    let (connect_timeout, timeout) = TIMEOUTS.get().copied().unwrap_or((0, 0));
    let mut stream = Box::new(Stream {
        parent: RawStream {
            version: STREAM_VERSION,
            flags: 0,
            timeout,
            connect_timeout,
            connect: Some(connect),
            certificate: None,
            set_proxy: None,
            read: Some(read),
            write: Some(write),
            close: Some(close),
            free: Some(free),
        },
        host: std::ptr::null(),
        port: std::ptr::null(),
        fd: -1,
        owned_host,
        owned_port,
        socket: None,
    });
    // The strings' buffers do not move with the box.
    stream.host = stream.owned_host.as_ptr();
    stream.port = stream.owned_port.as_ptr();
    // SAFETY: `out` is libgit2's non-null out-pointer; it owns the stream until it calls `free`.
    unsafe { *out = Box::into_raw(stream).cast::<RawStream>() };
    0
}

/// The stream behind libgit2's pointer.
///
/// # Safety
/// `raw` came from [`init`] and was not freed.
unsafe fn stream<'a>(raw: *mut RawStream) -> &'a mut Stream {
    // SAFETY: the caller's promise; `RawStream` is `Stream`'s first field (`repr(C)`).
    unsafe { &mut *raw.cast::<Stream>() }
}

unsafe extern "C" fn connect(raw: *mut RawStream) -> c_int {
    // SAFETY: libgit2 calls back with the stream `init` made.
    let stream = unsafe { stream(raw) };
    match open(stream) {
        Ok(socket) => {
            stream.fd = socket.as_raw_fd();
            stream.socket = Some(socket);
            0
        }
        Err(message) => {
            set_error(&message);
            -1
        }
    }
}

/// Resolves the host and connects to its addresses in turn, as libgit2 does: the first that answers
/// wins; a timeout ends the attempt (the next address would wait as long again).
fn open(stream: &Stream) -> Result<Socket, String> {
    let host = stream.owned_host.to_string_lossy();
    let port = stream.owned_port.to_string_lossy();
    let port: u16 = port
        .parse()
        .map_err(|_| format!("failed to resolve address for {host}: invalid port `{port}`"))?;
    let addresses: Vec<SocketAddr> = (host.as_ref(), port)
        .to_socket_addrs()
        .map_err(|error| format!("failed to resolve address for {host}: {error}"))?
        .collect();
    let mut last = format!("failed to resolve address for {host}: no address");
    for address in addresses {
        match connect_to(address, milliseconds(stream.parent.connect_timeout)) {
            Ok(socket) => {
                configure(&socket, milliseconds(stream.parent.timeout)).map_err(|error| {
                    format!("failed to configure the socket to {host}: {error}")
                })?;
                return Ok(socket);
            }
            Err(error) if matches!(error.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                return Err(format!("failed to connect to {host}: Operation timed out"));
            }
            Err(error) => last = format!("failed to connect to {host}: {error}"),
        }
    }
    Err(last)
}

fn connect_to(address: SocketAddr, timeout: Option<Duration>) -> std::io::Result<Socket> {
    // socket2 opens it close-on-exec.
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    socket.set_tcp_keepalive(&keepalive)?;
    match timeout {
        Some(timeout) => socket.connect_timeout(&address.into(), timeout)?,
        None => socket.connect(&address.into())?,
    }
    Ok(socket)
}

/// `TCP_NODELAY`, and the read and write timeout on the (blocking) socket: a read that waits longer
/// fails with `EAGAIN`, which [`transfer`] reports as libgit2's `GIT_TIMEOUT`. libssh2, which gets the
/// descriptor for SSH, waits out `EAGAIN` with its own session timeout (libgit2 sets the same).
fn configure(socket: &Socket, timeout: Option<Duration>) -> std::io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    socket.set_read_timeout(timeout)?;
    socket.set_write_timeout(timeout)
}

/// One read or write of libgit2's on the connected socket (`what`: "read from", "write to"): retried
/// when a signal interrupts it; the byte count, or libgit2's error code (`GIT_TIMEOUT` for a timeout,
/// -1 otherwise) with its error set. Callers pass at most `isize::MAX` bytes, so the count fits.
fn transfer(
    stream: &Stream,
    what: &str,
    mut operation: impl FnMut(&Socket) -> std::io::Result<usize>,
) -> isize {
    let Some(socket) = stream.socket.as_ref() else {
        set_error(&format!("could not {what} socket: not connected"));
        return -1;
    };
    loop {
        match operation(socket) {
            Ok(count) => return count as isize,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                set_error(&format!("could not {what} socket: timed out"));
                return TIMEOUT;
            }
            Err(error) => {
                set_error(&format!("could not {what} socket: {error}"));
                return -1;
            }
        }
    }
}

unsafe extern "C" fn read(raw: *mut RawStream, data: *mut c_void, len: usize) -> isize {
    // SAFETY: libgit2 calls back with the stream `init` made.
    let stream = unsafe { stream(raw) };
    let len = len.min(isize::MAX as usize);
    // SAFETY: libgit2's buffer of `len` bytes, possibly uninitialized, which `recv` only writes.
    let buffer = unsafe { std::slice::from_raw_parts_mut(data.cast::<MaybeUninit<u8>>(), len) };
    transfer(stream, "read from", |socket| socket.recv(buffer))
}

unsafe extern "C" fn write(
    raw: *mut RawStream,
    data: *const c_char,
    len: usize,
    flags: c_int,
) -> isize {
    // SAFETY: libgit2 calls back with the stream `init` made.
    let stream = unsafe { stream(raw) };
    if flags != 0 {
        set_error("could not write to socket: unsupported flags");
        return -1;
    }
    let len = len.min(isize::MAX as usize);
    // SAFETY: libgit2's `len` initialized bytes, alive for the call.
    let buffer = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
    // socket2 sends with `MSG_NOSIGNAL`: a closed peer is an error, not a SIGPIPE.
    transfer(stream, "write to", |socket| socket.send(buffer))
}

unsafe extern "C" fn close(raw: *mut RawStream) -> c_int {
    // SAFETY: libgit2 calls back with the stream `init` made.
    let stream = unsafe { stream(raw) };
    stream.fd = -1;
    drop(stream.socket.take());
    0
}

unsafe extern "C" fn free(raw: *mut RawStream) {
    if !raw.is_null() {
        // SAFETY: the box `init` leaked; libgit2 frees a stream once and uses it no more.
        drop(unsafe { Box::from_raw(raw.cast::<Stream>()) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    /// A stream made and connected the way libgit2 does it, with the timeouts given.
    fn connected(port: u16, timeouts: (c_int, c_int)) -> (*mut RawStream, c_int) {
        let host = CString::new("127.0.0.1").unwrap();
        let port = CString::new(port.to_string()).unwrap();
        let mut raw: *mut RawStream = std::ptr::null_mut();
        libgit2_sys::init();
        // SAFETY: valid strings and out-pointer, as libgit2 passes them.
        assert_eq!(unsafe { init(&mut raw, host.as_ptr(), port.as_ptr()) }, 0);
        // SAFETY: `raw` was just made by `init`.
        unsafe {
            (*raw).connect_timeout = timeouts.0;
            (*raw).timeout = timeouts.1;
            let code = connect(raw);
            (raw, code)
        }
    }

    /// A listener on a free loopback port and a stream connected to it with `timeouts`.
    fn connected_to_listener(timeouts: (c_int, c_int)) -> (TcpListener, *mut RawStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (raw, code) = connected(listener.local_addr().unwrap().port(), timeouts);
        assert_eq!(code, 0, "{}", last_error());
        (listener, raw)
    }

    fn last_error() -> String {
        git2::Error::last_error(-1).message().to_owned()
    }

    #[test]
    fn the_layout_is_libgit2s_socket_stream() {
        // git_stream: 4 ints, then 7 function pointers; git_socket_stream appends host, port, socket.
        let pointer = std::mem::size_of::<usize>();
        assert_eq!(std::mem::offset_of!(RawStream, connect), 16);
        assert_eq!(std::mem::size_of::<RawStream>(), 16 + 7 * pointer);
        assert_eq!(std::mem::offset_of!(Stream, host), 16 + 7 * pointer);
        assert_eq!(std::mem::offset_of!(Stream, port), 16 + 8 * pointer);
        assert_eq!(std::mem::offset_of!(Stream, fd), 16 + 9 * pointer);
    }

    #[test]
    fn a_connection_has_no_delay_and_carries_bytes_both_ways() {
        let (listener, raw) = connected_to_listener((1000, 5000));
        let port = listener.local_addr().unwrap().port();
        let (mut peer, _) = listener.accept().unwrap();
        // SAFETY: connected above, freed at the end.
        unsafe {
            let stream = stream(raw);
            let socket = stream.socket.as_ref().unwrap();
            assert!(socket.tcp_nodelay().unwrap());
            assert!(socket.keepalive().unwrap());
            assert_eq!(stream.fd, socket.as_raw_fd());
            assert_eq!(CStr::from_ptr(stream.host).to_str().unwrap(), "127.0.0.1");
            assert_eq!(
                CStr::from_ptr(stream.port).to_str().unwrap(),
                port.to_string()
            );

            let request = b"POST /git-receive-pack HTTP/1.1\r\n";
            let sent = write(raw, request.as_ptr().cast(), request.len(), 0);
            assert_eq!(sent, request.len() as isize);
            let mut received = vec![0u8; request.len()];
            peer.read_exact(&mut received).unwrap();
            assert_eq!(received, request);

            peer.write_all(b"HTTP/1.1 200 OK\r\n").unwrap();
            let mut answer = [0u8; 64];
            let count = read(raw, answer.as_mut_ptr().cast(), answer.len());
            assert_eq!(&answer[..count as usize], b"HTTP/1.1 200 OK\r\n");

            drop(peer);
            assert_eq!(
                read(raw, answer.as_mut_ptr().cast(), answer.len()),
                0,
                "end of stream"
            );
            assert_eq!(close(raw), 0);
            assert_eq!(stream.fd, -1);
            assert_eq!(read(raw, answer.as_mut_ptr().cast(), answer.len()), -1);
            free(raw);
        }
    }

    #[test]
    fn a_silent_peer_is_a_libgit2_timeout() {
        let (listener, raw) = connected_to_listener((1000, 20));
        let _peer = listener.accept().unwrap();
        let mut answer = [0u8; 16];
        // SAFETY: connected above, freed at the end.
        unsafe {
            assert_eq!(read(raw, answer.as_mut_ptr().cast(), answer.len()), TIMEOUT);
            assert_eq!(last_error(), "could not read from socket: timed out");
            free(raw);
        }
    }

    #[test]
    fn a_refused_connection_is_a_network_error_naming_the_host() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let (raw, code) = connected(port, (1000, 1000));
        assert_eq!(code, -1);
        let error = git2::Error::last_error(-1);
        assert_eq!(error.class(), git2::ErrorClass::Net);
        assert!(
            error
                .message()
                .starts_with("failed to connect to 127.0.0.1: "),
            "{}",
            error.message()
        );
        // SAFETY: made by `init`, never connected.
        unsafe {
            assert_eq!(stream(raw).fd, -1);
            free(raw);
        }
    }
}
