//! Reading artifacts from files: PEM, DER, base64 or hex, with `#` comment lines skipped
//! (the header lines of the vector files).

use base64::Engine;

/// Errors reading an artifact's bytes.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("no PEM block labelled {0}")]
    NoPemBlock(String),
    #[error("PEM block is malformed: {0}")]
    BadPem(String),
    #[error("input is empty")]
    Empty,
}

/// The standard base64 engine (RFC 4648 §4, with padding).
pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// base64url without padding (RFC 7515 §2).
pub const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Lenient base64 decoding: standard or URL alphabet, padding optional, white space ignored
/// (RFC 8951 §3.2 lets EST peers wrap base64 with CRLF).
pub fn decode_base64_lenient(text: &[u8]) -> Option<Vec<u8>> {
    let cleaned: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    if let Ok(v) = engine.decode(&cleaned) {
        return Some(v);
    }
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
    .decode(&cleaned)
    .ok()
}

/// Remove leading lines that start with `#` (vector file headers).
pub fn strip_comment_lines(data: &[u8]) -> &[u8] {
    let mut rest = data;
    loop {
        let trimmed = rest.trim_ascii_start();
        if trimmed.first() == Some(&b'#') {
            match trimmed.iter().position(|&b| b == b'\n') {
                Some(i) => rest = &trimmed[i + 1..],
                None => return &[],
            }
        } else {
            return rest;
        }
    }
}

/// The DER of every PEM block in `text` whose label is one of `labels`, in order.
pub fn pem_blocks(text: &str, labels: &[&str]) -> Result<Vec<Vec<u8>>, InputError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            return Err(InputError::BadPem("unterminated BEGIN line".into()));
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = after.find(&end_marker) else {
            return Err(InputError::BadPem(format!("no END line for {label}")));
        };
        let block = &rest[start..start + 11 + end + end_marker.len()];
        if labels.contains(&label) {
            let (_, der) = pem_rfc7468_decode(block)?;
            out.push(der);
        }
        rest = &after[end + end_marker.len()..];
    }
    Ok(out)
}

fn pem_rfc7468_decode(block: &str) -> Result<(String, Vec<u8>), InputError> {
    // Tolerate headers such as "Proc-Type" and CRLF line ends: take the base64 body lines.
    let mut lines = block.lines();
    let first = lines.next().unwrap_or_default();
    let label = first
        .trim()
        .trim_start_matches("-----BEGIN ")
        .trim_end_matches("-----")
        .to_string();
    let body: String = lines
        .take_while(|l| !l.starts_with("-----END"))
        .filter(|l| !l.contains(':'))
        .collect();
    let der = B64
        .decode(body.trim().replace(['\r', ' ', '\t'], ""))
        .map_err(|e| InputError::BadPem(e.to_string()))?;
    Ok((label, der))
}

/// The DER of the first PEM block whose label is one of `labels`.
pub fn pem_block(text: &str, labels: &[&str]) -> Result<Vec<u8>, InputError> {
    pem_blocks(text, labels)?
        .into_iter()
        .next()
        .ok_or_else(|| InputError::NoPemBlock(labels.join(" or ")))
}

/// Standard base64 with padding (RFC 4648 §4), on one line.
pub fn to_base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Encode DER as a PEM document with `label`, 64-column lines.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// How an artifact's bytes were written in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Pem,
    Der,
    Base64,
    Hex,
    /// Text that is itself the artifact (JSON).
    Text,
}

/// Turn a file's content into the artifact's bytes: PEM blocks (each returned as one item),
/// base64, hex or JSON text (leading `#` comment lines and surrounding white space ignored), or
/// raw binary, which is taken byte for byte (DER may well end in a byte that looks like white
/// space).
pub fn artifact_bytes(data: &[u8]) -> Result<(Encoding, Vec<Vec<u8>>), InputError> {
    let Ok(text) = std::str::from_utf8(data) else {
        if data.is_empty() {
            return Err(InputError::Empty);
        }
        return Ok((Encoding::Der, vec![data.to_vec()]));
    };
    let body = strip_comment_lines(text.as_bytes());
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(InputError::Empty);
    }
    // The text is valid UTF-8, so this slice is too.
    let text = std::str::from_utf8(trimmed).unwrap_or_default();
    if text.contains("-----BEGIN ") {
        let blocks = pem_blocks(
            text,
            &[
                "CERTIFICATE",
                "CERTIFICATE REQUEST",
                "NEW CERTIFICATE REQUEST",
                "PKCS7",
                "CMS",
            ],
        )?;
        if blocks.is_empty() {
            return Err(InputError::NoPemBlock(
                "CERTIFICATE, CERTIFICATE REQUEST or PKCS7".into(),
            ));
        }
        return Ok((Encoding::Pem, blocks));
    }
    if text.starts_with('{') || text.starts_with('[') {
        return Ok((Encoding::Text, vec![trimmed.to_vec()]));
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.len() % 2 == 0 && compact.chars().all(|c| c.is_ascii_hexdigit()) {
        if let Ok(v) = hex::decode(&compact) {
            return Ok((Encoding::Hex, vec![v]));
        }
    }
    if let Some(v) = decode_base64_lenient(trimmed) {
        return Ok((Encoding::Base64, vec![v]));
    }
    // Binary that happens to be valid UTF-8: byte for byte.
    Ok((Encoding::Der, vec![data.to_vec()]))
}

/// Unicode bidirectional formatting characters (Unicode UAX #9 explicit controls and marks),
/// which reorder how a line is displayed ("Trojan Source", CVE-2021-42574).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control characters (C0, DEL, C1) and bidi controls escaped (`\n`, `\r`, `\t`,
/// otherwise `\u{..}`), so that text from outside cannot forge or reorder log lines.
/// Everything else, backslashes included, is kept.
pub fn escape_for_log(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_bidi_control(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_comment_header_lines() {
        assert_eq!(strip_comment_lines(b"# a\n# b\nAAAA\n"), b"AAAA\n");
        assert_eq!(strip_comment_lines(b"# only"), b"");
    }

    #[test]
    fn detects_hex_base64_and_json() {
        assert_eq!(
            artifact_bytes(b"# h\nd284 43a1\n").expect("hex").0,
            Encoding::Hex
        );
        assert_eq!(
            artifact_bytes(b"MIIB\nAA==\n").expect("b64"),
            (Encoding::Base64, vec![vec![0x30, 0x82, 0x01, 0x00]])
        );
        assert_eq!(
            artifact_bytes(b" {\"a\":1}").expect("json").0,
            Encoding::Text
        );
        assert!(matches!(artifact_bytes(b"# x\n"), Err(InputError::Empty)));
    }

    #[test]
    fn binary_is_taken_byte_for_byte() {
        // DER whose last byte is a space or a newline, and binary that starts with one.
        for data in [
            &[0x30, 0x03, 0x02, 0x01, 0x20][..],
            &[0x30, 0x82, 0x0a][..],
            &[0x0a, 0xff][..],
        ] {
            assert_eq!(
                artifact_bytes(data).expect("binary"),
                (Encoding::Der, vec![data.to_vec()])
            );
        }
    }

    #[test]
    fn log_text_has_no_controls_or_bidi_left() {
        assert_eq!(
            escape_for_log("a\nFORGED\x1b[31m\u{202e}\u{85}\\x"),
            "a\\nFORGED\\u{1b}[31m\\u{202e}\\u{85}\\x"
        );
        assert!(matches!(
            escape_for_log("plain é"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    proptest::proptest! {
        #[test]
        fn escaped_log_text_is_one_safe_line(text in "\\PC*|[\\x00-\\x1f\\u{202a}-\\u{202e}a]*") {
            let out = escape_for_log(&text);
            proptest::prop_assert!(!out.chars().any(|c| c.is_control() || is_bidi_control(c)));
        }
    }

    #[test]
    fn pem_round_trip() {
        let pem = to_pem("CERTIFICATE", &[1, 2, 3, 4]);
        assert_eq!(
            pem_block(&pem, &["CERTIFICATE"]).expect("pem"),
            vec![1, 2, 3, 4]
        );
        assert!(matches!(
            pem_block(&pem, &["PRIVATE KEY"]),
            Err(InputError::NoPemBlock(_))
        ));
    }
}
