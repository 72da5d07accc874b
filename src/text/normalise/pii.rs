//! Personal-data masking: phone numbers, e-mail addresses, ID-card and bank-card numbers.
//!
//! Detection runs on a *folded view* of the text: every character NFKC-folded on its own
//! (full-width digits, letters, `＠`, `．`, `－`, `（`, ideographic space fold to ASCII) and the
//! Unicode dashes made `-`, with a map from each byte of the view back to the character of the
//! text it came from. A match in the view is mapped back to the characters as written and only
//! those are replaced, so everything else keeps its original script and width.
//!
//! Detectors run in a fixed order (e-mail, ID card, bank card, then the phone forms); the
//! characters a detector masked are blanked in the view before the next one runs, so one
//! number is never masked twice. Every pattern is compiled once; scanning is linear in the
//! text (number patterns have a bounded length, and a rejected candidate is retried one
//! character further on).
//!
//! README.md ("What PII masking covers") lists the forms masked and those left alone.

use regex::Regex;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

/// One optional separator inside a phone number: a space, hyphen or dot, or a spaced hyphen.
const SEP: &str = r"(?: - |[ \-.])";

/// A width-folded copy of a text with, for each of its bytes, the byte offset of the character
/// of the original it came from.
struct View {
    text: String,
    src: Vec<usize>,
}

fn is_dash(c: char) -> bool {
    matches!(
        c,
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{fe58}' | '\u{fe63}' | '\u{ff0d}'
    )
}

fn fold_view(s: &str) -> View {
    let mut text = String::with_capacity(s.len());
    let mut src = Vec::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        if c.is_ascii() {
            text.push(c);
            src.push(i);
        } else if is_dash(c) {
            text.push('-');
            src.push(i);
        } else {
            for f in std::iter::once(c).nfkc() {
                text.push(f);
                src.extend(std::iter::repeat_n(i, f.len_utf8()));
            }
        }
    }
    View { text, src }
}

impl View {
    /// The byte range of the original `s` covering the view's `[start, end)`: whole
    /// characters of the original.
    fn original(&self, s: &str, start: usize, end: usize) -> Option<(usize, usize)> {
        let a = *self.src.get(start)?;
        let last = *self.src.get(end.checked_sub(1)?)?;
        let len = s.get(last..)?.chars().next()?.len_utf8();
        Some((a, last + len))
    }
}

/// The kinds of personal data, in detection order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    IdCard,
    BankCard,
    Phone,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::IdCard => "ID_CARD",
            Kind::BankCard => "BANK_CARD",
            Kind::Phone => "PHONE",
        }
    }
}

/// Which ASCII letters may touch a number: letters are never part of a number, but a number
/// glued to a word (`tel15912345678`, `ID110101199003071234`) is still one for the strongly
/// structured forms; weaker forms need a clean edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// Letters may touch one side, not both (`a3f13812345678b2` is a hash, not a number).
    OneSide,
    /// Letters may come before, not after.
    Left,
    /// No letter on either side, and not one group of a longer grouped number.
    Strict,
}

/// Extra checks of a candidate number beyond its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Mainland mobile: digit groups of at least 3, one kind of separator, at most 3 of them.
    Mobile,
    /// Mainland ID card, 18 characters (birth date, region, one kind of separator).
    IdCard18,
    /// Old mainland ID card, 15 digits.
    IdCard15,
    /// Bank card: 14 to 19 digits passing the Luhn check.
    Luhn,
    /// Nothing beyond the pattern.
    Plain,
    /// A bare 8-digit number in two groups of 4 (Hong Kong, or a mainland local number): not
    /// a date (`2024 0501`), a range of years (`2019-2023`) or of round numbers (`5000-6000`).
    Bare8,
    /// Any other international number: whole digit groups while the count stays within 15,
    /// and at least 8.
    International,
}

struct Detector {
    kind: Kind,
    re: Regex,
    edge: Edge,
    check: Check,
}

struct Patterns {
    email_domain: Regex,
    numbers: Vec<Detector>,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(&s.replace("SEP", SEP)).expect("valid built-in PII pattern");
        let d = |kind, s: &str, edge, check| Detector {
            kind,
            re: re(s),
            edge,
            check,
        };
        // An IDN label: non-ASCII letters, marks or digits (no punctuation, symbols, spaces).
        let idn = r"[^\x00-\x7F\p{P}\p{S}\p{Z}\p{C}]";
        let label = format!(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{{0,61}}[A-Za-z0-9])?|{idn}+)");
        // Chinese IDN top-level domains first, so a TLD flush against text ends where it
        // should (`例子.中国发了` ends at 中国); any other non-ASCII TLD is cut at 4 characters.
        let tld = format!(
            r"(?:[A-Za-z]{{2,24}}|中文网|中國|中国|香港|台灣|台湾|澳門|澳门|新加坡|公司|网络|網絡|集团|在线|商城|网店|我爱你|{idn}{{2,4}})"
        );
        use Check::*;
        use Edge::*;
        use Kind::*;
        Patterns {
            email_domain: re(&format!(r"@(?:{label}\.)+{tld}")),
            numbers: vec![
                d(IdCard, r"[1-9](?:[ \-]?[0-9]){16}[ \-]?[0-9Xx]", OneSide, IdCard18),
                d(IdCard, r"[1-9][0-9]{14}", OneSide, IdCard15),
                d(
                    BankCard,
                    r"[0-9]{4}(?:[ \-]?[0-9]{4}){2,3}(?:[ \-]?[0-9]{1,3})?",
                    OneSide,
                    Luhn,
                ),
                // mainland mobile, optional +86 / 0086 / 86 / (+86) prefix
                d(
                    Phone,
                    r"(?:(?:\+|00)?86SEP?|\(\+?86\) ?)?1[3-9](?:SEP?[0-9]){9}",
                    OneSide,
                    Mobile,
                ),
                // +86 landline: +86 10 8765 4321, +86 (0)755-2345-6789
                d(
                    Phone,
                    r"(?:\+|00)86SEP?(?:\(0?[1-9][0-9]{1,2}\)|\(0\) ?[1-9][0-9]{1,2}|0?[1-9][0-9]{1,2})SEP?[2-9][0-9]{2,3}SEP?[0-9]{4}",
                    Left,
                    Plain,
                ),
                // Hong Kong / Macau with their code: +852 9123 4567, (852) 2345-6789, 852-9123-4567
                d(
                    Phone,
                    r"(?:(?:\+|00)85[23]SEP?|85[23]SEP|\(\+?85[23]\)SEP?)[2-9][0-9]{3}SEP?[0-9]{4}",
                    Left,
                    Plain,
                ),
                // Taiwan with its code: +886 912 345 678, +886 2 2345 6789, 886-912-345-678
                d(
                    Phone,
                    r"(?:(?:\+|00)886SEP?|886SEP|\(\+?886\)SEP?)(?:9[0-9]{2}SEP?[0-9]{3}SEP?[0-9]{3}|\(?0?[2-8][0-9]{0,2}\)?SEP?[0-9]{3,4}SEP?[0-9]{4})",
                    Left,
                    Plain,
                ),
                // North America: +1 415 555 2671, (415) 555-2671, 415.555.2671, 415 555 2671
                d(
                    Phone,
                    r"(?:\+?1SEP?)?(?:\([2-9][0-9]{2}\) ?-?|[2-9][0-9]{2}SEP)[2-9][0-9]{2}SEP[0-9]{4}",
                    Left,
                    Plain,
                ),
                // any other +CC number
                d(
                    Phone,
                    r"\+[1-9][0-9]{0,2}SEP?(?:\([0-9]{1,4}\) ?)?[0-9]{1,5}(?:SEP?[0-9]{1,5}){0,6}",
                    Left,
                    International,
                ),
                // landline with an area code: (010)87654321, 010-6234-5678, 0755 2345 6789,
                // (02)2345-6789
                d(
                    Phone,
                    r"(?:\(0[0-9]{1,3}\) ?-?|0[0-9]{1,3}(?: - |[ \-]))[2-9][0-9]{2,3}(?: - |[ \-])?[0-9]{4}",
                    Left,
                    Plain,
                ),
                // Taiwan mobile: 0912-345-678, 0912 345 678, 0912345678
                d(
                    Phone,
                    r"09[0-9]{2}(?: - |[ \-])?[0-9]{3}(?: - |[ \-])?[0-9]{3}",
                    Left,
                    Plain,
                ),
                // 8 digits in two groups of 4: Hong Kong 9123 4567, mainland local 8765-4321
                d(Phone, r"[2-9][0-9]{3}(?: - |[ \-])[0-9]{4}", Strict, Bare8),
            ],
        }
    })
}

fn prev_char(s: &str, i: usize) -> Option<char> {
    s.get(..i)?.chars().next_back()
}

fn next_char(s: &str, i: usize) -> Option<char> {
    s.get(i..)?.chars().next()
}

/// The values of the ASCII and full-width digits of `s`.
fn digit_values(s: &str) -> Vec<u32> {
    s.chars()
        .filter_map(|c| match c {
            '０'..='９' => Some(c as u32 - '０' as u32),
            c => c.to_digit(10),
        })
        .collect()
}

/// The digit groups of a number and whether all its separators are the same.
fn groups(s: &str) -> (Vec<usize>, bool) {
    let mut lens = Vec::new();
    let mut seps: Vec<&str> = Vec::new();
    let mut run = 0;
    let mut sep_start = None;
    for (i, c) in s.char_indices() {
        if c.is_ascii_digit() || c == 'X' || c == 'x' {
            if let Some(a) = sep_start.take() {
                seps.push(&s[a..i]);
            }
            run += 1;
        } else {
            if run > 0 {
                lens.push(run);
                run = 0;
            }
            sep_start.get_or_insert(i);
        }
    }
    if run > 0 {
        lens.push(run);
    }
    let same = seps.windows(2).all(|w| w[0] == w[1]);
    (lens, same)
}

/// True when the number at `[start, end)` of the view stands on its own: no digit touches it,
/// it is not part of a decimal or dotted number, and letters touch it only as `edge` allows.
fn stands_alone(v: &str, start: usize, end: usize, edge: Edge) -> bool {
    let before = prev_char(v, start);
    let after = next_char(v, end);
    let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    if digit(before) || digit(after) {
        return false;
    }
    if before == Some('.') && digit(prev_char(v, start - 1)) {
        return false;
    }
    if after == Some('.') && digit(next_char(v, end + 1)) {
        return false;
    }
    let letter = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphabetic());
    // one group of a longer grouped number (`1234 5678 9012 3456`)
    let sep = |c: Option<char>| matches!(c, Some(' ' | '-' | '.'));
    let grouped = (sep(before) && digit(prev_char(v, start - 1)))
        || (sep(after) && digit(next_char(v, end + 1)));
    match edge {
        Edge::OneSide => !(letter(before) && letter(after)),
        Edge::Left => !letter(after),
        Edge::Strict => !letter(before) && !letter(after) && !grouped,
    }
}

/// True when a number reads as an amount: a currency sign or code before it, or a unit or
/// counter word after it (a space allowed between).
fn amount_context(v: &str, start: usize, end: usize) -> bool {
    let head = v.get(..start).unwrap_or("");
    let head = head.strip_suffix(' ').unwrap_or(head);
    let code = head
        .len()
        .checked_sub(3)
        .and_then(|i| head.get(i..))
        .unwrap_or("");
    if head.ends_with(['¥', '$', '€', '£', '₩'])
        || ["RMB", "CNY", "USD", "HKD", "NTD", "TWD"]
            .iter()
            .any(|c| code.eq_ignore_ascii_case(c))
    {
        return true;
    }
    let tail = v.get(end..).unwrap_or("");
    let tail = tail.strip_prefix(' ').unwrap_or(tail);
    tail.starts_with([
        '元', '块', '圆', '角', '毛', '件', '个', '只', '台', '套', '次', '人', '天', '年', '月',
        '日', '秒', '米', '克', '斤', '吨', '升', '倍', '万', '亿', '千', '百', '%', '‰', '°', '℃',
    ]) || tail.starts_with("小时")
        || tail.starts_with("分钟")
}

fn plausible_region(d0: u32, d1: u32) -> bool {
    matches!(d0 * 10 + d1, 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81..=83 | 91)
}

fn plausible_date(year: u32, month: u32, day: u32) -> bool {
    (1900..=2099).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// A mainland resident ID number: 18 characters (17 digits and a check digit or `X`) or the
/// old 15 digits, with a plausible region code and birth date. The check digit itself is not
/// required to be right: a mistyped ID is still personal data.
pub fn looks_like_id_card(s: &str) -> bool {
    let d = digit_values(s);
    let x = s.ends_with(['X', 'x', 'Ｘ', 'ｘ']);
    match (d.len(), x) {
        (18, false) | (17, true) => {
            plausible_region(d[0], d[1])
                && plausible_date(
                    d[6] * 1000 + d[7] * 100 + d[8] * 10 + d[9],
                    d[10] * 10 + d[11],
                    d[12] * 10 + d[13],
                )
        }
        (15, false) => {
            plausible_region(d[0], d[1])
                && plausible_date(
                    1900 + d[6] * 10 + d[7],
                    d[8] * 10 + d[9],
                    d[10] * 10 + d[11],
                )
        }
        _ => false,
    }
}

/// The GB 11643 check character of the first 17 digits of an ID number.
pub fn id_card_check_char(first17: &[u32]) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let s: u32 = first17.iter().zip(W).map(|(d, w)| d * w).sum();
    C[(s % 11) as usize]
}

/// Luhn check of a card number's digits (13 digits at least).
pub fn luhn_valid(d: &[u32]) -> bool {
    if d.len() < 13 {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| match (i % 2, x * 2) {
            (1, y) if y > 9 => y - 9,
            (1, y) => y,
            _ => x,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Two groups of four that read as a date (`2024 0501`), a range of years (`2019-2023`) or of
/// round numbers (`5000-6000`) rather than a phone number.
fn date_or_range(m: &str) -> bool {
    let d = digit_values(m);
    if d.len() != 8 {
        return false;
    }
    let a = d[..4].iter().fold(0, |n, x| n * 10 + x);
    let b = d[4..].iter().fold(0, |n, x| n * 10 + x);
    let year = |n: u32| (1900..=2099).contains(&n);
    (year(a) && (year(b) || plausible_date(a, b / 100, b % 100))) || (a % 100 == 0 && b % 100 == 0)
}

/// Checks a candidate number; returns the (possibly shortened) end of the span to mask.
fn check_number(v: &str, start: usize, end: usize, det: &Detector) -> Option<usize> {
    let m = &v[start..end];
    let end = match det.check {
        Check::Mobile => {
            // the number itself is the last 11 digits, after any country code
            let at: Vec<usize> = m
                .char_indices()
                .filter(|(_, c)| c.is_ascii_digit())
                .map(|(i, _)| i)
                .collect();
            let body = m.get(*at.get(at.len().checked_sub(11)?)?..)?;
            let (lens, same) = groups(body);
            (same && lens.len() <= 4 && lens.iter().all(|&n| n >= 3)).then_some(end)?
        }
        Check::IdCard18 => {
            let (lens, same) = groups(m);
            (same && lens.iter().all(|&n| n >= 2) && looks_like_id_card(m)).then_some(end)?
        }
        Check::IdCard15 => looks_like_id_card(m).then_some(end)?,
        Check::Luhn => {
            // 14 to 19 digits: 13-digit cards are no longer issued, and a 13-digit run is
            // more often a mobile with its country code (8613812345678)
            let d = digit_values(m);
            (d.len() >= 14 && luhn_valid(&d)).then_some(end)?
        }
        Check::Plain => end,
        Check::Bare8 => (!date_or_range(m)).then_some(end)?,
        Check::International => {
            // whole digit groups while the count stays within 15 (E.164's maximum)
            let b = m.as_bytes();
            let (mut i, mut n, mut cut) = (0, 0, start);
            while i < b.len() {
                if b[i].is_ascii_digit() {
                    let j = i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                    if n + (j - i) > 15 {
                        break;
                    }
                    n += j - i;
                    cut = start + j;
                    i = j;
                } else {
                    i += 1;
                }
            }
            (n >= 8).then_some(cut)?
        }
    };
    if !stands_alone(v, start, end, det.edge) {
        return None;
    }
    if det.kind == Kind::Phone && amount_context(v, start, end) {
        return None;
    }
    Some(end)
}

/// Finds e-mail addresses: an `@domain` match, then the local part read backwards from the
/// `@`: ASCII characters (`A-Za-z0-9._%+-`); failing those, a run of other letters that
/// follows a space or punctuation (an internationalised address written on its own,
/// `邮箱：张三@例子.中国`). A non-ASCII run glued to the text
/// before it, or opening the text, cannot be told from the text, so only `@domain` is masked
/// then. Never a run of Chinese text.
fn find_emails(v: &str, re: &Regex, out: &mut Vec<(usize, usize, Kind)>) {
    let mut limit = 0;
    for m in re.find_iter(v) {
        let at = m.start();
        let head = &v[limit..at];
        let ascii_start = head
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || "._%+-".contains(*c))
            .last()
            .map(|(i, _)| limit + i);
        let mut start = ascii_start.unwrap_or(at);
        while start < at && v[start..].starts_with('.') {
            start += 1;
        }
        if start == at {
            let run: Vec<(usize, char)> = head
                .char_indices()
                .rev()
                .take_while(|(_, c)| c.is_alphanumeric() && !c.is_ascii())
                .take(65)
                .collect();
            let Some(&(first, _)) = run.last() else {
                continue; // `@domain` alone (a mention, `@united`) is not an address
            };
            let delimited = run.len() <= 64
                && prev_char(v, limit + first).is_some_and(|c| !c.is_alphanumeric());
            if delimited {
                start = limit + first;
            }
        }
        let tld = m.as_str().rsplit('.').next().unwrap_or("");
        if ["png", "jpg", "jpeg", "gif", "webp", "svg", "bmp"]
            .contains(&tld.to_ascii_lowercase().as_str())
        {
            continue; // icon@2x.png
        }
        out.push((start, m.end(), Kind::Email));
        limit = m.end();
    }
}

/// Runs one number detector over the view; accepted spans are appended to `out`.
fn find_numbers(v: &str, det: &Detector, out: &mut Vec<(usize, usize, Kind)>) {
    let mut pos = 0;
    while pos < v.len() {
        let Some(m) = det.re.find_at(v, pos) else {
            break;
        };
        match check_number(v, m.start(), m.end(), det) {
            Some(end) if end > m.start() => {
                out.push((m.start(), end, det.kind));
                pos = end;
            }
            _ => {
                // retry one character on: a later start may be a number of its own
                pos = m.start() + next_char(v, m.start()).map_or(1, char::len_utf8);
            }
        }
    }
}

/// The view with `spans` blanked (`#`, which is neither digit nor letter),
/// so later detectors do not see what an earlier one masked.
fn blank(v: &str, spans: &[(usize, usize, Kind)]) -> String {
    let mut sorted: Vec<(usize, usize)> = spans.iter().map(|&(a, b, _)| (a, b)).collect();
    sorted.sort_unstable();
    let mut out = String::with_capacity(v.len());
    let mut last = 0;
    for (a, b) in sorted {
        if a < last {
            continue;
        }
        out.push_str(&v[last..a]);
        out.extend(std::iter::repeat_n('#', b - a));
        last = b;
    }
    out.push_str(&v[last..]);
    out
}

/// Replaces personal data by typed placeholders: `<EMAIL>`, `<ID_CARD>`, `<BANK_CARD>`,
/// `<PHONE>`. Detection reads a width-folded view (so `１３８－８７６５－１２３４` and
/// `wang＠example．com` are found) but the text is changed only where personal data was: the
/// rest is returned as written. Returns the masked text and the kinds found, in order of
/// appearance.
pub fn mask_pii(s: &str) -> (String, Vec<String>) {
    let p = patterns();
    let view = fold_view(s);
    let mut spans = Vec::new();
    find_emails(&view.text, &p.email_domain, &mut spans);
    let mut work = blank(&view.text, &spans);
    for det in &p.numbers {
        let before = spans.len();
        find_numbers(&work, det, &mut spans);
        if spans.len() > before {
            work = blank(&work, &spans[before..]);
        }
    }
    let mut orig: Vec<(usize, usize, Kind)> = spans
        .iter()
        .filter_map(|&(a, b, k)| view.original(s, a, b).map(|(a, b)| (a, b, k)))
        .collect();
    orig.sort_unstable_by_key(|&(a, b, _)| (a, b));
    let mut out = String::with_capacity(s.len());
    let mut kinds = Vec::with_capacity(orig.len());
    let mut last = 0;
    for (a, b, k) in orig {
        if b <= last {
            continue;
        }
        out.push_str(&s[last..a.max(last)]);
        if a >= last {
            out.push('<');
            out.push_str(k.as_str());
            out.push('>');
            kinds.push(k.as_str().to_string());
        }
        last = b;
    }
    out.push_str(&s[last..]);
    (out, kinds)
}

#[cfg(test)]
mod tests;
