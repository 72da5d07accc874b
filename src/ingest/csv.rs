//! CSV records, read physical line by physical line.
//!
//! The parser follows the csv crate's rules (a field that starts with `"` is quoted, `""` inside
//! it is a quote, `\n`, `\r\n` and `\r` end a record outside quotes, empty lines are skipped), but
//! it bounds how far a quoted field may run: a quote that is still open after
//! [`MAX_QUOTED_LINES`] physical lines, after [`MAX_QUOTED_BYTES`] bytes past its record's first
//! line, or at the end of the file is taken as unbalanced. That record is rejected with its line
//! and field, and reading starts again at the physical line after the record's first line, so
//! one stray quote costs one record instead of every record after it.

use super::{Item, RawFields, Reader};
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::io::BufRead;
use std::path::Path;

/// A quoted field still open after this many physical lines is unbalanced.
pub const MAX_QUOTED_LINES: usize = 100;
/// A quoted field still open after this many bytes past its record's first line is unbalanced.
pub const MAX_QUOTED_BYTES: usize = 1 << 20;

/// One CSV record as read.
#[derive(Debug, PartialEq)]
pub(super) enum Record {
    /// A complete record: its first line and its fields.
    Fields { line: u64, fields: Vec<Vec<u8>> },
    /// A record whose quoted field `field` (0-based), opened on `quote_line`, does not close:
    /// `fields` are the fields before it.
    Unbalanced {
        line: u64,
        quote_line: u64,
        field: usize,
        fields: Vec<Vec<u8>>,
        why: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` seen inside a quoted field: the end of the quotes, or the first of `""`.
    QuoteInQuoted,
}

/// The state of one record being parsed.
struct Parser {
    delim: u8,
    state: State,
    started: bool,
    fields: Vec<Vec<u8>>,
    cur: Vec<u8>,
    quote_field: usize,
    quote_line: u64,
}

/// What feeding a chunk did.
enum Fed {
    /// The record ended; the chunk's bytes from this offset on belong to the next one.
    End(usize),
    /// The chunk was consumed and the record goes on.
    More,
}

impl Parser {
    fn new(delim: u8) -> Parser {
        Parser {
            delim,
            state: State::FieldStart,
            started: false,
            fields: Vec::new(),
            cur: Vec::new(),
            quote_field: 0,
            quote_line: 0,
        }
    }

    fn end_field(&mut self) {
        self.fields.push(std::mem::take(&mut self.cur));
        self.state = State::FieldStart;
    }

    fn feed(&mut self, chunk: &[u8], line: u64) -> Fed {
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            i += 1;
            match self.state {
                State::Quoted => {
                    if b == b'"' {
                        self.state = State::QuoteInQuoted;
                    } else {
                        self.cur.push(b);
                    }
                }
                _ if b == b'\n' || b == b'\r' => {
                    if !self.started {
                        continue; // an empty line
                    }
                    if b == b'\r' && chunk.get(i) == Some(&b'\n') {
                        i += 1;
                    }
                    self.end_field();
                    return Fed::End(i);
                }
                _ if b == self.delim => {
                    self.started = true;
                    self.end_field();
                }
                State::FieldStart if b == b'"' => {
                    self.started = true;
                    self.state = State::Quoted;
                    self.quote_field = self.fields.len();
                    self.quote_line = line;
                }
                State::QuoteInQuoted if b == b'"' => {
                    self.cur.push(b'"');
                    self.state = State::Quoted;
                }
                State::FieldStart | State::Unquoted | State::QuoteInQuoted => {
                    self.started = true;
                    self.cur.push(b);
                    self.state = State::Unquoted;
                }
            }
        }
        Fed::More
    }
}

/// Streams [`Record`]s out of CSV bytes.
pub(super) struct Records {
    src: Box<dyn BufRead + Send>,
    delim: u8,
    /// Physical lines read from `src` so far.
    lines_read: u64,
    /// Chunks to read again (after an unbalanced quote) or the rest of a line after a `\r`.
    pending: VecDeque<(u64, Vec<u8>)>,
}

impl Records {
    pub(super) fn new(src: Box<dyn BufRead + Send>, delim: u8) -> Records {
        Records {
            src,
            delim,
            lines_read: 0,
            pending: VecDeque::new(),
        }
    }

    /// The next physical line (with its terminator) and its 1-based number.
    fn physical(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(Some(p));
        }
        let mut buf = Vec::new();
        if self.src.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        self.lines_read += 1;
        if self.lines_read == 1 && buf.starts_with(b"\xef\xbb\xbf") {
            buf.drain(..3);
        }
        Ok(Some((self.lines_read, buf)))
    }

    /// The next record, `None` at the end of the input.
    pub(super) fn next_record(&mut self) -> std::io::Result<Option<Record>> {
        let mut p = Parser::new(self.delim);
        let mut start = 0u64;
        // Whole chunks read after the record's first one: read again if the quote is unbalanced.
        let mut later: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut later_bytes = 0usize;
        loop {
            let Some((ln, chunk)) = self.physical()? else {
                if !p.started {
                    return Ok(None);
                }
                if p.state == State::Quoted {
                    let why = "before the end of the file".to_string();
                    return Ok(Some(self.unbalanced(p, start, later, why)));
                }
                p.end_field();
                return Ok(Some(Record::Fields {
                    line: start,
                    fields: p.fields,
                }));
            };
            let was_started = p.started;
            let fed = p.feed(&chunk, ln);
            if !was_started && p.started {
                start = ln;
            }
            match fed {
                Fed::End(at) => {
                    if at < chunk.len() {
                        self.pending.push_front((ln, chunk[at..].to_vec()));
                    }
                    return Ok(Some(Record::Fields {
                        line: start,
                        fields: p.fields,
                    }));
                }
                Fed::More => {
                    if was_started {
                        later_bytes += chunk.len();
                        later.push((ln, chunk));
                    }
                    if p.state != State::Quoted {
                        continue;
                    }
                    if later.len() + 1 >= MAX_QUOTED_LINES {
                        let why = format!("within {MAX_QUOTED_LINES} lines");
                        return Ok(Some(self.unbalanced(p, start, later, why)));
                    }
                    if later_bytes > MAX_QUOTED_BYTES {
                        let why = format!("within {} MiB", MAX_QUOTED_BYTES >> 20);
                        return Ok(Some(self.unbalanced(p, start, later, why)));
                    }
                }
            }
        }
    }

    /// Gives back the chunks after the record's first line and reports the record.
    fn unbalanced(
        &mut self,
        p: Parser,
        start: u64,
        later: Vec<(u64, Vec<u8>)>,
        why: String,
    ) -> Record {
        for chunk in later.into_iter().rev() {
            self.pending.push_front(chunk);
        }
        Record::Unbalanced {
            line: start,
            quote_line: p.quote_line,
            field: p.quote_field,
            fields: p.fields,
            why,
        }
    }
}

/// Column positions in a CSV header.
#[derive(Debug, Default)]
pub(super) struct CsvIndex {
    id: Option<usize>,
    text: usize,
    time: Option<usize>,
    channel: Option<usize>,
    rating: Option<usize>,
    tier: Option<usize>,
    product: Option<usize>,
    pub(super) names: Vec<String>,
}

/// Picks the delimiter of a CSV file from its header line (the first line in `src`, which is not
/// consumed): the one of `,` `;` tab `|` found most often outside double quotes; `,` on a tie
/// or when none is found. Excel writes `;` where the decimal mark is a comma.
pub(super) fn sniff_delimiter(src: &mut dyn std::io::BufRead) -> std::io::Result<u8> {
    let buf = src.fill_buf()?;
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut counts = [0usize; 4];
    let cands = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(i) = cands.iter().position(|&c| c == b) {
                counts[i] += 1;
            }
        }
    }
    let mut best = 0;
    for i in 1..cands.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    Ok(cands[best])
}

/// Reads the header record and maps the columns.
pub(super) fn read_header(
    path: &Path,
    records: &mut Records,
    cols: &super::ColumnMap,
) -> Result<CsvIndex> {
    let header = match records.next_record() {
        Err(e) => {
            return Err(Error::input(
                path,
                format!("cannot read the CSV header: {e}"),
            ))
        }
        Ok(None) => return Err(Error::input(path, "the file is empty: no CSV header")),
        Ok(Some(Record::Unbalanced { line, .. })) => {
            return Err(Error::input(
                path,
                format!("cannot read the CSV header: a quote opened on line {line} is not closed"),
            ))
        }
        Ok(Some(Record::Fields { fields, .. })) => fields,
    };
    let names: Vec<String> = header
        .iter()
        .map(|b| String::from_utf8_lossy(b).trim().to_string())
        .collect();
    map_header(path, names, cols)
}

/// Maps the header's column names (of a CSV file or a sheet) to the fields of a comment.
pub(super) fn map_header(
    path: &Path,
    names: Vec<String>,
    cols: &super::ColumnMap,
) -> Result<CsvIndex> {
    let find = |name: &str| names.iter().position(|n| n == name);
    let text = find(&cols.text).ok_or_else(|| {
        Error::input(
            path,
            format!(
                "the header has no text column {:?} (columns: {}); name it with --text-col or a --columns file",
                cols.text,
                names.join(", ")
            ),
        )
    })?;
    Ok(CsvIndex {
        id: find(&cols.id),
        text,
        time: find(&cols.time),
        channel: find(&cols.channel),
        rating: find(&cols.rating),
        tier: find(&cols.tier),
        product: find(&cols.product),
        names,
    })
}

impl Reader {
    pub(super) fn next_csv(&mut self) -> Option<Result<Item>> {
        let super::Inner::Csv { records, idx } = &mut self.inner else {
            return None;
        };
        let record = match records.next_record() {
            Ok(None) => return None,
            Ok(Some(r)) => r,
            Err(e) => {
                let line = records.lines_read + 1;
                return Some(Err(Error::input(&self.file, format!("line {line}: {e}"))));
            }
        };
        let utf8 = |fields: &[Vec<u8>], i: Option<usize>| -> Option<String> {
            i.and_then(|i| fields.get(i))
                .and_then(|b| String::from_utf8(b.clone()).ok())
        };
        let (line, fields) = match record {
            Record::Unbalanced {
                line,
                quote_line,
                field,
                fields,
                why,
            } => {
                let id_guess = utf8(&fields, idx.id);
                let name = idx.names.get(field).cloned();
                let reason = format!(
                    "unbalanced quote: the quoted field {} opened on line {quote_line} is not closed {why}; \
                     the lines after line {line} are read as new records",
                    name.as_deref().map_or(format!("#{}", field + 1), |n| format!("{n:?}")),
                );
                return Some(Ok(self.reject(id_guess, line, name.as_deref(), reason)));
            }
            Record::Fields { line, fields } => (line, fields),
        };
        Some(Ok(self.fields_item(line, fields)))
    }

    /// Turns one record's fields (of a CSV file or a sheet) into a comment or a reject.
    pub(super) fn fields_item(&mut self, line: u64, fields: Vec<Vec<u8>>) -> Item {
        let idx = match &self.inner {
            super::Inner::Csv { idx, .. } | super::Inner::Sheet { idx, .. } => idx,
            super::Inner::Jsonl { .. } | super::Inner::Parquet { .. } => {
                let reason =
                    "a JSONL or Parquet record read as CSV columns (a bug: please report it)"
                        .into();
                return self.reject(None, line, None, reason);
            }
        };
        let utf8 = |fields: &[Vec<u8>], i: Option<usize>| -> Option<String> {
            i.and_then(|i| fields.get(i))
                .and_then(|b| String::from_utf8(b.clone()).ok())
        };
        let id_guess = utf8(&fields, idx.id);
        let n_fields = idx.names.len();
        if fields.len() != n_fields {
            let reason = format!(
                "malformed CSV record: expected {} fields as in the header, found {}",
                n_fields,
                fields.len()
            );
            return self.reject(id_guess, line, None, reason);
        }
        let cols = [
            idx.id,
            Some(idx.text),
            idx.time,
            idx.channel,
            idx.rating,
            idx.tier,
            idx.product,
        ];
        let mut vals: Vec<Option<String>> = Vec::with_capacity(cols.len());
        for c in cols {
            match c.and_then(|i| fields.get(i).map(|b| (i, b))) {
                None => vals.push(None),
                Some((i, b)) => match String::from_utf8(b.clone()) {
                    Ok(s) => vals.push(Some(s)),
                    Err(_) => {
                        let field = idx.names[i].clone();
                        let reason = self.encoding.invalid_reason();
                        return self.reject(id_guess, line, Some(&field), reason);
                    }
                },
            }
        }
        let mut it = vals.into_iter();
        let raw = RawFields {
            id: it.next().flatten(),
            text: it.next().flatten(),
            time: it.next().flatten(),
            channel: it.next().flatten(),
            rating: it.next().flatten(),
            tier: it.next().flatten(),
            product: it.next().flatten(),
        };
        self.finish(raw, line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Vec<Record> {
        let mut r = Records::new(Box::new(std::io::Cursor::new(bytes.to_vec())), b',');
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(rec);
        }
        out
    }

    fn rec(line: u64, f: &[&str]) -> Record {
        Record::Fields {
            line,
            fields: f.iter().map(|s| s.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn quotes_line_ends_and_empty_lines_as_the_csv_crate_reads_them() {
        let got = parse(
            b"\xef\xbb\xbfid,text\r\n\r\na,\"x, \"\"y\"\"\nz\"\rb,plain \"q\" \n\nc,\"end\"tail\nd,",
        );
        assert_eq!(
            got,
            vec![
                rec(1, &["id", "text"]),
                rec(3, &["a", "x, \"y\"\nz"]),
                rec(4, &["b", "plain \"q\" "]),
                rec(6, &["c", "endtail"]),
                rec(7, &["d", ""]),
            ]
        );
    }

    #[test]
    fn an_unbalanced_quote_costs_one_record() {
        // to the end of the file
        let got = parse("id,text\nr1,ok\nq1,\"open quote\nr2,物流太慢\nr3,退款没到\n".as_bytes());
        assert_eq!(got.len(), 5, "{got:?}");
        let Record::Unbalanced {
            line,
            quote_line,
            field,
            fields,
            why,
        } = &got[2]
        else {
            panic!("{got:?}")
        };
        assert_eq!((*line, *quote_line, *field), (3, 3, 1));
        assert_eq!(fields, &vec![b"q1".to_vec()]);
        assert_eq!(why, "before the end of the file");
        assert_eq!(got[3], rec(4, &["r2", "物流太慢"]));
        assert_eq!(got[4], rec(5, &["r3", "退款没到"]));

        // past the line bound, with a closing quote far below
        let mut s = String::from("id,text\nq1,\"open\n");
        for i in 0..150 {
            s += &format!("r{i},row {i}\n");
        }
        s += "z,end\"\n";
        let got = parse(s.as_bytes());
        assert!(
            matches!(got[1], Record::Unbalanced { line: 2, .. }),
            "{:?}",
            got[1]
        );
        assert_eq!(got[2], rec(3, &["r0", "row 0"]));
        assert_eq!(got[151], rec(152, &["r149", "row 149"]));
        // the stray closing quote opens nothing: the last line is a record of its own
        assert_eq!(got[152], rec(153, &["z", "end\""]));
        assert_eq!(got.len(), 153);

        // a legitimate comment over a few lines is one record
        let got = parse(b"id,text\nm1,\"line one\nline two\n\nline four\"\nm2,x\n");
        assert_eq!(got[1], rec(2, &["m1", "line one\nline two\n\nline four"]));
        assert_eq!(got[2], rec(6, &["m2", "x"]));
    }

    #[test]
    fn the_byte_bound_holds_on_few_lines() {
        let big = "x".repeat(MAX_QUOTED_BYTES / 2);
        let s = format!("id,text\nq1,\"{big}\n{big}\n{big}\nr2,ok\n");
        let got = parse(s.as_bytes());
        assert!(matches!(&got[1], Record::Unbalanced { why, .. } if why.contains("MiB")));
        assert_eq!(got.last(), Some(&rec(5, &["r2", "ok"])));
        // a long field on one line is not bounded
        let s = format!("id,text\nq1,\"{big}{big}{big}\"\n");
        assert!(matches!(&parse(s.as_bytes())[1], Record::Fields { .. }));
    }
}
