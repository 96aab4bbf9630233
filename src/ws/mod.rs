//! Sans-IO WebSocket (RFC 6455), server side: the opening handshake, frame decode and encode,
//! and message assembly under the RFC's rules and our bounds.
//!
//! Nothing here touches a socket or a clock. The connection owns a `BytesMut` read buffer and
//! calls [`MessageDecoder::decode`] until it yields a [`Message`] or `None` (need more bytes);
//! each whole frame is split off the front of the buffer and its payload unmasked in place, so
//! an unfragmented message is handed out without a copy. Every violation is a
//! [`ProtocolError`] that names the close code to answer with (1002 protocol, 1007 bad
//! UTF-8, 1009 too big); the connection then closes, and the decoder repeats the error.
//!
//! No extension is negotiated (a `permessage-deflate` offer is ignored, which Codex accepts), so
//! any RSV bit is an error. Bounds are decided from the frame header alone, before its payload
//! is buffered: a peer cannot make us hold more than [`Limits::max_frame`] plus one header.

mod frame;
mod handshake;
mod message;

#[cfg(test)]
mod prop_tests;

use std::fmt;

pub use frame::{
    apply_mask, encode_close, encode_frame, encode_masked_frame, parse_head, write_head, Frame,
    FrameDecoder, FrameHead, Opcode,
};
pub use handshake::{
    accept_key, check_headers, check_request, wants_upgrade, write_switching_protocols, AcceptKey,
    HandshakeError, ACCEPT_GUID,
};
pub use message::{CloseFrame, Message, MessageDecoder};

/// Largest payload of a control frame (ping, pong, close): RFC 6455 §5.5.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Longest frame header: 2 fixed bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Default bound on one frame's payload. Codex sends each `response.create` as a single frame
/// and resends the whole history after a reconnect, so a frame may be as large as a message;
/// this matches the default HTTP body bound (`server.max_body_bytes`).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 32 * 1024 * 1024;

/// Default bound on one assembled message (all its fragments): the default HTTP body bound,
/// since a message carries what a POST body would.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// Size bounds for reading; both answered with close code 1009 when exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of a single frame.
    pub max_frame: usize,
    /// Largest message, all fragments together.
    pub max_message: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: DEFAULT_MAX_FRAME_BYTES,
            max_message: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// Which end of the connection reads: a server requires masked frames (RFC 6455 §5.1), a
/// client requires unmasked ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We accepted the connection; the peer is a client and must mask.
    Server,
    /// We opened the connection; the peer is a server and must not mask.
    Client,
}

/// A close status code (RFC 6455 §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the server is going down or the client navigated away.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept (e.g. binary where only text is).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1007: data inconsistent with its type (a text message that is not UTF-8).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message that violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a frame or message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1013: try again later (overload).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// The code a peer put in a close frame, if it may be sent on the wire: 1000–1003 and
    /// 1007–1014 (defined or IANA-registered), 3000–4999 (libraries and applications).
    /// 1004–1006 and 1015 are reserved and never sent (§7.4.1); the rest is unassigned.
    pub fn from_wire(code: u16) -> Option<CloseCode> {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999).then_some(CloseCode(code))
    }

    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self.0
    }
}

/// Why a peer's bytes break RFC 6455 or our bounds. The connection answers with a close frame
/// carrying [`close_code`](Self::close_code) and then closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// An RSV bit is set, but no extension was negotiated.
    ReservedBits,
    /// An opcode RFC 6455 does not define (3–7, 0xB–0xF).
    UnknownOpcode(u8),
    /// A control frame without FIN: control frames must not be fragmented.
    FragmentedControl,
    /// A control frame whose payload exceeds [`MAX_CONTROL_PAYLOAD`].
    ControlTooLong,
    /// A client frame without a mask (read as a server).
    Unmasked,
    /// A server frame with a mask (read as a client).
    Masked,
    /// A 64-bit payload length with its top bit set.
    LengthOverflow,
    /// A frame payload above [`Limits::max_frame`].
    FrameTooLarge,
    /// A message (its fragments so far plus this frame) above [`Limits::max_message`].
    MessageTooLarge,
    /// A continuation frame while no fragmented message is in progress.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is still in progress.
    ExpectedContinuation,
    /// A text message that is not UTF-8 (detected at the first bad byte, across fragments).
    InvalidUtf8,
    /// A close payload of one byte: a code needs two.
    CloseTooShort,
    /// A close code that may not be sent on the wire (see [`CloseCode::from_wire`]).
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8.
    InvalidCloseReason,
}

impl ProtocolError {
    /// The close code to answer with: 1009 for a bound, 1007 for bad UTF-8, else 1002.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::FrameTooLarge | ProtocolError::MessageTooLarge => {
                CloseCode::MESSAGE_TOO_BIG
            }
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason => {
                CloseCode::INVALID_PAYLOAD
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBits => f.write_str("reserved bits set"),
            ProtocolError::UnknownOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            ProtocolError::FragmentedControl => f.write_str("fragmented control frame"),
            ProtocolError::ControlTooLong => f.write_str("control frame payload over 125 bytes"),
            ProtocolError::Unmasked => f.write_str("client frame not masked"),
            ProtocolError::Masked => f.write_str("server frame masked"),
            ProtocolError::LengthOverflow => f.write_str("payload length over 2^63"),
            ProtocolError::FrameTooLarge => f.write_str("frame too large"),
            ProtocolError::MessageTooLarge => f.write_str("message too large"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message before the fragmented one ended")
            }
            ProtocolError::InvalidUtf8 => f.write_str("text message is not UTF-8"),
            ProtocolError::CloseTooShort => f.write_str("close payload of one byte"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidCloseReason => f.write_str("close reason is not UTF-8"),
        }
    }
}

impl std::error::Error for ProtocolError {}
