//! [`TelnetStream`]: the tokio driver of the pure [`telnet::Telnet`] machine.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use telnet::{OptionState, Telnet, opt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Network bytes read from the transport per decoding step.
const READ_CHUNK: usize = 4096;
/// Data bytes accepted per `poll_write` call, at most.
const WRITE_CHUNK: usize = 4096;
/// Lower bound of the adaptive write chunk.
const MIN_WRITE_CHUNK: usize = 64;
/// Stop reading while this many encoded bytes wait for the transport: a peer
/// that sends negotiation requests but never reads our replies cannot make
/// us buffer without limit.
const WBUF_HIGH: usize = 8192;
/// Write-buffer capacity kept between writes (idle memory stays small).
const WBUF_KEEP: usize = 1024;
/// Data read while waiting for BINARY that is kept for the next reads.
const RDATA_CAP: usize = 16 * 1024;
/// Decode rounds per `poll_read` that yield no data before yielding to the
/// scheduler.
const MAX_ROUNDS: usize = 32;

/// A telnet connection over any byte transport: reading yields the peer's
/// data bytes (commands stripped, `IAC IAC` undoubled, NVT rules applied),
/// writing encodes our data.
///
/// Negotiation replies produced while reading are queued and written
/// opportunistically from `poll_read` (a non-blocking attempt) and always
/// before any data written afterwards. All methods are poll-based and keep
/// their state in the struct, so cancelling a read or a write at an `.await`
/// loses nothing.
///
/// Writes are encoded into a small internal buffer; a `poll_write` returns
/// `Ready(n)` only once the encoding of those `n` bytes has started on the
/// transport, so at most one byte (the second half of an escape such as
/// `IAC IAC` or `CR NUL`) can be left behind. It is sent by the next read,
/// write or flush; flush when you need certainty.
#[derive(Debug)]
pub struct TelnetStream<S> {
    inner: S,
    machine: Telnet,
    /// Encoded bytes not yet accepted by `inner`.
    wbuf: Vec<u8>,
    /// Decoded data read while waiting for a negotiation; delivered first.
    rdata: Vec<u8>,
    eof: bool,
    /// A write error met during an opportunistic flush, reported by the next
    /// write or flush.
    write_error: Option<io::Error>,
    /// The task of a pending write. The transport keeps one write waker, and
    /// a flush attempt from the read side replaces it, so the read side wakes
    /// this one after each attempt (matters when the stream is shared by a
    /// reader task and a writer task, e.g. through `tokio::io::split`).
    write_waker: Option<Waker>,
    /// The task of a read that waits for the write buffer to drain.
    read_waker: Option<Waker>,
    /// Data bytes to encode per write: shrinks to what the transport took
    /// after a partial write (so a slow transport does not make us encode
    /// and discard a full chunk each time), grows back after full writes.
    write_chunk: usize,
}

impl<S> TelnetStream<S> {
    /// Wrap a transport; nothing is sent until [`TelnetStream::start`] or the
    /// first write.
    pub fn new(inner: S) -> Self {
        Self::with_machine(inner, Telnet::server())
    }

    /// Wrap a transport with a given machine (e.g. [`Telnet::client`]).
    pub fn with_machine(inner: S, machine: Telnet) -> Self {
        TelnetStream {
            inner,
            machine,
            wbuf: Vec::new(),
            rdata: Vec::new(),
            eof: false,
            write_error: None,
            write_waker: None,
            read_waker: None,
            write_chunk: WRITE_CHUNK,
        }
    }

    /// Queue the server's opening negotiation (`WILL ECHO`, `WILL SGA`,
    /// `DO SGA`). It goes out before any data, on the next write, flush or
    /// read.
    pub fn start(&mut self) {
        self.machine.initial_negotiation();
    }

    /// Queue `WILL BINARY` and `DO BINARY` (e.g. before PPP). Use
    /// [`TelnetStream::wait_binary`] to send them and wait for the answers.
    pub fn request_binary(&mut self) {
        self.machine.request_binary();
    }

    /// BINARY is in force in both directions.
    pub fn binary_both_ways(&self) -> bool {
        self.machine.binary_both_ways()
    }

    /// The telnet machine (option states, statistics).
    pub fn machine(&self) -> &Telnet {
        &self.machine
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The transport, mutably. Writing to it directly bypasses telnet
    /// encoding.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Bytes currently held in internal buffers (capacity, not length), for
    /// memory accounting and tests.
    pub fn buffered_capacity(&self) -> usize {
        self.wbuf.capacity() + self.rdata.capacity() + self.machine.pending_output_len()
    }

    /// Drop the telnet layer and return the transport. Unsent bytes are lost;
    /// flush first.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn binary_settled(&self) -> bool {
        let settled = |s: OptionState| matches!(s, OptionState::Yes | OptionState::No);
        settled(self.machine.local_state(opt::BINARY))
            && settled(self.machine.remote_state(opt::BINARY))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TelnetStream<S> {
    /// Send what is queued and wait (at most `timeout`) until both sides of
    /// BINARY are settled; returns whether BINARY is on both ways. Data the
    /// peer sends meanwhile is kept (up to 16 KiB) for the next reads. EOF
    /// ends the wait with `false`; the next read then returns EOF.
    /// Cancel-safe.
    pub async fn wait_binary(&mut self, timeout: Duration) -> io::Result<bool> {
        let waited = tokio::time::timeout(timeout, poll_fn(|cx| self.poll_settle(cx))).await;
        match waited {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) | Err(_) => Ok(self.binary_both_ways()),
        }
    }

    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        for _ in 0..MAX_ROUNDS {
            self.flush_opportunistic(cx);
            if let Some(e) = self.write_error.take() {
                return Poll::Ready(Err(e));
            }
            if self.binary_settled() || self.eof {
                return Poll::Ready(Ok(()));
            }
            if self.rdata.len() >= RDATA_CAP || self.wbuf.len() > WBUF_HIGH {
                // Nothing more can be buffered: wait for a writer to drain
                // the replies, or for the caller's timeout.
                self.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let mut tmp = [0u8; 1024];
            let room = (RDATA_CAP - self.rdata.len()).min(tmp.len());
            let got = {
                let mut rb = ReadBuf::new(&mut tmp[..room]);
                ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
                rb.filled().len()
            };
            if got == 0 {
                self.eof = true;
                continue;
            }
            let n = self.machine.receive_in_place(&mut tmp[..got]);
            self.rdata.extend_from_slice(&tmp[..n]);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Write `wbuf` (after the machine's pending output) until empty.
    fn poll_write_wbuf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.machine.drain_output_into(&mut self.wbuf);
        while !self.wbuf.is_empty() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.wbuf)) {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "telnet transport accepted no bytes",
                    )));
                }
                Ok(n) => {
                    self.wbuf.drain(..n.min(self.wbuf.len()));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if self.wbuf.capacity() > WBUF_KEEP {
            self.wbuf = Vec::new();
        }
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }

    /// Try to send queued negotiation without blocking. A write error is
    /// kept for the writer; the unsendable bytes are dropped (the transport
    /// is broken).
    fn flush_opportunistic(&mut self, cx: &mut Context<'_>) {
        if self.wbuf.is_empty() && !self.machine.has_output() {
            return;
        }
        if let Poll::Ready(Err(e)) = self.poll_write_wbuf(cx) {
            self.wbuf = Vec::new();
            if self.write_error.is_none() {
                self.write_error = Some(e);
            }
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }

    /// Remember the writer's task when a write-side poll is pending.
    fn pending_write<T>(&mut self, cx: &Context<'_>) -> Poll<T> {
        self.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn take_write_error(&mut self) -> io::Result<()> {
        match self.write_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TelnetStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        for _ in 0..MAX_ROUNDS {
            this.flush_opportunistic(cx);
            if !this.rdata.is_empty() {
                let n = this.rdata.len().min(buf.remaining());
                buf.put_slice(&this.rdata[..n]);
                this.rdata.drain(..n);
                if this.rdata.is_empty() {
                    this.rdata = Vec::new();
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.wbuf.len() > WBUF_HIGH {
                // Back-pressure: the peer does not read our replies. The
                // failed write attempt registered our waker with the
                // transport, and a writer that drains the buffer wakes us.
                this.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let want = buf.remaining().min(READ_CHUNK);
            let dst = buf.initialize_unfilled_to(want);
            let got = {
                let mut rb = ReadBuf::new(&mut dst[..want]);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                rb.filled().len()
            };
            if got == 0 {
                this.eof = true;
                return Poll::Ready(Ok(()));
            }
            // Decoding never lengthens the bytes, so it is done in place.
            let n = this.machine.receive_in_place(&mut dst[..got]);
            buf.advance(n);
            if n > 0 {
                this.flush_opportunistic(cx);
                return Poll::Ready(Ok(()));
            }
        }
        // Only commands for a while: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TelnetStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.take_write_error()?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Earlier bytes (negotiation, a leftover escape half) go first.
        match this.poll_write_wbuf(cx) {
            Poll::Ready(r) => r?,
            Poll::Pending => return this.pending_write(cx),
        }
        let chunk = &buf[..buf.len().min(this.write_chunk)];
        this.machine.send_into(chunk, &mut this.wbuf);
        let mut written = 0;
        let mut error = None;
        while written < this.wbuf.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &this.wbuf[written..]) {
                Poll::Ready(Ok(0)) => {
                    error = Some(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "telnet transport accepted no bytes",
                    ));
                    break;
                }
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => {
                    error = Some(e);
                    break;
                }
                Poll::Pending => break,
            }
        }
        if written == 0 {
            // Nothing went out: forget the encoding, the caller retries with
            // the same bytes (encoding has no side effects on the machine).
            this.wbuf.clear();
            return match error {
                Some(e) => Poll::Ready(Err(e)),
                None => this.pending_write(cx),
            };
        }
        let written = written.min(this.wbuf.len());
        this.write_chunk = if written < this.wbuf.len() {
            written.clamp(MIN_WRITE_CHUNK, WRITE_CHUNK)
        } else {
            (this.write_chunk * 2).min(WRITE_CHUNK)
        };
        let (consumed, tail) = this.machine.split_written(chunk, written);
        this.wbuf.truncate(written + tail);
        this.wbuf.drain(..written);
        Poll::Ready(Ok(consumed))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.take_write_error()?;
        match this.poll_write_wbuf(cx) {
            Poll::Ready(r) => r?,
            Poll::Pending => return this.pending_write(cx),
        }
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.pending_write(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.take_write_error()?;
        match this.poll_write_wbuf(cx) {
            Poll::Ready(r) => r?,
            Poll::Pending => return this.pending_write(cx),
        }
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.pending_write(cx),
            ready => ready,
        }
    }
}
