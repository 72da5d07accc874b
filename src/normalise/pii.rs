//! Personal-data masking: phone numbers, e-mail addresses, ID-card and bank-card numbers.

use regex::Regex;
use std::sync::OnceLock;

struct PiiPatterns {
    email: Regex,
    id_card: Regex,
    bank_card: Regex,
    phone: Vec<Regex>,
}

fn patterns() -> &'static PiiPatterns {
    static P: OnceLock<PiiPatterns> = OnceLock::new();
    P.get_or_init(|| {
        // \d is Unicode-aware: full-width digits match too.
        let re = |s: &str| Regex::new(s).expect("valid built-in PII pattern");
        PiiPatterns {
            email: re(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,}"),
            id_card: re(r"\d{17}[\dXxＸｘ]"),
            bank_card: re(r"\d{4}(?:[ \-]?\d{4}){2,3}(?:[ \-]?\d{1,3})?"),
            phone: vec![
                // mainland mobile, optional +86 / 86 / 0086 prefix, 3-4-4 groups
                re(r"(?:(?:[+＋]|00)?(?:86|８６)[ \-]?)?[1１][3-9３-９]\d[ \-]?\d{4}[ \-]?\d{4}"),
                // mainland landline: 0xx(x)-xxxxxxx(x)
                re(r"(?:\([0０]\d{2,3}\)|[0０]\d{2,3})[ \-]\d{7,8}"),
                // international: +CC then 6-14 digits in groups
                re(r"[+＋]\d{1,3}[ \-]?(?:\(\d{1,4}\)[ \-]?)?\d{2,5}(?:[ \-]?\d{2,5}){1,4}"),
                // North American forms: (415) 555-0134, 415-555-0134, 415.555.0134
                re(r"(?:\(\d{3}\)[ \-]?|\d{3}[\-.])\d{3}[\-.]\d{4}"),
            ],
        }
    })
}

/// Numeric value of an ASCII or full-width digit.
fn digit_value(c: char) -> Option<u32> {
    match c {
        '0'..='9' => Some(c as u32 - '0' as u32),
        '０'..='９' => Some(c as u32 - '０' as u32),
        _ => None,
    }
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(digit_value).collect()
}

/// True when the characters around `[start, end)` are not digits or ASCII letters (the regex
/// crate has no look-around, so boundaries are checked here).
fn isolated(s: &str, start: usize, end: usize) -> bool {
    let before = s[..start].chars().next_back();
    let after = s[end..].chars().next();
    let bad =
        |c: Option<char>| c.is_some_and(|c| digit_value(c).is_some() || c.is_ascii_alphabetic());
    !bad(before) && !bad(after)
}

/// Luhn check of a card number's digits.
pub fn luhn_valid(d: &[u32]) -> bool {
    if d.len() < 13 {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A mainland resident ID number: 18 characters, a plausible birth date, and (when the check
/// digit is right) certainly one. A wrong check digit with a plausible date is still masked:
/// a mistyped ID is still personal data.
pub fn looks_like_id_card(s: &str) -> bool {
    let d = digits(s);
    if d.len() < 17 {
        return false;
    }
    let year = d[6] * 1000 + d[7] * 100 + d[8] * 10 + d[9];
    let month = d[10] * 10 + d[11];
    let day = d[12] * 10 + d[13];
    (1900..=2099).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// The GB 11643 check character of the first 17 digits.
pub fn id_card_check_char(first17: &[u32]) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let s: u32 = first17.iter().zip(W).map(|(d, w)| d * w).sum();
    C[(s % 11) as usize]
}

/// Replaces personal data by typed placeholders: `<EMAIL>`, `<ID_CARD>`, `<BANK_CARD>`,
/// `<PHONE>`. Returns the masked text and the kinds found, in order.
pub fn mask_pii(s: &str) -> (String, Vec<String>) {
    let p = patterns();
    let mut kinds = Vec::new();
    let mut text = replace_checked(s, &p.email, "EMAIL", &mut kinds, |_| true, false);
    text = replace_checked(
        &text,
        &p.id_card,
        "ID_CARD",
        &mut kinds,
        looks_like_id_card,
        true,
    );
    text = replace_checked(
        &text,
        &p.bank_card,
        "BANK_CARD",
        &mut kinds,
        |m| luhn_valid(&digits(m)),
        true,
    );
    for re in &p.phone {
        text = replace_checked(
            &text,
            re,
            "PHONE",
            &mut kinds,
            |m| (7..=15).contains(&digits(m).len()),
            true,
        );
    }
    (text, kinds)
}

fn replace_checked(
    s: &str,
    re: &Regex,
    kind: &str,
    kinds: &mut Vec<String>,
    accept: impl Fn(&str) -> bool,
    need_isolated: bool,
) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for m in re.find_iter(s) {
        if (need_isolated && !isolated(s, m.start(), m.end())) || !accept(m.as_str()) {
            continue;
        }
        out.push_str(&s[last..m.start()]);
        out.push('<');
        out.push_str(kind);
        out.push('>');
        kinds.push(kind.to_string());
        last = m.end();
    }
    out.push_str(&s[last..]);
    out
}
