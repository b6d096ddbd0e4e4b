//! A frame the hub sends to clients, built once and shared by every connection it goes to.
//!
//! A server never masks its frames (RFC 6455 §5.1), so the bytes of one text frame, header and payload,
//! are the same for every client: they are laid out once per event, in one buffer, and each subscriber's
//! queue holds a reference-counted handle to that buffer. A session then writes the bytes of several
//! queued frames to its socket in one vectored write, with no copy and no per-connection framing. The
//! header is laid out by the WebSocket library's own [`FrameHeader::format`].

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// One unmasked, final WebSocket text frame: header and payload in one shared buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header followed by the payload.
    wire: Bytes,
    /// Where the payload starts in `wire`.
    header_len: u8,
}

impl Frame {
    /// The text frame carrying `text`.
    pub fn text(text: &str) -> Self {
        let header = FrameHeader { is_final: true, opcode: OpCode::Data(Data::Text), ..FrameHeader::default() };
        let len = text.len() as u64;
        let header_len = header.len(len);
        let mut wire = Vec::with_capacity(header_len + text.len());
        // Writing to a Vec cannot fail.
        header.format(len, &mut wire).expect("a header formats into a Vec");
        wire.extend_from_slice(text.as_bytes());
        Frame { wire: Bytes::from(wire), header_len: header_len as u8 }
    }

    /// The whole frame as it goes on the wire.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The payload: the text the client reads.
    pub fn payload(&self) -> &[u8] {
        &self.wire[usize::from(self.header_len)..]
    }

    /// The payload as a WebSocket message's text, sharing the buffer (for sockets that take messages
    /// rather than bytes).
    pub fn to_text(&self) -> Utf8Bytes {
        // Built from a `&str` in `text`, so the payload is UTF-8; the check only runs off the fast path.
        Utf8Bytes::try_from(self.wire.slice(usize::from(self.header_len)..)).unwrap_or_default()
    }

    /// The payload's length in bytes (what the counters of bytes sent count).
    pub fn len(&self) -> usize {
        self.wire.len() - usize::from(self.header_len)
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Frame::text(&text)
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Frame::text(text)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

    use super::*;

    /// What the WebSocket library reads back from `wire`: its header, and the payload after it.
    fn read_back(wire: &[u8]) -> (FrameHeader, u64, Vec<u8>) {
        let mut cursor = Cursor::new(wire);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().expect("a whole header");
        let at = cursor.position() as usize;
        (header, len, wire[at..].to_vec())
    }

    #[test]
    fn every_length_encoding_reads_back_as_one_final_unmasked_text_frame() {
        // 7-bit, 16-bit and 64-bit lengths, at and around their limits.
        for size in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let text: String = "é".repeat(size / 2) + &"x".repeat(size % 2);
            let frame = Frame::text(&text);
            let (header, len, payload) = read_back(frame.wire());
            assert!(header.is_final, "{size}");
            assert_eq!(header.opcode, OpCode::Data(Data::Text), "{size}");
            assert_eq!(header.mask, None, "a server never masks ({size})");
            assert_eq!(len as usize, text.len());
            assert_eq!(payload, text.as_bytes());
            assert_eq!(frame.payload(), text.as_bytes());
            assert_eq!(frame.len(), text.len());
            assert_eq!(frame.to_text().as_str(), text);
        }
    }

    #[test]
    fn clones_share_one_buffer() {
        let a = Frame::text(r#"{"event":"e","channel":"c","data":"x"}"#);
        let b = a.clone();
        assert_eq!(a.wire().as_ptr(), b.wire().as_ptr());
        assert_eq!(a.to_text().as_str().as_ptr(), a.payload().as_ptr(), "the text view is not a copy either");
    }
}
