//! One CoAP request of a client, sans I/O (RFC 7252 §4, §5; RFC 7959): the request goes out
//! as confirmable messages, in Block1 blocks when its body is larger than a block, and is
//! retransmitted with exponential back-off until acknowledged (§4.2); an empty ACK means the
//! answer comes separately, as a CON that is acknowledged (§5.2.2); an answer in Block2 blocks
//! is fetched block by block and reassembled (RFC 7959 §2.4). Bytes in, [`Step`]s out.

use super::exchange::{
    ACK_TIMEOUT, Block, CONTINUE, MAX_RETRANSMIT, Message, empty_ack, encode_uint, opt, reset, uint,
};
use super::{Method, Request, Response};
use brski_common::answer::CoapCode;
use coap_lite::{MessageClass, MessageType, Packet};
use std::time::{Duration, Instant};

impl Request {
    /// A request of `method` to `path` (`/a/b?q`: its segments become Uri-Path options, its
    /// query Uri-Query options).
    pub fn new(method: Method, path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let items = |s: &str, sep: char| {
            s.split(sep)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        Self {
            method,
            path: items(path, '/'),
            query: items(query, '&'),
            content_format: None,
            accept: None,
            payload: Vec::new(),
        }
    }
}

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no acknowledgement after {0} transmissions (RFC 7252 §4.2)")]
    NotAcknowledged(u32),
    #[error("the server reset the request (RST)")]
    Reset,
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the server broke the block-wise transfer: {0}")]
    Blockwise(&'static str),
}

/// What the session does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Send(Vec<u8>),
    Done(Response),
    Failed(CallError),
}

/// The client's limits.
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// Block size of requests and the largest answer block asked for (a power of two, 16 to
    /// 1024).
    pub block_size: usize,
    /// Largest answer reassembled.
    pub max_body: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            block_size: 512,
            max_body: 1024 * 1024,
        }
    }
}

/// A CON awaiting its ACK.
#[derive(Debug)]
struct Unacknowledged {
    mid: u16,
    bytes: Vec<u8>,
    sent: u32,
    timeout: Duration,
    next: Instant,
}

/// One request and its answer.
#[derive(Debug)]
pub struct Call {
    request: Request,
    token: Vec<u8>,
    limits: CallLimits,
    next_mid: u16,
    /// Bytes of the body sent in Block1 blocks so far, and the block size exponent in use.
    sent: usize,
    szx1: u8,
    /// Answer blocks reassembled: the next Block2 number and the body so far.
    block2: Option<(u32, u8, Vec<u8>)>,
    waiting: Option<Unacknowledged>,
    /// The first transmission's timeout factor, from the token's randomness (RFC 7252 §4.2:
    /// between ACK_TIMEOUT and 1.5 × ACK_TIMEOUT).
    jitter: u32,
    finished: bool,
}

impl Call {
    /// Start `request` with `token` (random, RFC 7252 §5.3.1), message IDs from `first_mid`.
    /// Returns the first message to send.
    pub fn start(
        request: Request,
        token: Vec<u8>,
        first_mid: u16,
        limits: CallLimits,
        now: Instant,
    ) -> (Self, Vec<u8>) {
        let jitter = u32::from(token.first().copied().unwrap_or(0)) * 500 / 255;
        let mut call = Self {
            request,
            token,
            limits,
            next_mid: first_mid,
            sent: 0,
            szx1: Block::szx_of(limits.block_size),
            block2: None,
            waiting: None,
            jitter,
            finished: false,
        };
        let bytes = call.send_next(now);
        (call, bytes)
    }

    /// The message ID the next call of this session starts from.
    pub fn next_mid(&self) -> u16 {
        self.next_mid
    }

    /// When [`Call::on_timer`] wants to run.
    pub fn deadline(&self) -> Option<Instant> {
        self.waiting.as_ref().map(|w| w.next)
    }

    /// The next request message: the next Block1 block, the next Block2 request, or the
    /// whole request; confirmable.
    fn send_next(&mut self, now: Instant) -> Vec<u8> {
        let mut options: Vec<(u16, Vec<u8>)> = Vec::new();
        for s in &self.request.path {
            options.push((opt::URI_PATH, s.as_bytes().to_vec()));
        }
        for q in &self.request.query {
            options.push((opt::URI_QUERY, q.as_bytes().to_vec()));
        }
        let mut payload = Vec::new();
        if let Some((num, szx, _)) = &self.block2 {
            // RFC 7959 §2.4: the same request for a later block, without its body.
            options.push((
                opt::BLOCK2,
                Block {
                    num: *num,
                    more: false,
                    szx: *szx,
                }
                .encode(),
            ));
        } else {
            if let Some(cf) = self.request.content_format {
                options.push((opt::CONTENT_FORMAT, encode_uint(u32::from(cf))));
            }
            let body = &self.request.payload;
            let size = 1usize << (self.szx1 + 4);
            if body.len() > size || self.sent > 0 {
                let num = u32::try_from(self.sent / size).unwrap_or(u32::MAX);
                let end = (self.sent + size).min(body.len());
                let more = end < body.len();
                payload = body[self.sent..end].to_vec();
                options.push((
                    opt::BLOCK1,
                    Block {
                        num,
                        more,
                        szx: self.szx1,
                    }
                    .encode(),
                ));
                if self.sent == 0 {
                    // RFC 7959 §4: the size of the whole body, for an early 4.13.
                    let total = u32::try_from(body.len()).unwrap_or(u32::MAX);
                    options.push((opt::SIZE1, encode_uint(total)));
                }
            } else {
                payload.clone_from(body);
            }
        }
        if let Some(accept) = self.request.accept {
            options.push((opt::ACCEPT, encode_uint(u32::from(accept))));
        }
        let mid = self.next_mid;
        self.next_mid = self.next_mid.wrapping_add(1);
        let bytes = Message {
            code: CoapCode(self.request.method.code()),
            options,
            payload,
        }
        .finish(MessageType::Confirmable, mid, &self.token);
        let timeout = ACK_TIMEOUT + ACK_TIMEOUT * self.jitter / 1000;
        self.waiting = Some(Unacknowledged {
            mid,
            bytes: bytes.clone(),
            sent: 1,
            timeout,
            next: now + timeout,
        });
        bytes
    }

    /// Retransmit what is unacknowledged when its time has come (RFC 7252 §4.2: the timeout
    /// doubles, at most MAX_RETRANSMIT times).
    pub fn on_timer(&mut self, now: Instant) -> Vec<Step> {
        let Some(w) = self.waiting.as_mut() else {
            return Vec::new();
        };
        if now < w.next {
            return Vec::new();
        }
        if w.sent > MAX_RETRANSMIT {
            let sent = w.sent;
            self.waiting = None;
            self.finished = true;
            return vec![Step::Failed(CallError::NotAcknowledged(sent))];
        }
        w.sent += 1;
        w.timeout *= 2;
        w.next = now + w.timeout;
        vec![Step::Send(w.bytes.clone())]
    }

    /// A message from the server.
    pub fn on_message(&mut self, bytes: &[u8], now: Instant) -> Vec<Step> {
        let Ok(packet) = Packet::from_bytes(bytes) else {
            return Vec::new();
        };
        let mid = packet.header.message_id;
        let kind = packet.header.get_type();
        let is_ours = self.waiting.as_ref().is_some_and(|w| w.mid == mid);
        match (kind, packet.header.code) {
            (MessageType::Reset, _) if is_ours => {
                self.waiting = None;
                self.finished = true;
                vec![Step::Failed(CallError::Reset)]
            }
            // RFC 7252 §5.2.2: acknowledged; the answer follows separately.
            (MessageType::Acknowledgement, MessageClass::Empty) if is_ours => {
                self.waiting = None;
                Vec::new()
            }
            (MessageType::Acknowledgement, MessageClass::Response(_)) if is_ours => {
                if packet.get_token() != self.token.as_slice() {
                    return Vec::new();
                }
                self.waiting = None;
                self.on_answer(&packet, now)
            }
            (MessageType::Confirmable | MessageType::NonConfirmable, MessageClass::Response(_)) => {
                let mut steps = Vec::new();
                if kind == MessageType::Confirmable {
                    // A separate answer (or a repeat of one already taken) is acknowledged;
                    // one for no request of ours is refused (RFC 7252 §4.2).
                    let ours = packet.get_token() == self.token.as_slice();
                    steps.push(Step::Send(if ours { empty_ack(mid) } else { reset(mid) }));
                }
                if packet.get_token() == self.token.as_slice()
                    && !self.finished
                    && self.waiting.is_none()
                {
                    steps.extend(self.on_answer(&packet, now));
                }
                steps
            }
            _ => Vec::new(),
        }
    }

    /// An answer to the message last sent.
    fn on_answer(&mut self, packet: &Packet, now: Instant) -> Vec<Step> {
        let code = CoapCode(u8::from(packet.header.code));
        let option = |number: u16| {
            packet
                .options()
                .find(|(n, _)| **n == number)
                .and_then(|(_, v)| v.front())
                .map(Vec::as_slice)
        };
        let block1 = option(opt::BLOCK1).and_then(Block::decode);
        let block2 = option(opt::BLOCK2).and_then(Block::decode);
        // RFC 7959 §2.3: 2.31 asks for the next block, in the size the server names.
        if code == CONTINUE && self.block2.is_none() {
            let size = 1usize << (self.szx1 + 4);
            let Some(b1) = block1 else {
                return self.fail(CallError::Blockwise("2.31 without Block1"));
            };
            let sent = (self.sent + size).min(self.request.payload.len());
            if b1.szx > self.szx1 || sent >= self.request.payload.len() {
                return self.fail(CallError::Blockwise("2.31 for a block not sent"));
            }
            self.sent = sent;
            self.szx1 = b1.szx;
            if self.sent % (1usize << (self.szx1 + 4)) != 0 {
                return self.fail(CallError::Blockwise("Block1 size change off a boundary"));
            }
            return vec![Step::Send(self.send_next(now))];
        }
        let payload = packet.payload.clone();
        let mut body = match (block2, self.block2.take()) {
            (None, None) => payload,
            // An error ends the transfer (RFC 7959 §2.9.2: 4.08).
            (None, Some(_)) if code.class() >= 4 => payload,
            (None, Some(_)) => return self.fail(CallError::Blockwise("a block without Block2")),
            (Some(b2), sofar) => {
                let (expected, mut body) = match sofar {
                    Some((num, _, body)) => (num, body),
                    None => (0, Vec::new()),
                };
                if b2.num != expected || (b2.more && payload.len() != b2.size()) {
                    return self.fail(CallError::Blockwise("Block2 block out of order"));
                }
                body.extend_from_slice(&payload);
                if body.len() > self.limits.max_body {
                    return self.fail(CallError::TooLarge(self.limits.max_body));
                }
                if b2.more {
                    let szx = b2.szx.min(Block::szx_of(self.limits.block_size));
                    let next = u32::try_from(body.len() / (1usize << (szx + 4))).unwrap_or(0);
                    self.block2 = Some((next, szx, body));
                    return vec![Step::Send(self.send_next(now))];
                }
                body
            }
        };
        if body.len() > self.limits.max_body {
            body.truncate(0);
            return self.fail(CallError::TooLarge(self.limits.max_body));
        }
        let uint_of = |number: u16| option(number).and_then(uint);
        self.finished = true;
        vec![Step::Done(Response {
            code,
            content_format: uint_of(opt::CONTENT_FORMAT).and_then(|v| u16::try_from(v).ok()),
            max_age: uint_of(opt::MAX_AGE),
            size1: uint_of(opt::SIZE1),
            payload: body,
            close: false,
        })]
    }

    fn fail(&mut self, e: CallError) -> Vec<Step> {
        self.waiting = None;
        self.finished = true;
        vec![Step::Failed(e)]
    }
}

#[cfg(test)]
mod tests {
    use super::super::exchange::{Action, Exchange, ExchangeLimits};
    use super::*;

    fn post(len: usize) -> Request {
        Request {
            content_format: Some(286),
            accept: Some(281),
            payload: (0..len).map(|i| i as u8).collect(),
            ..Request::new(Method::Post, "/.well-known/est/sen")
        }
    }

    /// Runs `call` against the server side [`Exchange`], answering each request with
    /// `answer`; returns the answer the client assembled and the requests the server saw.
    fn run(
        request: Request,
        server: ExchangeLimits,
        client: CallLimits,
        answer: impl Fn(&Request) -> Response,
    ) -> (Result<Response, CallError>, Vec<Request>) {
        let now = Instant::now();
        let mut exchange = Exchange::new(server, 7);
        let (mut call, first) = Call::start(request, vec![0x42, 1], 100, client, now);
        let mut to_server = vec![first];
        let mut seen = Vec::new();
        for _ in 0..1000 {
            let Some(bytes) = to_server.pop() else { break };
            for action in exchange.on_message(&bytes, now) {
                let mut replies = Vec::new();
                match action {
                    Action::Send(b) => replies.push(b),
                    Action::Dispatch(id, req) => {
                        let r = answer(&req);
                        seen.push(req);
                        for a in exchange.on_response(id, r, now) {
                            if let Action::Send(b) = a {
                                replies.push(b);
                            }
                        }
                    }
                    Action::Close => {}
                }
                for reply in replies {
                    for step in call.on_message(&reply, now) {
                        match step {
                            Step::Send(b) => to_server.push(b),
                            Step::Done(r) => return (Ok(r), seen),
                            Step::Failed(e) => return (Err(e), seen),
                        }
                    }
                }
            }
        }
        panic!("no answer");
    }

    #[test]
    fn rfc7252_5_2_1_a_small_request_gets_a_piggybacked_answer() {
        let (r, seen) = run(
            post(40),
            ExchangeLimits::default(),
            CallLimits::default(),
            |_| Response {
                content_format: Some(281),
                payload: b"certs".to_vec(),
                ..Response::empty(CoapCode::CHANGED)
            },
        );
        let r = r.expect("answer");
        assert_eq!(r.code, CoapCode::CHANGED);
        assert_eq!(r.content_format, Some(281));
        assert_eq!(r.payload, b"certs");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, [".well-known", "est", "sen"]);
        assert_eq!(seen[0].content_format, Some(286));
        assert_eq!(seen[0].accept, Some(281));
        assert_eq!(seen[0].payload, post(40).payload);
    }

    #[test]
    fn rfc7959_block1_and_block2_carry_bodies_larger_than_a_block() {
        let big: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let answer = big.clone();
        let server = ExchangeLimits {
            block_size: 256,
            ..ExchangeLimits::default()
        };
        let (r, seen) = run(post(2100), server, CallLimits::default(), move |_| {
            Response {
                content_format: Some(62),
                payload: answer.clone(),
                ..Response::empty(CoapCode::CHANGED)
            }
        });
        let r = r.expect("answer");
        assert_eq!(r.payload, big, "Block2 reassembled");
        assert_eq!(r.content_format, Some(62));
        assert_eq!(seen.len(), 1, "one request reached the application");
        assert_eq!(seen[0].payload, post(2100).payload, "Block1 reassembled");
    }

    #[test]
    fn rfc7959_2_9_3_an_oversize_body_gets_4_13_with_size1() {
        let server = ExchangeLimits {
            max_body: 1000,
            ..ExchangeLimits::default()
        };
        let (r, seen) = run(post(5000), server, CallLimits::default(), |_| {
            Response::empty(CoapCode::CHANGED)
        });
        let r = r.expect("answer");
        assert_eq!(r.code, CoapCode::REQUEST_ENTITY_TOO_LARGE);
        assert_eq!(r.size1, Some(1000));
        assert!(seen.is_empty());
    }

    #[test]
    fn an_answer_larger_than_the_limit_fails() {
        let limits = CallLimits {
            block_size: 64,
            max_body: 100,
        };
        let (r, _) = run(post(10), ExchangeLimits::default(), limits, |_| Response {
            payload: vec![1; 500],
            ..Response::empty(CoapCode::CONTENT)
        });
        assert_eq!(r, Err(CallError::TooLarge(100)));
    }

    #[test]
    fn rfc7252_4_2_retransmits_with_back_off_then_gives_up() {
        let now = Instant::now();
        let (mut call, first) = Call::start(post(10), vec![0], 1, CallLimits::default(), now);
        let mut at = now;
        let mut gaps = Vec::new();
        for _ in 0..MAX_RETRANSMIT {
            let next = call.deadline().expect("a deadline");
            gaps.push(next - at);
            at = next;
            assert_eq!(call.on_timer(at), vec![Step::Send(first.clone())]);
        }
        let next = call.deadline().expect("a deadline");
        assert_eq!(
            call.on_timer(next),
            vec![Step::Failed(CallError::NotAcknowledged(MAX_RETRANSMIT + 1))]
        );
        assert_eq!(gaps[0], ACK_TIMEOUT);
        assert_eq!(gaps[1], ACK_TIMEOUT * 2);
        assert_eq!(gaps[3], ACK_TIMEOUT * 8);
    }

    #[test]
    fn rfc7252_5_2_2_an_empty_ack_then_a_separate_answer_which_is_acknowledged() {
        let now = Instant::now();
        let (mut call, first) =
            Call::start(post(10), vec![0x77; 4], 0x10, CallLimits::default(), now);
        let mid = Packet::from_bytes(&first)
            .expect("packet")
            .header
            .message_id;
        assert!(call.on_message(&empty_ack(mid), now).is_empty());
        assert_eq!(call.deadline(), None, "no retransmission once acknowledged");
        let separate = Message {
            code: CoapCode::CONTENT,
            options: vec![(opt::CONTENT_FORMAT, vec![60])],
            payload: b"late".to_vec(),
        }
        .finish(MessageType::Confirmable, 0x9000, &[0x77; 4]);
        let steps = call.on_message(&separate, now);
        assert_eq!(steps[0], Step::Send(empty_ack(0x9000)));
        let Step::Done(r) = &steps[1] else {
            panic!("{steps:?}")
        };
        assert_eq!(r.payload, b"late");
        // A retransmission of the same answer is acknowledged again, and taken only once.
        assert_eq!(
            call.on_message(&separate, now),
            vec![Step::Send(empty_ack(0x9000))]
        );
        // A separate answer with another token is refused.
        let other = Message {
            code: CoapCode::CONTENT,
            options: Vec::new(),
            payload: Vec::new(),
        }
        .finish(MessageType::Confirmable, 0x9001, &[1]);
        assert_eq!(
            call.on_message(&other, now),
            vec![Step::Send(reset(0x9001))]
        );
    }

    #[test]
    fn rfc7252_4_2_a_reset_fails_the_call_and_garbage_is_ignored() {
        let now = Instant::now();
        let (mut call, first) = Call::start(post(10), vec![5], 3, CallLimits::default(), now);
        let mid = Packet::from_bytes(&first)
            .expect("packet")
            .header
            .message_id;
        assert!(call.on_message(&[0xff, 0x00], now).is_empty());
        assert!(call.on_message(&reset(mid.wrapping_add(9)), now).is_empty());
        assert_eq!(
            call.on_message(&reset(mid), now),
            vec![Step::Failed(CallError::Reset)]
        );
    }

    #[test]
    fn paths_and_queries_become_options() {
        let r = Request::new(Method::Get, "/.well-known/core?rt=brski*");
        assert_eq!(r.path, [".well-known", "core"]);
        assert_eq!(r.query, ["rt=brski*"]);
    }
}
