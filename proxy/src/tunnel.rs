//! CONNECT tunnels: bytes move socket to socket inside the kernel with
//! splice(2) through a pipe, on two small threads per tunnel, instead of
//! being copied through the proxy's memory.

use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;

/// Pipe capacity asked for; the kernel may give less.
const CHUNK: usize = 1 << 20;

/// Copies until EOF from `src` to `dst`; returns the bytes moved. On EOF the
/// write side of `dst` is shut (half-close, as TCP peers expect).
fn pump(src: &TcpStream, dst: &TcpStream) -> std::io::Result<u64> {
    use rustix::pipe::{PipeFlags, SpliceFlags, splice};
    let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
    let _ = rustix::pipe::fcntl_setpipe_size(&w, CHUNK);
    let mut total = 0u64;
    loop {
        let n = match splice(src.as_fd(), None, &w, None, CHUNK, SpliceFlags::MOVE) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            let _ = dst.shutdown(Shutdown::Write);
            return Ok(total);
        }
        let mut left = n;
        while left > 0 {
            match splice(&r, None, dst.as_fd(), None, left, SpliceFlags::MOVE) {
                Ok(m) => left -= m,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        total += n as u64;
    }
}

/// Runs the tunnel on its own threads; `done(up, down)` is called once both
/// directions have ended. An error in one direction ends both.
pub(crate) fn spawn(
    client: TcpStream,
    upstream: TcpStream,
    done: Box<dyn FnOnce(u64, u64) + Send>,
) -> std::io::Result<()> {
    let (c2, u2) = (client.try_clone()?, upstream.try_clone()?);
    let builder = || std::thread::Builder::new().name("ws-tunnel".into()).stack_size(64 * 1024);
    builder().spawn(move || {
        let down = builder().spawn(move || {
            let r = pump(&u2, &c2);
            if r.is_err() {
                let _ = u2.shutdown(Shutdown::Both);
                let _ = c2.shutdown(Shutdown::Both);
            }
            r.unwrap_or(0)
        });
        let up = pump(&client, &upstream);
        if up.is_err() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
        let down = down.ok().and_then(|h| h.join().ok()).unwrap_or(0);
        done(up.unwrap_or(0), down);
    })?;
    Ok(())
}
