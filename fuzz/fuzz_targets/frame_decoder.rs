//! Bytes from a TCP peer, in any chunking, through the frame reader a worker's listener uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use worker::transport::FrameReader;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    let mut r = FrameReader::default();
    for c in rest.chunks(chunk) {
        r.feed(c);
        loop {
            match r.next_frame() {
                Ok(Some(w)) => {
                    for t in &w.tuples {
                        let _ = w.sources.get(usize::from(t.source));
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
