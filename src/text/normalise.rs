//! Normalise: clean text, detect its language, convert traditional Chinese for analysis, and
//! mask personal data.
//!
//! Order of work for one comment: control characters are removed from the raw text, personal
//! data is masked in it (the masked original is what every output shows; detection reads a
//! width-folded view of the text and maps what it finds back to the text as written, see
//! [`mask_pii`]), then the masked text is NFKC-normalised (full-width forms fold to half-width)
//! with whitespace collapsed, for the encoder. A simplified-Chinese copy of that is made for
//! segmentation and keywords only.

use unicode_normalization::UnicodeNormalization;

mod pii;

pub use pii::{id_card_check_char, looks_like_id_card, luhn_valid, mask_pii};

/// Detected language of a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Lang {
    /// Simplified Chinese.
    #[serde(rename = "zh")]
    Zh,
    /// Traditional Chinese.
    #[serde(rename = "zh-Hant")]
    ZhHant,
    /// English.
    #[serde(rename = "en")]
    En,
    /// Chinese and English together.
    #[serde(rename = "mixed")]
    Mixed,
    /// Anything else (other scripts, emoji or digits only).
    #[serde(rename = "other")]
    Other,
}

impl Lang {
    /// Every language, in the order of its codes in messages.
    pub const ALL: [Lang; 5] = [Lang::En, Lang::Zh, Lang::ZhHant, Lang::Mixed, Lang::Other];

    /// The language with this code (`en`, `zh`, `zh-Hant`, `mixed`, `other`), if any.
    pub fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.as_str() == code)
    }

    /// The code written to outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::ZhHant => "zh-Hant",
            Lang::En => "en",
            Lang::Mixed => "mixed",
            Lang::Other => "other",
        }
    }
}

/// A comment's text in the forms the later stages need.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalised {
    /// The original text, control characters removed and personal data masked: what is shown.
    pub display: String,
    /// NFKC, half-width, whitespace-collapsed form of `display`: what the encoder reads.
    pub text: String,
    /// `text` with traditional characters converted to simplified: for segmentation/keywords.
    pub simplified: String,
    /// The detected language.
    pub lang: Lang,
    /// Kinds of personal data masked, in order of appearance (`PHONE`, `EMAIL`, ...).
    pub masked: Vec<String>,
}

/// Options for [`normalise`].
#[derive(Debug, Clone, Copy)]
pub struct NormaliseConfig {
    /// Mask personal data (on by default).
    pub mask_pii: bool,
}

impl Default for NormaliseConfig {
    fn default() -> Self {
        NormaliseConfig { mask_pii: true }
    }
}

/// Runs the whole normalisation of one comment text.
pub fn normalise(raw: &str, cfg: NormaliseConfig) -> Normalised {
    let cleaned = strip_controls(raw);
    let (display, masked) = if cfg.mask_pii {
        mask_pii(&cleaned)
    } else {
        (cleaned, Vec::new())
    };
    let text = fold(&display);
    let simplified = fast2s::convert(&text);
    let lang = detect_lang(&text, &simplified);
    Normalised {
        display: display.trim().to_string(),
        text,
        simplified,
        lang,
        masked,
    }
}

/// Removes control and invisible format characters; line breaks and tabs become spaces.
pub fn strip_controls(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' | '\u{2028}' | '\u{2029}' | '\u{85}' => Some(' '),
            '\u{200b}' | '\u{200e}' | '\u{200f}' | '\u{feff}' | '\u{2060}' => None,
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// NFKC (full-width letters, digits and punctuation fold to half-width, ideographic space to
/// space), whitespace runs collapsed to one space, trimmed.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.nfkc() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// For each character of `fold(display)`, the index of the character of `display` it came
/// from (a collapsed whitespace run: its last character), so that spans found in the text the
/// encoder reads can be given in the text that is shown. `None` when folding character by
/// character differs from folding the whole text (a composing sequence such as a letter and a
/// combining accent).
pub fn fold_origins(display: &str) -> Option<Vec<usize>> {
    let mut out = String::with_capacity(display.len());
    let mut origin = Vec::with_capacity(display.len());
    let mut space: Option<usize> = None;
    for (i, d) in display.chars().enumerate() {
        for c in std::iter::once(d).nfkc() {
            if c.is_whitespace() {
                space = Some(i);
            } else {
                if let Some(s) = space.take() {
                    if !out.is_empty() {
                        out.push(' ');
                        origin.push(s);
                    }
                }
                out.push(c);
                origin.push(i);
            }
        }
    }
    (out == fold(display)).then_some(origin)
}

fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2EBEF | 0xF900..=0xFAFF)
}

/// Language by script: Han characters against Latin words (one Han character carries about
/// as much as a short English word). Traditional if enough Han characters change under
/// traditional-to-simplified conversion.
pub fn detect_lang(text: &str, simplified: &str) -> Lang {
    let mut han = 0usize;
    let mut latin_letters = 0usize;
    let mut other_letters = 0usize;
    for c in text.chars() {
        if is_han(c) {
            han += 1;
        } else if c.is_ascii_alphabetic() || matches!(c, '\u{c0}'..='\u{24f}') {
            latin_letters += 1;
        } else if c.is_alphabetic() {
            other_letters += 1;
        }
    }
    let en_units = latin_letters as f64 / 4.0;
    let total = han as f64 + en_units + other_letters as f64;
    if total < 1.0 {
        return Lang::Other;
    }
    if (other_letters as f64) > 0.5 * total {
        return Lang::Other;
    }
    let zh_share = han as f64 / (han as f64 + en_units).max(1e-9);
    let hant = || {
        let changed = text
            .chars()
            .zip(simplified.chars())
            .filter(|(a, b)| a != b && is_han(*a))
            .count();
        changed >= 1 && changed as f64 >= 0.05 * han as f64
    };
    if zh_share >= 0.8 {
        if hant() {
            Lang::ZhHant
        } else {
            Lang::Zh
        }
    } else if zh_share <= 0.2 && latin_letters > 0 {
        Lang::En
    } else if han > 0 {
        Lang::Mixed
    } else {
        Lang::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(s: &str) -> Lang {
        normalise(s, NormaliseConfig::default()).lang
    }

    #[test]
    fn languages() {
        assert_eq!(lang("物流太慢了，差评"), Lang::Zh);
        assert_eq!(lang("退貨流程太麻煩了，客服態度很差"), Lang::ZhHant);
        assert_eq!(lang("@united lost my bag again, thanks a lot"), Lang::En);
        assert_eq!(lang("App 一直 crash，登录不了"), Lang::Mixed);
        assert_eq!(lang("👍👍👍 !!!"), Lang::Other);
        assert_eq!(lang("12345"), Lang::Other);
    }

    #[test]
    fn language_codes_round_trip_and_match_serde() {
        for l in Lang::ALL {
            assert_eq!(Lang::from_code(l.as_str()), Some(l));
            assert_eq!(
                serde_json::to_value(l).unwrap(),
                serde_json::Value::String(l.as_str().into())
            );
        }
        assert_eq!(Lang::from_code("zh-hant"), None, "codes are case-sensitive");
        assert_eq!(Lang::from_code("fr"), None);
    }

    #[test]
    fn folds_width_whitespace_and_controls() {
        let n = normalise(
            "ＡＢＣ　１２３\u{0007}\n\t好！ ",
            NormaliseConfig::default(),
        );
        assert_eq!(n.text, "ABC 123 好!");
        assert_eq!(n.display, "ＡＢＣ　１２３  好！");
        let t = normalise("這個產品質量很差", NormaliseConfig::default());
        assert_eq!(t.simplified, "这个产品质量很差");
        assert_eq!(t.display, "這個產品質量很差");
    }

    #[test]
    fn masks_phones_emails_ids_and_cards() {
        let first17 = [1, 1, 0, 1, 0, 5, 1, 9, 9, 0, 0, 3, 0, 7, 0, 0, 1];
        let check = id_card_check_char(&first17);
        let id: String = first17
            .iter()
            .map(|d| char::from(b'0' + *d as u8))
            .collect::<String>()
            + &check.to_string();
        let s = format!(
            "电话13812345678或+86 139-1234-5678，邮箱zhang.wei@example.com，身份证{id}，卡号4111 1111 1111 1111，call +1 (415) 555-0134 or 020-87654321 订单号20261012000123456789"
        );
        let (m, kinds) = mask_pii(&s);
        assert!(
            !m.contains("13812345678") && !m.contains("1234-5678"),
            "{m}"
        );
        assert!(
            !m.contains("example.com") && !m.contains(&id) && !m.contains("4111"),
            "{m}"
        );
        assert!(!m.contains("555-0134") && !m.contains("87654321"), "{m}");
        assert!(
            m.contains("订单号20261012000123456789"),
            "order numbers stay: {m}"
        );
        for k in ["PHONE", "EMAIL", "ID_CARD", "BANK_CARD"] {
            assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
        }
        // full-width digits are personal data too
        let (m, _) = mask_pii("手机：１３９１２３４５６７８");
        assert_eq!(m, "手机：<PHONE>");
        // a non-Luhn 16-digit number is not a card (but not left as a phone either)
        let (m, kinds) = mask_pii("tracking 1234 5678 9012 3456 ok");
        assert!(!kinds.contains(&"BANK_CARD".to_string()), "{m}");
        assert!(!luhn_valid(&[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6
        ]));
        assert!(luhn_valid(&[
            4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
        ]));
        let (m, _) = mask_pii("no pii here, 2 items for 39.90");
        assert_eq!(m, "no pii here, 2 items for 39.90");
    }

    #[test]
    fn fold_origins_map_every_folded_character_to_the_shown_one() {
        // full-width letters and digits fold to one character each, a space run to one space
        let shown = "ＡＰＰ  闪退，电池１天";
        let folded: Vec<char> = fold(shown).chars().collect();
        assert_eq!(fold(shown), "APP 闪退,电池1天");
        let o = fold_origins(shown).unwrap();
        assert_eq!(o.len(), folded.len());
        let shown_chars: Vec<char> = shown.chars().collect();
        // 电池 is folded chars 7..9 and shown chars 8..10
        assert_eq!(folded[7..9].iter().collect::<String>(), "电池");
        assert_eq!((o[7], o[8] + 1), (8, 10));
        assert_eq!(shown_chars[8..10].iter().collect::<String>(), "电池");
        // the space of the collapsed run points into the run
        assert!(shown_chars[o[3]].is_whitespace());
        // a ligature expands: ﬁ (one shown character) is two folded ones
        let o = fold_origins("ﬁne 屏幕").unwrap();
        assert_eq!(fold("ﬁne 屏幕"), "fine 屏幕");
        assert_eq!(&o[..], &[0, 0, 1, 2, 3, 4, 5]);
        // a letter and a combining accent compose only when folded together
        assert_eq!(fold_origins("cafe\u{301}"), None);
    }
}
