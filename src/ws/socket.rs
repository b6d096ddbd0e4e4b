//! The socket under a session: what the session needs from it beyond sending and receiving messages.
//!
//! - [`ReadError`]: the WebSocket layer's read errors, classified by their type (not their text) into the
//!   ones the client must be told about (a frame that is not UTF-8, a frame too large) and the others.
//! - [`Linger`]: the end of the RFC 6455 closing handshake. Once the hub has sent its close frame, it
//!   reads and discards the client's input until the client's close frame, the end of the stream or a
//!   timeout, and only then lets the TCP connection go. Closing a socket whose input was not read makes
//!   the kernel send a reset, and a reset destroys the close frame still on its way to the client: a
//!   client that was still sending (a 2 MB frame, say) would see 1006 instead of the hub's code and
//!   reason.
//! - [`RawFrames`]: the byte stream under the WebSocket, for frames built in advance
//!   ([`crate::protocol::Frame`]): deliveries are written to it directly, several frames in one vectored
//!   write, once the WebSocket layer's own buffer is written out.
//! - [`Tracked`]: the byte stream under a real WebSocket, watched as it is read so that the frame
//!   boundaries are known even after the WebSocket library gave up on a frame halfway (it refuses an
//!   oversized frame from its header and leaves the payload unread, so the stream can no longer be read
//!   as frames). [`Linger`] for a real socket reads through it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::CapacityError;

/// A frame the WebSocket layer refused while reading it, which the client must be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A text frame that is not valid UTF-8 (1007).
    NotUtf8,
    /// A frame or message larger than the WebSocket layer accepts (1009).
    TooLarge {
        /// Its size, in bytes.
        size: usize,
        /// The most the layer accepts.
        max: usize,
    },
}

/// A read error of the WebSocket layer.
pub trait ReadError: std::fmt::Display {
    /// What to answer, when the error is about a frame the client sent rather than about the connection.
    fn refusal(&self) -> Option<Refusal>;
}

impl ReadError for WsError {
    fn refusal(&self) -> Option<Refusal> {
        match self {
            WsError::Utf8(_) => Some(Refusal::NotUtf8),
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                Some(Refusal::TooLarge { size: *size, max: *max_size })
            }
            _ => None,
        }
    }
}

/// The end of the closing handshake, after the hub's close frame has been sent.
pub trait Linger {
    /// Reads and discards input until the client's close frame or the end of the stream, at most
    /// `timeout`.
    fn linger(&mut self, timeout: Duration) -> impl Future<Output = ()> + Send;
}

/// A socket whose byte stream takes whole frames built in advance.
pub trait RawFrames {
    /// The byte stream.
    type Raw: AsyncWrite + Unpin;
    /// The byte stream, when there is one (a socket that takes only messages, as in tests, has none).
    /// Only whole frames may be written to it, and only after the WebSocket layer's buffer is flushed.
    fn raw(&mut self) -> Option<&mut Self::Raw>;
}

impl<T: AsyncRead + AsyncWrite + Unpin> RawFrames for WebSocketStream<Tracked<T>> {
    type Raw = Tracked<T>;

    fn raw(&mut self) -> Option<&mut Tracked<T>> {
        Some(self.get_mut())
    }
}

/// Where the reader is in the client's stream of frames.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Frames {
    /// The header of the frame being read, as far as it has come.
    header: [u8; 14],
    /// Bytes of `header` read so far.
    have: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// The current frame is a close frame.
    in_close: bool,
    /// A whole close frame has been read.
    close_read: bool,
}

impl Frames {
    /// The size of a header that starts with `b0 b1`.
    fn header_len(b1: u8) -> usize {
        let extended = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    /// Follows `bytes`, the next bytes of the stream.
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() || (self.payload_left == 0 && self.in_close) {
            if self.payload_left > 0 {
                let n = bytes.len().min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                self.payload_left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            if self.in_close {
                // The close frame's payload is all in.
                self.in_close = false;
                self.close_read = true;
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have < 2 || self.have < Self::header_len(self.header[1]) {
                continue;
            }
            let len = match self.header[1] & 0x7f {
                126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                127 => u64::from_be_bytes(self.header[2..10].try_into().unwrap_or([0xff; 8])),
                short => u64::from(short),
            };
            self.payload_left = len;
            self.in_close = self.header[0] & 0x0f == 0x8;
            self.have = 0;
        }
    }
}

/// A byte stream whose input is followed frame by frame as it is read (see the module docs).
#[derive(Debug)]
pub struct Tracked<T> {
    /// The connection.
    inner: T,
    /// Where its input is.
    frames: Frames,
}

impl<T> Tracked<T> {
    /// Follows the frames of `inner`'s input from its first byte.
    pub fn new(inner: T) -> Self {
        Tracked { inner, frames: Frames::default() }
    }

    /// Whether a whole close frame from the client has been read.
    fn close_read(&self) -> bool {
        self.frames.close_read
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = &buf.filled()[before..];
            self.frames.feed(read);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Linger for WebSocketStream<Tracked<T>> {
    async fn linger(&mut self, timeout: Duration) {
        // Read past the WebSocket layer, which may have given up on the stream: the tracker knows where
        // the frames are whatever that layer read.
        let io = self.get_mut();
        // On the heap, and only now: an array here would be part of every session's future, for its whole life.
        let mut scratch = vec![0u8; 8 * 1024];
        let _ = tokio::time::timeout(timeout, async {
            while !io.close_read() {
                match io.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame: `opcode`, with a payload of `len` bytes.
    fn frame(opcode: u8, len: usize) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.extend(std::iter::repeat_n(b'x', len));
        out
    }

    fn stream(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    #[test]
    fn a_close_frame_after_frames_of_every_length_is_found_whatever_the_chunks() {
        let bytes = stream(&[frame(1, 5), frame(1, 300), frame(2, 70_000), frame(8, 2)]);
        for chunk in [1, 2, 3, 7, 64, 4096, bytes.len()] {
            let mut frames = Frames::default();
            let mut read = 0;
            for piece in bytes.chunks(chunk) {
                assert!(!frames.close_read, "close found before its end (chunks of {chunk})");
                frames.feed(piece);
                read += piece.len();
            }
            assert_eq!(read, bytes.len());
            assert!(frames.close_read, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_close_frame_counts_only_once_its_payload_is_in() {
        let close = frame(8, 20);
        let mut frames = Frames::default();
        frames.feed(&close[..close.len() - 1]);
        assert!(!frames.close_read);
        frames.feed(&close[close.len() - 1..]);
        assert!(frames.close_read);
        let mut empty = Frames::default();
        empty.feed(&frame(8, 0));
        assert!(empty.close_read);
    }

    #[test]
    fn text_that_merely_looks_like_a_close_opcode_inside_a_payload_is_skipped() {
        // 0x88 is a close header byte; inside a payload it is just data.
        let mut data = frame(2, 10);
        let payload_start = data.len() - 10;
        data[payload_start..].fill(0x88);
        let mut frames = Frames::default();
        frames.feed(&data);
        assert!(!frames.close_read);
    }

    #[tokio::test]
    async fn after_refusing_a_frame_from_its_header_lingering_reads_on_to_the_clients_close() {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
        let (client, server) = tokio::io::duplex(1 << 16);
        let config = WebSocketConfig::default().max_frame_size(Some(1000)).max_message_size(Some(1000));
        let mut ws = WebSocketStream::from_raw_socket(Tracked::new(server), Role::Server, Some(config)).await;
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut client = client;
            // Far more than the duplex buffer: the writer only finishes if the server keeps reading.
            client.write_all(&stream(&[frame(1, 1 << 20), frame(8, 2)])).await.unwrap();
            client
        });
        let refused = ws.next().await.expect("an error").expect_err("the frame is refused");
        assert_eq!(refused.refusal(), Some(Refusal::TooLarge { size: 1 << 20, max: 1000 }));
        assert!(!ws.get_ref().close_read());
        ws.linger(Duration::from_secs(10)).await;
        assert!(ws.get_ref().close_read());
        writer.await.unwrap();
    }
}
