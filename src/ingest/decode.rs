//! Text encodings of input files: detection and streaming transcoding to UTF-8.
//!
//! CSV files exported from Excel in mainland China are GB18030 (GBK), in Taiwan and Hong Kong
//! often Big5, elsewhere sometimes UTF-16 with a byte-order mark. The readers work on UTF-8
//! bytes, so a file in another encoding is transcoded as it is read ([`Transcode`]). A byte
//! sequence that is not valid in the file's encoding becomes the byte `0xFF`, which is never
//! valid UTF-8: the record holding it is rejected with its line and field, as an invalid UTF-8
//! record is, and nothing is replaced silently.

use crate::error::{Error, Result};
use encoding_rs::{DecoderResult, Encoding, GB18030, UTF_16BE, UTF_16LE, UTF_8};
use std::io::{BufRead, Read};
use std::path::Path;

/// How many leading bytes [`detect`] looks at.
const SNIFF_BYTES: usize = 1 << 16;

/// Bytes [`Transcode`] reads from its source at a time.
const BLOCK: usize = 1 << 16;

/// The encoding of an input file: named by the user, or detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextEncoding {
    /// The encoding (encoding_rs's WHATWG encodings).
    pub encoding: &'static Encoding,
    /// Whether it was detected rather than named with `--encoding`.
    pub detected: bool,
}

impl TextEncoding {
    /// UTF-8, as named (spreadsheets, whose cells are text already, report this).
    pub fn utf8() -> TextEncoding {
        TextEncoding {
            encoding: UTF_8,
            detected: false,
        }
    }

    /// Looks up an encoding by its WHATWG label (`utf-8`, `gb18030`, `gbk`, `big5`,
    /// `utf-16le`, `shift_jis`, `windows-1252`, ...), case-insensitively.
    pub fn from_label(label: &str) -> Result<TextEncoding> {
        let encoding = Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown encoding {label:?}: use a WHATWG label such as utf-8, gb18030, gbk, \
                 big5, utf-16le or shift_jis, or auto"
            ))
        })?;
        Ok(TextEncoding {
            encoding,
            detected: false,
        })
    }

    /// The encoding's name as the user would write it (`UTF-8`, `gb18030`, `Big5`).
    pub fn name(&self) -> &'static str {
        self.encoding.name()
    }

    /// Whether the bytes pass through untouched.
    pub fn is_utf8(&self) -> bool {
        self.encoding == UTF_8
    }

    /// The reject reason for a field whose bytes are not valid in this encoding.
    pub fn invalid_reason(&self) -> String {
        if self.is_utf8() {
            "invalid UTF-8 (if the file is not UTF-8, name its encoding with --encoding, e.g. \
             gb18030 or big5)"
                .into()
        } else if self.detected {
            format!(
                "bytes that are not valid {} (the file's encoding was detected; name it with \
                 --encoding if it is another)",
                self.name()
            )
        } else {
            format!("bytes that are not valid {}", self.name())
        }
    }
}

/// Detects the encoding from the start of `src` without consuming it: a UTF-16 byte-order mark
/// gives UTF-16; bytes that are valid UTF-8 (a sequence cut at the end of the sample allowed)
/// give UTF-8; else GB18030 (the superset of GBK and GB2312 that Excel writes on Chinese
/// Windows) when it finds fewer malformed sequences in the sample than UTF-8 does; else UTF-8.
/// Either way a record with bytes invalid in the chosen encoding is rejected with its line.
pub fn detect(src: &mut dyn BufRead) -> std::io::Result<TextEncoding> {
    let buf = src.fill_buf()?;
    let sample = &buf[..buf.len().min(SNIFF_BYTES)];
    let detected = |encoding| TextEncoding {
        encoding,
        detected: true,
    };
    if sample.starts_with(b"\xff\xfe") {
        return Ok(detected(UTF_16LE));
    }
    if sample.starts_with(b"\xfe\xff") {
        return Ok(detected(UTF_16BE));
    }
    let utf8_errors = utf8_errors(sample);
    if utf8_errors == 0 {
        return Ok(detected(UTF_8));
    }
    if malformed(GB18030, sample, sample.len() < SNIFF_BYTES) < utf8_errors {
        return Ok(detected(GB18030));
    }
    Ok(detected(UTF_8))
}

/// Invalid UTF-8 sequences in `bytes` (a sequence cut at the very end is not counted).
fn utf8_errors(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    loop {
        match std::str::from_utf8(bytes) {
            Ok(_) => return n,
            Err(e) => match e.error_len() {
                None => return n,
                Some(len) => {
                    n += 1;
                    bytes = &bytes[e.valid_up_to() + len..];
                }
            },
        }
    }
}

/// Malformed sequences when `bytes` are decoded in `enc` (at the end, a cut sequence is
/// counted only when `complete`).
fn malformed(enc: &'static Encoding, bytes: &[u8], complete: bool) -> usize {
    let mut dec = enc.new_decoder_without_bom_handling();
    let cap = dec
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len() * 4);
    let mut out = vec![0u8; cap.max(16)];
    let (mut read, mut n) = (0, 0);
    loop {
        let (res, r, _) =
            dec.decode_to_utf8_without_replacement(&bytes[read..], &mut out, complete);
        read += r;
        match res {
            DecoderResult::Malformed(..) => n += 1,
            DecoderResult::InputEmpty | DecoderResult::OutputFull if read >= bytes.len() => {
                return n
            }
            DecoderResult::InputEmpty => return n,
            DecoderResult::OutputFull => {}
        }
    }
}

/// Opens the encoding named in a config (`None` or `auto`: detected from `src`).
pub fn resolve(path: &Path, label: Option<&str>, src: &mut dyn BufRead) -> Result<TextEncoding> {
    match label.map(str::trim) {
        None | Some("") => detect(src).map_err(|e| Error::io(path, e)),
        Some(l) if l.eq_ignore_ascii_case("auto") => detect(src).map_err(|e| Error::io(path, e)),
        Some(l) => TextEncoding::from_label(l).map_err(|e| Error::input(path, e.to_string())),
    }
}

/// A reader that transcodes its source to UTF-8; malformed sequences become `0xFF` bytes.
/// A byte-order mark of the encoding is removed.
pub struct Transcode<R> {
    src: R,
    decoder: encoding_rs::Decoder,
    /// Raw bytes read but not decoded yet.
    input: Vec<u8>,
    /// Decoded bytes not handed out yet, from `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
}

impl<R: Read> Transcode<R> {
    /// Transcodes `src` from `enc` to UTF-8.
    pub fn new(src: R, enc: &'static Encoding) -> Transcode<R> {
        Transcode {
            src,
            decoder: enc.new_decoder_with_bom_removal(),
            input: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            eof: false,
        }
    }

    /// Decodes the next block into `out` (its buffer reused); false at the end of the input.
    fn refill(&mut self) -> std::io::Result<bool> {
        self.out.clear();
        self.out_pos = 0;
        while self.out.is_empty() {
            if self.eof && self.input.is_empty() {
                return Ok(false);
            }
            if !self.eof {
                let had = self.input.len();
                self.input.resize(had + BLOCK, 0);
                let n = self.src.read(&mut self.input[had..])?;
                self.input.truncate(had + n);
                self.eof = n == 0;
            }
            let cap = self
                .decoder
                .max_utf8_buffer_length_without_replacement(self.input.len())
                .unwrap_or(self.input.len() * 4)
                .max(16);
            self.out.resize(cap, 0);
            let (mut read, mut written) = (0, 0);
            loop {
                let (res, r, w) = self.decoder.decode_to_utf8_without_replacement(
                    &self.input[read..],
                    &mut self.out[written..],
                    self.eof,
                );
                read += r;
                written += w;
                match res {
                    DecoderResult::InputEmpty => break,
                    DecoderResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                    DecoderResult::Malformed(..) => {
                        if written == self.out.len() {
                            self.out.resize(self.out.len() * 2, 0);
                        }
                        self.out[written] = 0xFF;
                        written += 1;
                    }
                }
            }
            // the decoder keeps a cut sequence in its own state: all input is consumed
            self.input.drain(..read);
            self.out.truncate(written);
        }
        Ok(true)
    }
}

impl<R: Read> Read for Transcode<R> {
    fn read(&mut self, dst: &mut [u8]) -> std::io::Result<usize> {
        if self.out_pos >= self.out.len() && !self.refill()? {
            return Ok(0);
        }
        let n = dst.len().min(self.out.len() - self.out_pos);
        dst[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcode(bytes: &[u8], enc: &'static Encoding) -> Vec<u8> {
        let mut out = Vec::new();
        Transcode::new(bytes, enc).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn gb18030_round_trips_and_is_detected() {
        let text = "id,text\n1,物流太慢了，客服也不回复\n2,請問可以退貨嗎\n";
        let (bytes, _, bad) = GB18030.encode(text);
        assert!(!bad);
        assert_ne!(bytes.as_ref(), text.as_bytes());
        let mut src: &[u8] = &bytes;
        let enc = detect(&mut src).unwrap();
        assert_eq!(enc.encoding, GB18030);
        assert!(enc.detected);
        assert_eq!(transcode(&bytes, GB18030), text.as_bytes());
    }

    #[test]
    fn utf8_and_utf16_are_detected() {
        let mut s: &[u8] = "id,text\n1,好评\n".as_bytes();
        assert_eq!(detect(&mut s).unwrap().encoding, UTF_8);
        let mut le = vec![0xFF, 0xFE];
        for u in "id,text\n1,好评\n".encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
        }
        let mut s: &[u8] = &le;
        assert_eq!(detect(&mut s).unwrap().encoding, UTF_16LE);
        assert_eq!(transcode(&le, UTF_16LE), "id,text\n1,好评\n".as_bytes());
    }

    #[test]
    fn a_utf8_character_cut_by_the_sample_is_still_utf8() {
        let mut bytes = "好".repeat(SNIFF_BYTES / 3 + 1).into_bytes();
        bytes.truncate(SNIFF_BYTES + 1);
        let mut s: &[u8] = &bytes;
        assert_eq!(detect(&mut s).unwrap().encoding, UTF_8);
    }

    #[test]
    fn malformed_bytes_become_invalid_utf8_and_nothing_else_changes() {
        // 0x81 0x20 is not a GB18030 sequence
        let mut bytes = GB18030.encode("1,好\n").0.into_owned();
        bytes.extend_from_slice(b"2,\x81\x20x\n3,ok\n");
        let out = transcode(&bytes, GB18030);
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        assert_eq!(lines[0], "1,好".as_bytes());
        assert!(std::str::from_utf8(lines[1]).is_err());
        assert_eq!(lines[2], b"3,ok");
    }

    #[test]
    fn a_gb18030_file_with_one_bad_sequence_is_still_gb18030() {
        let mut bytes = GB18030
            .encode("id,text\n1,物流太慢了，等了一个星期\n")
            .0
            .into_owned();
        bytes.extend_from_slice(b"2,bad \x81\x20\n");
        let mut s: &[u8] = &bytes;
        assert_eq!(detect(&mut s).unwrap().encoding, GB18030);
        // and a UTF-8 file with one bad byte stays UTF-8
        let mut bytes = "id,text\n1,物流太慢了，等了一个星期\n".as_bytes().to_vec();
        bytes.extend_from_slice(b"2,bad \xff\n");
        let mut s: &[u8] = &bytes;
        assert_eq!(detect(&mut s).unwrap().encoding, UTF_8);
    }

    #[test]
    fn unknown_labels_are_refused() {
        assert!(TextEncoding::from_label("klingon").is_err());
        assert_eq!(
            TextEncoding::from_label("GBK").unwrap().encoding,
            encoding_rs::GBK
        );
        assert_eq!(TextEncoding::from_label("big5").unwrap().name(), "Big5");
    }
}
