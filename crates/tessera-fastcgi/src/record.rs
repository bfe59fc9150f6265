//! FastCGI record framing: the subset a responder client needs (FastCGI 1.0 spec, sections 3 and 5).

pub(crate) const HEADER_LEN: usize = 8;
pub(crate) const BEGIN_REQUEST: u8 = 1;
pub(crate) const END_REQUEST: u8 = 3;
pub(crate) const PARAMS: u8 = 4;
pub(crate) const STDIN: u8 = 5;
pub(crate) const STDOUT: u8 = 6;
pub(crate) const STDERR: u8 = 7;
/// One request per connection, so the id is always 1 (as nginx does).
pub(crate) const REQUEST_ID: u16 = 1;

const VERSION_1: u8 = 1;
const ROLE_RESPONDER: u16 = 1;
const MAX_CONTENT: usize = 0xFFFF;

/// The fixed 8-byte header that starts every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub kind: u8,
    pub request_id: u16,
    pub content_len: usize,
    pub padding_len: usize,
}

/// The whole request: BEGIN_REQUEST (responder, flags 0 so the server closes the connection when
/// done), the encoded params as a PARAMS stream, and an empty STDIN stream.
pub(crate) fn encode_request(params: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(params.len() + 64);
    let mut begin = [0u8; 8];
    begin[..2].copy_from_slice(&ROLE_RESPONDER.to_be_bytes());
    push_record(&mut out, BEGIN_REQUEST, &begin);
    for chunk in params.chunks(MAX_CONTENT) {
        push_record(&mut out, PARAMS, chunk);
    }
    push_record(&mut out, PARAMS, &[]);
    push_record(&mut out, STDIN, &[]);
    out
}

/// Appends one record, padded to a multiple of 8 bytes.
fn push_record(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT);
    let padding = (8 - content.len() % 8) % 8;
    out.extend_from_slice(&[VERSION_1, kind]);
    out.extend_from_slice(&REQUEST_ID.to_be_bytes());
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[padding as u8, 0]);
    out.extend_from_slice(content);
    out.resize(out.len() + padding, 0);
}

/// Appends a name-value pair: each length takes 1 byte below 128, else 4 with the high bit set.
pub(crate) fn push_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    push_len(out, name.len());
    push_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let len = u32::try_from(len).expect("FastCGI name or value longer than 2 GiB");
        out.extend_from_slice(&(len | 0x8000_0000).to_be_bytes());
    }
}

pub(crate) fn parse_header(bytes: &[u8; HEADER_LEN]) -> Result<RecordHeader, String> {
    if bytes[0] != VERSION_1 {
        return Err(format!("unsupported FastCGI version {}", bytes[0]));
    }
    Ok(RecordHeader {
        kind: bytes[1],
        request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
        content_len: u16::from_be_bytes([bytes[4], bytes[5]]).into(),
        padding_len: bytes[6].into(),
    })
}

/// END_REQUEST's body: (appStatus, protocolStatus).
pub(crate) fn parse_end_request(content: &[u8]) -> Result<(u32, u8), String> {
    match content {
        [a, b, c, d, protocol_status, ..] => {
            Ok((u32::from_be_bytes([*a, *b, *c, *d]), *protocol_status))
        }
        _ => Err(format!(
            "END_REQUEST body is {} bytes, expected 8",
            content.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_use_short_and_long_lengths() {
        let mut out = Vec::new();
        push_pair(&mut out, b"A", b"xyz");
        assert_eq!(out, b"\x01\x03Axyz");

        let long = vec![b'v'; 200];
        let mut out = Vec::new();
        push_pair(&mut out, b"NAME", &long);
        assert_eq!(&out[..6], &[4, 0x80, 0, 0, 200, b'N']);
        assert_eq!(out.len(), 1 + 4 + 4 + 200);

        let mut out = Vec::new();
        push_pair(&mut out, &[b'n'; 127], b"");
        assert_eq!(out[..2], [127, 0]);
        let mut out = Vec::new();
        push_pair(&mut out, &[b'n'; 128], b"");
        assert_eq!(out[..5], [0x80, 0, 0, 128, 0]);
    }

    #[test]
    fn request_is_begin_params_empty_params_empty_stdin() {
        let wire = encode_request(b"\x01\x01ab");
        let begin = [1, BEGIN_REQUEST, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(wire[..16], begin, "role responder, flags 0");
        // 4 bytes of params padded to 8.
        assert_eq!(wire[16..24], [1, PARAMS, 0, 1, 0, 4, 4, 0]);
        assert_eq!(wire[24..32], [1, 1, b'a', b'b', 0, 0, 0, 0]);
        assert_eq!(wire[32..40], [1, PARAMS, 0, 1, 0, 0, 0, 0]);
        assert_eq!(wire[40..48], [1, STDIN, 0, 1, 0, 0, 0, 0]);
        assert_eq!(wire.len(), 48);
    }

    #[test]
    fn large_params_are_split_into_records() {
        let params = vec![7u8; MAX_CONTENT + 10];
        let wire = encode_request(&params);
        let mut at = 16;
        let mut lens = Vec::new();
        while at < wire.len() {
            let h = parse_header(wire[at..at + 8].try_into().unwrap()).unwrap();
            lens.push((h.kind, h.content_len));
            at += HEADER_LEN + h.content_len + h.padding_len;
        }
        assert_eq!(at, wire.len());
        let expected = [(PARAMS, MAX_CONTENT), (PARAMS, 10), (PARAMS, 0), (STDIN, 0)];
        assert_eq!(lens, expected);
    }

    #[test]
    fn parses_headers_and_end_request() {
        let h = parse_header(&[1, STDOUT, 0, 1, 0x12, 0x34, 4, 0]).unwrap();
        let expected = RecordHeader {
            kind: STDOUT,
            request_id: 1,
            content_len: 0x1234,
            padding_len: 4,
        };
        assert_eq!(h, expected);
        assert!(parse_header(&[2, STDOUT, 0, 1, 0, 0, 0, 0]).is_err());
        assert_eq!(parse_end_request(&[0, 0, 1, 2, 3, 0, 0, 0]), Ok((258, 3)));
        assert!(parse_end_request(&[0, 0]).is_err());
    }
}
