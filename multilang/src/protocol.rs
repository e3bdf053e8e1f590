//! Storm's multi-lang wire format, as pure functions over bytes: no processes, no threads.
//!
//! Two serializers, chosen per component (Storm: `topology.multilang.serializer`):
//! - **JSON** (Storm's default): each message is JSON text followed by a line `end`.
//! - **msgpack** (what pystorm and streamparse offer): each message is one msgpack value,
//!   delimited by msgpack itself, with no `end` line.
//!
//! [`Decoder`] is fed the subprocess's output as it arrives, in chunks of any size, and yields
//! whole messages. Everything it reads is untrusted: a malformed message, a message over
//! [`MAX_MESSAGE`] bytes, or nesting deeper than [`MAX_DEPTH`] is an error (the caller kills that
//! subprocess), never a panic or an allocation sized by a length the subprocess claims.

use serde::Deserialize;
use serde_json::Value as Json;

/// Largest message accepted from a subprocess.
pub const MAX_MESSAGE: usize = 16 << 20;
/// Deepest nesting of arrays and maps accepted in a message.
pub const MAX_DEPTH: usize = 64;

/// How messages are written on the pipes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Serializer {
    #[default]
    Json,
    Msgpack,
}

impl Serializer {
    /// Reads Storm's `topology.multilang.serializer` (a Java class name) or Gale's short names
    /// `json` / `msgpack`. `None` when the name is not one Gale knows.
    pub fn from_name(name: &str) -> Option<Serializer> {
        let n = name.to_ascii_lowercase();
        let short = n.rsplit('.').next().unwrap_or(&n);
        if short == "json" || short.contains("jsonserializer") {
            Some(Serializer::Json)
        } else if short == "msgpack" || short.contains("msgpack") || short.contains("messagepack") {
            Some(Serializer::Msgpack)
        } else {
            None
        }
    }

    /// Encodes one message, delimiter included.
    pub fn encode(self, message: &Json) -> Vec<u8> {
        match self {
            Serializer::Json => {
                let mut s = message.to_string().into_bytes();
                s.extend_from_slice(b"\nend\n");
                s
            }
            // serde_json::Value serializes maps as msgpack maps with string keys, as pystorm expects.
            Serializer::Msgpack => rmp_serde::to_vec(message).unwrap_or_default(),
        }
    }
}

/// A message the subprocess sent that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("a message longer than {MAX_MESSAGE} bytes")]
    TooLong,
    #[error("garbage from the subprocess ({reason}): {excerpt}")]
    Garbage { reason: String, excerpt: String },
}

fn garbage(reason: impl ToString, bytes: &[u8]) -> ProtocolError {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    ProtocolError::Garbage {
        reason: reason.to_string(),
        excerpt: text,
    }
}

/// Splits a byte stream into messages.
#[derive(Debug, Default)]
pub struct Decoder {
    serializer: Serializer,
    buf: Vec<u8>,
    /// JSON: where the current message starts, and how far lines were scanned.
    start: usize,
    scanned: usize,
}

impl Decoder {
    pub fn new(serializer: Serializer) -> Self {
        Decoder {
            serializer,
            ..Decoder::default()
        }
    }

    /// Appends bytes read from the subprocess.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Json>, ProtocolError> {
        let r = match self.serializer {
            Serializer::Json => self.next_json(),
            Serializer::Msgpack => self.next_msgpack(),
        };
        if matches!(r, Ok(None)) && self.buffered() > MAX_MESSAGE {
            return Err(ProtocolError::TooLong);
        }
        r
    }

    fn next_json(&mut self) -> Result<Option<Json>, ProtocolError> {
        while let Some(nl) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
            let line_start = self.scanned;
            let line_end = self.scanned + nl;
            self.scanned = line_end + 1;
            let line = &self.buf[line_start..line_end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line != b"end" {
                continue;
            }
            let body = &self.buf[self.start..line_start];
            let parsed = parse_json(body);
            self.buf.drain(..self.scanned);
            self.start = 0;
            self.scanned = 0;
            return parsed.map(Some);
        }
        Ok(None)
    }

    fn next_msgpack(&mut self) -> Result<Option<Json>, ProtocolError> {
        let Some(len) = msgpack_len(&self.buf)? else {
            return Ok(None);
        };
        let mut de = rmp_serde::Deserializer::from_read_ref(&self.buf[..len]);
        de.set_max_depth(MAX_DEPTH);
        let parsed = Json::deserialize(&mut de).map_err(|e| garbage(e, &self.buf[..len]));
        self.buf.drain(..len);
        parsed.map(Some)
    }
}

fn parse_json(body: &[u8]) -> Result<Json, ProtocolError> {
    // serde_json refuses nesting deeper than 128 by itself; checked here to MAX_DEPTH as msgpack is.
    let v: Json = serde_json::from_slice(body).map_err(|e| garbage(e, body))?;
    if depth(&v) > MAX_DEPTH {
        return Err(garbage(format!("nested deeper than {MAX_DEPTH}"), body));
    }
    Ok(v)
}

fn depth(v: &Json) -> usize {
    match v {
        Json::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Json::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The length of the first whole msgpack value in `b`, `None` if `b` ends before it does.
///
/// Walks markers with a count of values still to read instead of recursing, so neither deep
/// nesting nor a huge claimed length costs stack or memory: lengths are only compared with the
/// bytes actually present.
fn msgpack_len(b: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let mut pos = 0usize;
    let mut pending: u64 = 1;
    // Reads a big-endian length of `n` bytes at `pos`.
    let be = |b: &[u8], at: usize, n: usize| -> Option<u64> {
        b.get(at..at + n)
            .map(|s| s.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    };
    while pending > 0 {
        let Some(&m) = b.get(pos) else {
            return Ok(None);
        };
        pos += 1;
        pending -= 1;
        // (payload bytes to skip, values nested inside)
        let (skip, nested): (u64, u64) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
            0x90..=0x9f => (0, u64::from(m & 0x0f)),
            0xa0..=0xbf => (u64::from(m & 0x1f), 0),
            0xc1 => return Err(garbage("0xc1 is not a msgpack marker", b)),
            0xc4 | 0xd9 => match be(b, pos, 1) {
                Some(n) => (1 + n, 0),
                None => return Ok(None),
            },
            0xc5 | 0xda => match be(b, pos, 2) {
                Some(n) => (2 + n, 0),
                None => return Ok(None),
            },
            0xc6 | 0xdb => match be(b, pos, 4) {
                Some(n) => (4 + n, 0),
                None => return Ok(None),
            },
            0xc7 => match be(b, pos, 1) {
                Some(n) => (2 + n, 0),
                None => return Ok(None),
            },
            0xc8 => match be(b, pos, 2) {
                Some(n) => (3 + n, 0),
                None => return Ok(None),
            },
            0xc9 => match be(b, pos, 4) {
                Some(n) => (5 + n, 0),
                None => return Ok(None),
            },
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => match be(b, pos, 2) {
                Some(n) => (2, n),
                None => return Ok(None),
            },
            0xdd => match be(b, pos, 4) {
                Some(n) => (4, n),
                None => return Ok(None),
            },
            0xde => match be(b, pos, 2) {
                Some(n) => (2, 2 * n),
                None => return Ok(None),
            },
            0xdf => match be(b, pos, 4) {
                Some(n) => (4, 2 * n),
                None => return Ok(None),
            },
        };
        let end = pos as u64 + skip;
        if end > MAX_MESSAGE as u64 {
            return Err(ProtocolError::TooLong);
        }
        if end > b.len() as u64 {
            return Ok(None);
        }
        pos = end as usize;
        // Every nested value takes at least one byte: more than the limit can never arrive.
        pending = pending.saturating_add(nested);
        if pending > MAX_MESSAGE as u64 {
            return Err(ProtocolError::TooLong);
        }
    }
    Ok(Some(pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all(ser: Serializer, bytes: &[u8], chunk: usize) -> Result<Vec<Json>, ProtocolError> {
        let mut d = Decoder::new(ser);
        let mut out = Vec::new();
        for c in bytes.chunks(chunk.max(1)) {
            d.feed(c);
            while let Some(m) = d.next_message()? {
                out.push(m);
            }
        }
        Ok(out)
    }

    #[test]
    fn both_serializers_round_trip_in_any_chunking() {
        let msgs = [
            json!({"command": "emit", "tuple": ["a", 1, 2.5, null, true], "anchors": ["7"]}),
            json!({"pid": 1234}),
            json!([1, 2, 3]),
            json!({"command": "log", "msg": "line one\nend\nline three"}),
        ];
        for ser in [Serializer::Json, Serializer::Msgpack] {
            let bytes: Vec<u8> = msgs.iter().flat_map(|m| ser.encode(m)).collect();
            for chunk in [1, 2, 3, 7, 64, 4096] {
                assert_eq!(
                    all(ser, &bytes, chunk).expect("valid"),
                    msgs,
                    "{ser:?} {chunk}"
                );
            }
        }
    }

    #[test]
    fn json_messages_may_span_lines_and_use_crlf() {
        let got = all(Serializer::Json, b"{\"a\":\n 1}\r\nend\r\n[2]\nend\n", 5).expect("valid");
        assert_eq!(got, vec![json!({"a": 1}), json!([2])]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(all(Serializer::Json, b"not json\nend\n", 4).is_err());
        assert!(all(Serializer::Msgpack, b"\xc1", 1).is_err());
        // A map with an integer key is not a protocol message.
        assert!(all(Serializer::Msgpack, b"\x81\x01\x02", 1).is_err());
    }

    #[test]
    fn claimed_lengths_do_not_allocate() {
        // A str32 and an array32 claiming 4 GiB: incomplete, then too long.
        let mut d = Decoder::new(Serializer::Msgpack);
        d.feed(b"\xdb\xff\xff\xff\xff");
        assert_eq!(d.next_message(), Err(ProtocolError::TooLong));
        let mut d = Decoder::new(Serializer::Msgpack);
        d.feed(b"\xdd\xff\xff\xff\xff\x01");
        assert_eq!(d.next_message(), Err(ProtocolError::TooLong));
        let mut d = Decoder::new(Serializer::Msgpack);
        d.feed(b"\x93\x01");
        assert_eq!(d.next_message(), Ok(None));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = vec![0x91u8; 10_000];
        let mut bytes = deep.clone();
        bytes.push(0x01);
        assert!(all(Serializer::Msgpack, &bytes, 4096).is_err());
        let text = format!("{}1{}\nend\n", "[".repeat(100), "]".repeat(100));
        assert!(all(Serializer::Json, text.as_bytes(), 4096).is_err());
    }

    #[test]
    fn endless_json_without_end_is_too_long() {
        let mut d = Decoder::new(Serializer::Json);
        let line = vec![b'x'; 1 << 20];
        let mut err = None;
        for _ in 0..20 {
            d.feed(&line);
            d.feed(b"\n");
            if let Err(e) = d.next_message() {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(ProtocolError::TooLong));
    }

    #[test]
    fn serializer_names() {
        assert_eq!(
            Serializer::from_name("org.apache.storm.multilang.JsonSerializer"),
            Some(Serializer::Json)
        );
        assert_eq!(
            Serializer::from_name("com.isentropy.storm.MsgpackSerializer"),
            Some(Serializer::Msgpack)
        );
        assert_eq!(Serializer::from_name("msgpack"), Some(Serializer::Msgpack));
        assert_eq!(Serializer::from_name("xml"), None);
    }
}

#[cfg(test)]
mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Subprocess output is untrusted: any bytes, in any chunking, give messages or an error.
        #[test]
        fn any_output_decodes_or_errors(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            chunk in 1usize..32,
            msgpack in any::<bool>(),
        ) {
            let ser = if msgpack { Serializer::Msgpack } else { Serializer::Json };
            let mut d = Decoder::new(ser);
            for c in bytes.chunks(chunk) {
                d.feed(c);
                while let Ok(Some(_)) = d.next_message() {}
            }
        }
    }
}
