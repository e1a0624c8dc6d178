//! JPY messages as a stateless constrained join proxy or a registrar receives them (CJP §4.5):
//! `JpyMessage::decode`, and the proxy's `HeaderKey::open` on the header. What decodes
//! re-encodes to a message that decodes the same; no header opens unless the proxy sealed it.
#![no_main]
use brski_common::jpy::{HeaderKey, JpyMessage};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = HeaderKey::from_bytes([0x11; 16], &[0x22; 32]).expect("key");
    if let Ok(m) = JpyMessage::decode(data) {
        let again = JpyMessage::decode(&m.encode()).expect("an encoded message decodes");
        assert_eq!(again, m);
        if let Some(pledge) = key.open(&m.header) {
            assert_eq!(key.seal(pledge).as_deref(), Some(m.header.as_slice()));
        }
    }
    let _ = key.open(data);
});
