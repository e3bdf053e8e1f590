//! A multi-lang subprocess's output, any bytes in any chunking, through both serializers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multilang::protocol::{Decoder, Serializer};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks the serializer and the chunk size the bytes arrive in.
    let ser = if first & 1 == 0 { Serializer::Json } else { Serializer::Msgpack };
    let chunk = usize::from(first >> 1).max(1);
    let mut d = Decoder::new(ser);
    for c in rest.chunks(chunk) {
        d.feed(c);
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    // What the worker does with a message: read its command and emit fields.
                    let _ = m.get("command").and_then(|c| c.as_str());
                    let _ = ser.encode(&m);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
