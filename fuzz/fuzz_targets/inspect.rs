//! `inspect`: any file's contents (PEM, DER, base64, hex, JSON) described, without anchors and
//! with the vectors' anchors, and the same bytes read as an anchor file.
#![no_main]
use brski_common::inspect::{self, InspectOptions};
use brski_common::pki::TimeCheck;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = inspect::inspect(data, &InspectOptions::default());
    let anchored = InspectOptions {
        anchors: brski_fuzz::fixtures().anchors.anchors.clone(),
        time: TimeCheck::Skip,
    };
    let _ = inspect::inspect(data, &anchored);
    let _ = InspectOptions::with_anchor_file(data, false);
});
