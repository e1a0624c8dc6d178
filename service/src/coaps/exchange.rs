//! CoAP message layer of one DTLS session, sans I/O (RFC 7252 §4, §5; RFC 7959): requests in,
//! [`Action`]s out. Confirmable requests get a piggybacked answer, or an empty ACK and then a
//! separate confirmable answer when the application is slow (§5.2.2); a duplicate message ID
//! gets the answer already sent (§4.5); Block1 bodies are reassembled up to a limit (4.13
//! with Size1 beyond it, RFC 7959 §2.9.3), large answers go out in Block2 blocks with Size2
//! (RFC 7959 §2.2, §4). Framing is `coap-lite`'s; block options, Size1/Size2 and the
//! exchange rules are here.

use super::{Method, Request, Response};
use brski_common::answer::{Class, CoapCode};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Option numbers (RFC 7252 §12.2, RFC 7959 §6).
pub(crate) mod opt {
    pub const IF_MATCH: u16 = 1;
    pub const URI_HOST: u16 = 3;
    pub const ETAG: u16 = 4;
    pub const IF_NONE_MATCH: u16 = 5;
    pub const OBSERVE: u16 = 6;
    pub const URI_PORT: u16 = 7;
    pub const URI_PATH: u16 = 11;
    /// draft-ietf-core-uri-path-abbrev: critical, one uint standing for a whole path (the
    /// draft's proposed number, CPA13, until IANA assigns it).
    pub const URI_PATH_ABBREV: u16 = 13;
    pub const CONTENT_FORMAT: u16 = 12;
    pub const MAX_AGE: u16 = 14;
    pub const URI_QUERY: u16 = 15;
    pub const ACCEPT: u16 = 17;
    pub const BLOCK2: u16 = 23;
    pub const BLOCK1: u16 = 27;
    pub const SIZE2: u16 = 28;
    pub const SIZE1: u16 = 60;
    /// RFC 7967: elective, ignored.
    pub const NO_RESPONSE: u16 = 258;
}

/// RFC 7252 §4.8.2: how long a message ID stays a duplicate of an earlier one.
const EXCHANGE_LIFETIME: Duration = Duration::from_secs(247);
/// RFC 7252 §4.8: ACK_TIMEOUT, the first retransmission interval of a separate answer.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// RFC 7252 §4.8: MAX_RETRANSMIT.
pub(crate) const MAX_RETRANSMIT: u32 = 4;
/// An answer not ready within this time is preceded by an empty ACK (RFC 7252 §5.2.2), well
/// before the client's ACK_TIMEOUT makes it retransmit.
const EMPTY_ACK_AFTER: Duration = Duration::from_millis(500);
/// Message IDs remembered for deduplication per session.
const MAX_REMEMBERED: usize = 64;
/// A Block1 transfer not continued within this time is dropped.
const BLOCK1_IDLE: Duration = Duration::from_secs(60);
/// Largest diagnostic payload of an error answer (RFC 7252 §5.5.2).
const MAX_DIAGNOSTIC: usize = 160;

/// 2.31 Continue (RFC 7959 §2.9.1): a Block1 block was received, send the next.
pub const CONTINUE: CoapCode = CoapCode::new(2, 31);
/// 4.02 Bad Option (RFC 7252 §5.9.2.3): an unrecognised critical option.
pub const BAD_OPTION: CoapCode = CoapCode::new(4, 2);
/// 4.08 Request Entity Incomplete (RFC 7959 §2.9.2).
pub const REQUEST_ENTITY_INCOMPLETE: CoapCode = CoapCode::new(4, 8);

/// What the session does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this CoAP message.
    Send(Vec<u8>),
    /// Hand this request to the application; its answer comes back with the same id to
    /// [`Exchange::on_response`].
    Dispatch(u64, Request),
    /// End the session once what came before is sent ([`Response::close`]).
    Close,
}

/// The exchange layer's limits.
#[derive(Clone, Copy, Debug)]
pub struct ExchangeLimits {
    /// Largest request body (after Block1 reassembly); 4.13 beyond it.
    pub max_body: usize,
    /// Largest block this server sends or asks for, in bytes (16 … 1024, a power of two).
    pub block_size: usize,
    /// Requests of one session handed to the application at once.
    pub max_in_flight: usize,
}

impl Default for ExchangeLimits {
    /// The HTTPS server's body limit ([`crate::https::Limits`]), 512-byte blocks, four
    /// requests at once.
    fn default() -> Self {
        Self {
            max_body: crate::https::Limits::default().max_body,
            block_size: 512,
            max_in_flight: 4,
        }
    }
}

/// A Block1 or Block2 option value (RFC 7959 §2.2): block number, more flag, size exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub num: u32,
    pub more: bool,
    pub szx: u8,
}

impl Block {
    /// The block size, 2^(szx+4).
    pub fn size(self) -> usize {
        1usize << (u32::from(self.szx.min(6)) + 4)
    }

    /// RFC 7959 §2.2: a uint of 0–3 bytes; szx 7 is reserved (`None`).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let v = uint(bytes)?;
        if bytes.len() > 3 {
            return None;
        }
        let szx = (v & 0x7) as u8;
        if szx == 7 {
            return None;
        }
        Some(Self {
            num: v >> 4,
            more: v & 0x8 != 0,
            szx,
        })
    }

    pub fn encode(self) -> Vec<u8> {
        encode_uint((self.num << 4) | (u32::from(self.more) << 3) | u32::from(self.szx))
    }

    /// The size exponent of `size` bytes (a power of two from 16 to 1024).
    pub fn szx_of(size: usize) -> u8 {
        let mut szx = 0u8;
        while szx < 6 && (16usize << (szx + 1)) <= size {
            szx += 1;
        }
        szx
    }
}

/// An option's uint value (RFC 7252 §3.2), at most 4 bytes.
pub(crate) fn uint(bytes: &[u8]) -> Option<u32> {
    if bytes.len() > 4 {
        return None;
    }
    Some(bytes.iter().fold(0u32, |v, b| (v << 8) | u32::from(*b)))
}

/// A uint in the fewest bytes (0 is empty).
pub(crate) fn encode_uint(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

/// What a remembered message ID was answered with.
#[derive(Clone, Debug)]
enum Seen {
    /// The application is still at it (call id).
    InProgress(u64),
    /// This message (a piggybacked answer or an empty ACK) went back.
    Answered(Vec<u8>),
    /// A NON request answered separately: nothing to resend.
    Quiet,
}

/// A request handed to the application.
#[derive(Debug)]
struct Call {
    mid: u16,
    token: Vec<u8>,
    confirmable: bool,
    started: Instant,
    /// An empty ACK went back; the answer is a separate CON.
    acked: bool,
    /// The Block1 option to echo in the answer (RFC 7959 §2.3).
    block1: Option<Block>,
    /// The block of the answer the client asked for, if it did (RFC 7959 §2.4).
    block2: Option<Block>,
    /// Method and path: the key of the answer's blocks.
    key: (u8, Vec<String>),
}

/// A separate CON answer awaiting its ACK (RFC 7252 §4.2).
#[derive(Debug)]
struct Outgoing {
    mid: u16,
    bytes: Vec<u8>,
    attempts: u32,
    next: Instant,
}

/// A Block1 body being received.
#[derive(Debug)]
struct Upload {
    key: (u8, Vec<String>),
    body: Vec<u8>,
    next_num: u32,
    touched: Instant,
}

/// An answer too large for one message, kept for the client's next Block2 requests.
#[derive(Debug)]
struct Download {
    key: (u8, Vec<String>),
    response: Response,
    touched: Instant,
}

/// The CoAP state of one session.
#[derive(Debug)]
pub struct Exchange {
    limits: ExchangeLimits,
    seen: VecDeque<(u16, Instant, Seen)>,
    calls: Vec<(u64, Call)>,
    outgoing: Vec<Outgoing>,
    upload: Option<Upload>,
    download: Option<Download>,
    next_call: u64,
    next_mid: u16,
}

impl Exchange {
    pub fn new(limits: ExchangeLimits, first_mid: u16) -> Self {
        Self {
            limits,
            seen: VecDeque::new(),
            calls: Vec::new(),
            outgoing: Vec::new(),
            upload: None,
            download: None,
            next_call: 0,
            next_mid: first_mid,
        }
    }

    /// Requests with the application now.
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// Separate answers not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.outgoing.len()
    }

    /// When [`Exchange::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let acks = self
            .calls
            .iter()
            .filter(|(_, c)| c.confirmable && !c.acked)
            .map(|(_, c)| c.started + EMPTY_ACK_AFTER);
        let resends = self.outgoing.iter().map(|o| o.next);
        acks.chain(resends).min()
    }

    /// One CoAP message from the peer.
    pub fn on_message(&mut self, bytes: &[u8], now: Instant) -> Vec<Action> {
        self.expire(now);
        let Ok(packet) = Packet::from_bytes(bytes) else {
            // RFC 7252 §4.2, §4.3: a message that cannot be parsed is rejected (RST) when its
            // header can be read, otherwise silently ignored.
            return match header_mid(bytes) {
                Some((mid, MessageType::Confirmable)) => vec![Action::Send(reset(mid))],
                _ => Vec::new(),
            };
        };
        let mid = packet.header.message_id;
        let kind = packet.header.get_type();
        match (kind, packet.header.code) {
            (MessageType::Acknowledgement | MessageType::Reset, _) => {
                self.outgoing.retain(|o| o.mid != mid);
                Vec::new()
            }
            // RFC 7252 §4.3: a CON ping (empty message) gets a RST.
            (MessageType::Confirmable, MessageClass::Empty) => vec![Action::Send(reset(mid))],
            (_, MessageClass::Request(_)) => self.on_request(&packet, now),
            (MessageType::Confirmable, _) => vec![Action::Send(reset(mid))],
            _ => Vec::new(),
        }
    }

    fn on_request(&mut self, packet: &Packet, now: Instant) -> Vec<Action> {
        let mid = packet.header.message_id;
        let confirmable = packet.header.get_type() == MessageType::Confirmable;
        // RFC 7252 §4.5: a duplicate gets what the first one got.
        if let Some((_, _, seen)) = self.seen.iter().find(|(m, ..)| *m == mid) {
            return match seen.clone() {
                Seen::Answered(bytes) => vec![Action::Send(bytes)],
                Seen::InProgress(id) if confirmable => {
                    // The client retransmitted while the application works: acknowledge now
                    // and answer separately.
                    if let Some((_, call)) = self.calls.iter_mut().find(|(i, _)| *i == id) {
                        call.acked = true;
                    }
                    let ack = empty_ack(mid);
                    self.remember(mid, now, Seen::Answered(ack.clone()));
                    vec![Action::Send(ack)]
                }
                _ => Vec::new(),
            };
        }
        let token = packet.get_token().to_vec();
        let reply = |code: CoapCode, diagnostic: &str| {
            let response = Response::diagnostic(code, diagnostic);
            (code, response)
        };
        let parsed = match parse_request(packet) {
            Ok(p) => p,
            Err((code, why)) => {
                let (_, response) = reply(code, &why);
                return self.answer_now(mid, confirmable, &token, response, None, None, now);
            }
        };
        let key = (u8::from(packet.header.code), parsed.request.path.clone());

        // A later block of an answer kept for this request (RFC 7959 §2.4).
        if let Some(b2) = parsed.block2.filter(|b| b.num > 0) {
            if let Some(d) = self.download.as_mut().filter(|d| d.key == key) {
                d.touched = now;
                let response = d.response.clone();
                return self.answer_now(mid, confirmable, &token, response, None, Some(b2), now);
            }
        }

        let mut request = parsed.request;
        let mut block1 = None;
        if let Some(size1) = parsed.size1 {
            if size1 as usize > self.limits.max_body {
                self.upload = None;
                return self.too_large(mid, confirmable, &token, now);
            }
        }
        if let Some(b1) = parsed.block1 {
            // RFC 7959 §2.9.3: blocks no larger than ours.
            let szx = b1.szx.min(Block::szx_of(self.limits.block_size));
            let offset = (b1.num as usize).saturating_mul(b1.size());
            if b1.num == 0 {
                self.upload = Some(Upload {
                    key: key.clone(),
                    body: Vec::new(),
                    next_num: 0,
                    touched: now,
                });
            }
            // RFC 7959 §2.3: every block but the last is exactly the block size.
            let wrong_size = b1.more && request.payload.len() != b1.size();
            let in_order = self
                .upload
                .as_ref()
                .is_some_and(|u| u.key == key && u.next_num == b1.num && u.body.len() == offset);
            if !in_order || wrong_size {
                self.upload = None;
                let (_, response) = reply(
                    REQUEST_ENTITY_INCOMPLETE,
                    "Block1 block out of order or of the wrong size",
                );
                return self.answer_now(mid, confirmable, &token, response, None, None, now);
            }
            let Some(upload) = self.upload.as_mut() else {
                return Vec::new();
            };
            if upload.body.len() + request.payload.len() > self.limits.max_body {
                self.upload = None;
                return self.too_large(mid, confirmable, &token, now);
            }
            upload.body.extend_from_slice(&request.payload);
            upload.touched = now;
            // Block sizes after the first: the size the server asked for (RFC 7959 §2.3).
            upload.next_num =
                u32::try_from(upload.body.len() / (1usize << (szx + 4))).unwrap_or(u32::MAX);
            if b1.more {
                let ack = Block {
                    num: b1.num,
                    more: true,
                    szx,
                };
                let response = Response::empty(CONTINUE);
                return self.answer_now(mid, confirmable, &token, response, Some(ack), None, now);
            }
            request.payload = self.upload.take().map(|u| u.body).unwrap_or_default();
            block1 = Some(Block {
                num: b1.num,
                more: false,
                szx,
            });
        } else if request.payload.len() > self.limits.max_body {
            return self.too_large(mid, confirmable, &token, now);
        }

        if self.calls.len() >= self.limits.max_in_flight {
            let response = Response {
                max_age: Some(1),
                ..Response::diagnostic(
                    Class::ServiceUnavailable.coap_code(),
                    "too many requests in progress",
                )
            };
            return self.answer_now(mid, confirmable, &token, response, None, None, now);
        }
        let id = self.next_call;
        self.next_call += 1;
        self.calls.push((
            id,
            Call {
                mid,
                token,
                confirmable,
                started: now,
                acked: false,
                block1,
                block2: parsed.block2,
                key,
            },
        ));
        self.remember(mid, now, Seen::InProgress(id));
        vec![Action::Dispatch(id, request)]
    }

    /// 4.13 with Size1, the largest body accepted (RFC 7959 §2.9.3, §4).
    fn too_large(
        &mut self,
        mid: u16,
        confirmable: bool,
        token: &[u8],
        now: Instant,
    ) -> Vec<Action> {
        let max = self.limits.max_body;
        let response = Response {
            size1: u32::try_from(max).ok(),
            ..Response::diagnostic(
                Class::PayloadTooLarge.coap_code(),
                &format!("request body larger than {max} bytes"),
            )
        };
        self.answer_now(mid, confirmable, token, response, None, None, now)
    }

    /// The application's answer to call `id`.
    pub fn on_response(&mut self, id: u64, response: Response, now: Instant) -> Vec<Action> {
        let Some(pos) = self.calls.iter().position(|(i, _)| *i == id) else {
            return Vec::new();
        };
        let (_, call) = self.calls.remove(pos);
        let block2 = self.block_of(&call.key, &response, call.block2, now);
        let message = match self.encode(&response, call.block1, block2) {
            Some(m) => m,
            None => return Vec::new(),
        };
        let mut out = self.deliver(&call, &message, now);
        if response.close {
            out.push(Action::Close);
        }
        out
    }

    /// The answer to `call`: piggybacked, or separate (RFC 7252 §5.2).
    fn deliver(&mut self, call: &Call, message: &Message, now: Instant) -> Vec<Action> {
        if call.confirmable && !call.acked {
            let bytes = message.finish(MessageType::Acknowledgement, call.mid, &call.token);
            self.set_seen(call.mid, Seen::Answered(bytes.clone()));
            return vec![Action::Send(bytes)];
        }
        // RFC 7252 §5.2.2: a separate answer, confirmable when the request was; a NON
        // request is answered NON (§5.2.3).
        let mid = self.new_mid();
        if call.confirmable {
            let bytes = message.finish(MessageType::Confirmable, mid, &call.token);
            self.outgoing.push(Outgoing {
                mid,
                bytes: bytes.clone(),
                attempts: 0,
                next: now + ACK_TIMEOUT,
            });
            vec![Action::Send(bytes)]
        } else {
            self.set_seen(call.mid, Seen::Quiet);
            vec![Action::Send(message.finish(
                MessageType::NonConfirmable,
                mid,
                &call.token,
            ))]
        }
    }

    /// Empty ACKs for slow answers, retransmissions of separate answers (RFC 7252 §4.2:
    /// doubling intervals, at most MAX_RETRANSMIT times).
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let mut acked = Vec::new();
        for (_, call) in &mut self.calls {
            if call.confirmable && !call.acked && now >= call.started + EMPTY_ACK_AFTER {
                call.acked = true;
                acked.push(call.mid);
            }
        }
        for mid in acked {
            let ack = empty_ack(mid);
            self.set_seen(mid, Seen::Answered(ack.clone()));
            out.push(Action::Send(ack));
        }
        self.outgoing.retain_mut(|o| {
            if now < o.next {
                return true;
            }
            if o.attempts >= MAX_RETRANSMIT {
                return false;
            }
            o.attempts += 1;
            o.next = now + ACK_TIMEOUT * 2u32.pow(o.attempts);
            out.push(Action::Send(o.bytes.clone()));
            true
        });
        out
    }

    /// Answer at once (a refusal or Continue), remembered for duplicates.
    #[allow(clippy::too_many_arguments)]
    fn answer_now(
        &mut self,
        mid: u16,
        confirmable: bool,
        token: &[u8],
        response: Response,
        block1: Option<Block>,
        block2: Option<Block>,
        now: Instant,
    ) -> Vec<Action> {
        let Some(message) = self.encode(&response, block1, block2) else {
            return Vec::new();
        };
        let kind = if confirmable {
            MessageType::Acknowledgement
        } else {
            MessageType::NonConfirmable
        };
        let reply_mid = if confirmable { mid } else { self.new_mid() };
        let bytes = message.finish(kind, reply_mid, token);
        self.remember(
            mid,
            now,
            if confirmable {
                Seen::Answered(bytes.clone())
            } else {
                Seen::Quiet
            },
        );
        vec![Action::Send(bytes)]
    }

    /// The block of `response` to send: the one asked for, or the first when the whole does
    /// not fit in one (RFC 7959 §2.4); a multi-block answer is kept for the next requests.
    fn block_of(
        &mut self,
        key: &(u8, Vec<String>),
        response: &Response,
        asked: Option<Block>,
        now: Instant,
    ) -> Option<Block> {
        let ours = Block::szx_of(self.limits.block_size);
        let szx = asked.map_or(ours, |b| b.szx.min(ours));
        let size = 1usize << (szx + 4);
        if asked.is_none() && response.payload.len() <= size {
            return None;
        }
        if response.payload.len() > size {
            self.download = Some(Download {
                key: key.clone(),
                response: response.clone(),
                touched: now,
            });
        }
        Some(Block {
            num: asked.map_or(0, |b| b.num),
            more: false,
            szx,
        })
    }

    /// The message for `response`, cut to `block2` when given.
    fn encode(
        &self,
        response: &Response,
        block1: Option<Block>,
        block2: Option<Block>,
    ) -> Option<Message> {
        let mut options: Vec<(u16, Vec<u8>)> = Vec::new();
        if let Some(cf) = response.content_format {
            options.push((opt::CONTENT_FORMAT, encode_uint(u32::from(cf))));
        }
        if let Some(age) = response.max_age {
            options.push((opt::MAX_AGE, encode_uint(age)));
        }
        if let Some(b1) = block1 {
            options.push((opt::BLOCK1, b1.encode()));
        }
        if let Some(size1) = response.size1 {
            options.push((opt::SIZE1, encode_uint(size1)));
        }
        let mut payload = response.payload.clone();
        if let Some(b2) = block2 {
            let size = b2.size();
            let start = (b2.num as usize).saturating_mul(size);
            if start >= payload.len() && !(start == 0 && payload.is_empty()) {
                // RFC 7959 §2.2: a block beyond the end.
                let diag = Response::diagnostic(BAD_OPTION, "Block2 beyond the representation");
                return self.encode(&diag, None, None);
            }
            let end = (start + size).min(payload.len());
            let more = end < payload.len();
            payload = payload[start..end].to_vec();
            options.push((opt::BLOCK2, Block { more, ..b2 }.encode()));
            if b2.num == 0 {
                // RFC 7959 §4: the size of the whole representation.
                let total = u32::try_from(response.payload.len()).unwrap_or(u32::MAX);
                options.push((opt::SIZE2, encode_uint(total)));
            }
        }
        Some(Message {
            code: response.code,
            options,
            payload,
        })
    }

    fn new_mid(&mut self) -> u16 {
        self.next_mid = self.next_mid.wrapping_add(1);
        self.next_mid
    }

    fn remember(&mut self, mid: u16, now: Instant, seen: Seen) {
        self.seen.retain(|(m, ..)| *m != mid);
        if self.seen.len() >= MAX_REMEMBERED {
            self.seen.pop_front();
        }
        self.seen.push_back((mid, now, seen));
    }

    fn set_seen(&mut self, mid: u16, seen: Seen) {
        if let Some(entry) = self.seen.iter_mut().find(|(m, ..)| *m == mid) {
            entry.2 = seen;
        }
    }

    fn expire(&mut self, now: Instant) {
        self.seen
            .retain(|(_, at, _)| now.saturating_duration_since(*at) < EXCHANGE_LIFETIME);
        if self
            .upload
            .as_ref()
            .is_some_and(|u| now.saturating_duration_since(u.touched) > BLOCK1_IDLE)
        {
            self.upload = None;
        }
        if self
            .download
            .as_ref()
            .is_some_and(|d| now.saturating_duration_since(d.touched) > EXCHANGE_LIFETIME)
        {
            self.download = None;
        }
    }
}

/// An answer's code, options and payload, before its type, message ID and token.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) code: CoapCode,
    pub(crate) options: Vec<(u16, Vec<u8>)>,
    pub(crate) payload: Vec<u8>,
}

impl Message {
    pub(crate) fn finish(&self, kind: MessageType, mid: u16, token: &[u8]) -> Vec<u8> {
        let mut p = Packet::new();
        p.header.set_version(1);
        p.header.set_type(kind);
        p.header.message_id = mid;
        p.header.code = MessageClass::from(self.code.0);
        p.set_token(token.to_vec());
        for (number, value) in &self.options {
            p.add_option(CoapOption::from(*number), value.clone());
        }
        p.payload = self.payload.clone();
        // A token longer than 8 bytes cannot have come in; nothing else fails to encode.
        p.to_bytes_unlimited().unwrap_or_default()
    }
}

/// An empty ACK (RFC 7252 §4.2).
pub(crate) fn empty_ack(mid: u16) -> Vec<u8> {
    let [hi, lo] = mid.to_be_bytes();
    vec![0x60, 0x00, hi, lo]
}

/// A RST (RFC 7252 §4.2).
pub(crate) fn reset(mid: u16) -> Vec<u8> {
    let [hi, lo] = mid.to_be_bytes();
    vec![0x70, 0x00, hi, lo]
}

/// The message ID and type of a message whose fixed header reads.
fn header_mid(bytes: &[u8]) -> Option<(u16, MessageType)> {
    let [first, _, hi, lo, ..] = *bytes else {
        return None;
    };
    if first >> 6 != 1 {
        return None;
    }
    let kind = match (first >> 4) & 0x3 {
        0 => MessageType::Confirmable,
        1 => MessageType::NonConfirmable,
        2 => MessageType::Acknowledgement,
        _ => MessageType::Reset,
    };
    Some((u16::from_be_bytes([hi, lo]), kind))
}

/// The Uri-Path-Abbrev values and the paths they stand for (draft-ietf-core-uri-path-abbrev
/// §3, initial registry values) that are not among the registrar's resources
/// ([`brski_common::brski::paths::COAP`], which carry their own): CoRE discovery and the RFC
/// 9148 server-side key generation.
const OTHER_URI_PATH_ABBREVIATIONS: [(u32, &str); 5] = [
    (0, "/.well-known/core"),
    (1, "/.well-known/rd"),
    (2, "/.well-known/edhoc"),
    (304, "/.well-known/est/skg"),
    (305, "/.well-known/est/skc"),
];

/// The path a Uri-Path-Abbrev value stands for.
pub fn abbreviated_path(value: u32) -> Option<&'static str> {
    brski_common::brski::paths::COAP
        .iter()
        .map(|r| (r.abbrev, r.short))
        .chain(OTHER_URI_PATH_ABBREVIATIONS)
        .find(|(n, _)| *n == value)
        .map(|(_, path)| path)
}

/// The path segments of a Uri-Path-Abbrev value (one occurrence, no Uri-Path beside it); a
/// value without an entry, a repeated option or one beside Uri-Path is an unprocessable
/// critical option (4.02, never 4.04: the path may exist spelled out).
fn expand_abbrev(
    values: &std::collections::LinkedList<Vec<u8>>,
    with_path: bool,
) -> Result<Vec<String>, String> {
    if with_path || values.len() != 1 {
        return Err("Uri-Path-Abbrev must come alone, once".into());
    }
    let value = values.front().and_then(|v| uint(v));
    value
        .and_then(abbreviated_path)
        .map(|path| {
            path.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .ok_or_else(|| format!("Uri-Path-Abbrev value {value:?} is not known here"))
}

/// A request as the application sees it, with its block options.
struct Parsed {
    request: Request,
    block1: Option<Block>,
    block2: Option<Block>,
    size1: Option<u32>,
}

/// The request in `packet`, or the code and reason of its refusal.
fn parse_request(packet: &Packet) -> Result<Parsed, (CoapCode, String)> {
    let method = Method::from_code(u8::from(packet.header.code));
    let mut request = Request {
        method,
        path: Vec::new(),
        query: Vec::new(),
        content_format: None,
        accept: None,
        payload: packet.payload.clone(),
    };
    let mut parsed_block1 = None;
    let mut block2 = None;
    let mut size1 = None;
    let mut abbrev = None;
    let bad = |what: &str| (CoapCode::BAD_REQUEST, format!("malformed {what} option"));
    for (number, values) in packet.options() {
        let number = *number;
        let first = values.front().map(Vec::as_slice).unwrap_or_default();
        match number {
            opt::URI_PATH => {
                for v in values {
                    let segment = String::from_utf8(v.clone()).map_err(|_| bad("Uri-Path"))?;
                    request.path.push(segment);
                }
            }
            opt::URI_QUERY => {
                for v in values {
                    let q = String::from_utf8(v.clone()).map_err(|_| bad("Uri-Query"))?;
                    request.query.push(q);
                }
            }
            opt::URI_PATH_ABBREV => abbrev = Some(values),
            opt::CONTENT_FORMAT => {
                let cf = uint(first).and_then(|v| u16::try_from(v).ok());
                request.content_format = Some(cf.ok_or_else(|| bad("Content-Format"))?);
            }
            opt::ACCEPT => {
                let cf = uint(first).and_then(|v| u16::try_from(v).ok());
                request.accept = Some(cf.ok_or_else(|| bad("Accept"))?);
            }
            opt::BLOCK1 => parsed_block1 = Some(Block::decode(first).ok_or_else(|| bad("Block1"))?),
            opt::BLOCK2 => block2 = Some(Block::decode(first).ok_or_else(|| bad("Block2"))?),
            opt::SIZE1 => size1 = Some(uint(first).ok_or_else(|| bad("Size1"))?),
            opt::URI_HOST
            | opt::URI_PORT
            | opt::SIZE2
            | opt::ETAG
            | opt::OBSERVE
            | opt::NO_RESPONSE
            | opt::MAX_AGE => {}
            opt::IF_MATCH | opt::IF_NONE_MATCH => {
                return Err((BAD_OPTION, format!("option {number} is not supported")));
            }
            // RFC 7252 §5.4.1: an unrecognised critical (odd) option refuses the request.
            n if n % 2 == 1 => {
                return Err((BAD_OPTION, format!("unrecognised critical option {n}")));
            }
            _ => {}
        }
    }
    if let Some(values) = abbrev {
        request.path =
            expand_abbrev(values, !request.path.is_empty()).map_err(|e| (BAD_OPTION, e))?;
    }
    Ok(Parsed {
        request,
        block1: parsed_block1,
        block2,
        size1,
    })
}

impl Response {
    /// An answer of `code` alone.
    pub fn empty(code: CoapCode) -> Self {
        Self {
            code,
            content_format: None,
            max_age: None,
            size1: None,
            payload: Vec::new(),
            close: false,
        }
    }

    /// An error answer with `reason` as diagnostic payload (RFC 7252 §5.5.2: UTF-8, no
    /// Content-Format), cut to a size that fits one message.
    pub fn diagnostic(code: CoapCode, reason: &str) -> Self {
        let mut end = reason.len().min(MAX_DIAGNOSTIC);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            payload: reason.as_bytes()[..end].to_vec(),
            ..Self::empty(code)
        }
    }
}

#[cfg(test)]
mod tests;
