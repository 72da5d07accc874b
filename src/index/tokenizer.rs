//! The search analyzers: tantivy tokenizers for Chinese, English and mixed text.
//!
//! Text is folded first ([`fold`]: NFKC, lower case, traditional to simplified by OpenCC
//! phrase tables), then cut by jieba (with the index's user dictionary, if it has one).
//! Tokens without a letter or digit (spaces, punctuation) are dropped, and English words are
//! stemmed ([`stem`]). Token offsets point into the *original* text, so highlighted snippets
//! mark the characters the user wrote.
//!
//! Two analyzers share this: documents are indexed with [`Mode::Index`] (jieba's search-mode
//! words, and every Chinese character of a longer word on its own, at its character
//! position), queries with [`Mode::Query`] (Chinese as single characters, other words whole).
//! A Chinese query word is thus a phrase of its characters, found wherever the text has those
//! characters in a row: 到账 inside 没到账, 华东仓 however jieba cut the comment.

pub use super::fold::{fold, Folded};
use jieba_rs::{Jieba, TokenizeMode};
use std::sync::{Arc, OnceLock};
use tantivy::tokenizer::{RemoveLongFilter, TextAnalyzer, Token, TokenStream, Tokenizer};

/// Name under which the index analyzer is registered on every vocmine index.
pub const TEXT_TOKENIZER: &str = "vocmine_text";
/// Name of the tag normaliser (raw value, lower case) used by tag fields.
pub const TAG_TOKENIZER: &str = "vocmine_tag";

/// Version of the analysis: part of every document's revision, so an index built by an older
/// analyzer is re-indexed by the next `vocmine index`.
pub const ANALYZER_VERSION: u32 = 2;

/// Which side of the index a tokenizer serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Documents: search-mode words plus every Chinese character on its own.
    Index,
    /// Queries: Chinese as single characters (a phrase), other words whole.
    Query,
}

/// jieba with its default dictionary, loaded once.
pub fn default_jieba() -> Arc<Jieba> {
    static J: OnceLock<Arc<Jieba>> = OnceLock::new();
    J.get_or_init(|| Arc::new(Jieba::new())).clone()
}

/// The tokenizer behind the analyzers: fold, cut with jieba, keep word tokens, stem.
#[derive(Clone)]
pub struct VocTokenizer {
    jieba: Arc<Jieba>,
    mode: Mode,
}

impl VocTokenizer {
    /// A tokenizer over `jieba` (which carries any user dictionary) for `mode`.
    pub fn new(jieba: Arc<Jieba>, mode: Mode) -> Self {
        VocTokenizer { jieba, mode }
    }
}

impl Default for VocTokenizer {
    fn default() -> Self {
        VocTokenizer::new(default_jieba(), Mode::Index)
    }
}

/// Token stream of [`VocTokenizer`]: the tokens are computed up front.
pub struct VocTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

/// True for a Chinese (Han) character.
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3134F)
}

/// The English Snowball stem of `word`, taken one step further where Snowball turned a final
/// `y` into `i` (delivery → deliveri → deliv, like deliver; happy → happi → happ, like
/// happiness): so a noun or adjective in -y meets its verb or noun. Words that end in `i`
/// themselves (taxi, wifi) keep Snowball's stem. Text without Latin letters passes unchanged.
pub fn stem(word: &str) -> String {
    if !word.chars().any(|c| c.is_alphabetic() && !is_han(c)) {
        return word.to_string();
    }
    let stemmer = frostem::Stemmer::new(frostem::Algorithm::English);
    let s = stemmer.stem(word).into_owned();
    let again = match s.strip_suffix('i') {
        Some(base) if base.len() >= 3 && !word.ends_with('i') => {
            Some(stemmer.stem(base).into_owned())
        }
        _ => None,
    };
    again.unwrap_or(s)
}

impl Tokenizer for VocTokenizer {
    type TokenStream<'a> = VocTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VocTokenStream {
        let folded = fold(text);
        let f = folded.text.as_str();
        let mode = match self.mode {
            Mode::Index => TokenizeMode::Search,
            Mode::Query => TokenizeMode::Default,
        };
        // (folded byte from, folded byte to, position = char offset in the folded text).
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        for t in self.jieba.tokenize(f, mode, true) {
            let word = t.word;
            if !word.chars().any(char::is_alphanumeric) {
                continue;
            }
            let han = word.chars().any(is_han);
            if !(han && self.mode == Mode::Query) {
                spans.push((t.byte_start, t.byte_end, t.start));
            }
            if han && (self.mode == Mode::Query || t.end - t.start > 1) {
                for (k, (i, c)) in word.char_indices().enumerate() {
                    if c.is_alphanumeric() {
                        let from = t.byte_start + i;
                        spans.push((from, from + c.len_utf8(), t.start + k));
                    }
                }
            }
        }
        // Search mode emits a word's sub-words before the word itself (凯宾, 斯基, 凯宾斯基);
        // tantivy's snippets and phrase queries want tokens in text order, each once.
        spans.sort_unstable();
        spans.dedup();
        let tokens = spans
            .into_iter()
            .filter_map(|(a, b, position)| {
                let word = f.get(a..b)?;
                let (from, to) = folded.original_range(a, b);
                Some(Token {
                    offset_from: from,
                    offset_to: to,
                    position,
                    text: stem(word),
                    position_length: 1,
                })
            })
            .collect();
        VocTokenStream { tokens, next: 0 }
    }
}

impl TokenStream for VocTokenStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

/// The analyzer for `mode` over `jieba`: [`VocTokenizer`], tokens over 40 bytes dropped.
pub fn analyzer_with(jieba: Arc<Jieba>, mode: Mode) -> TextAnalyzer {
    TextAnalyzer::builder(VocTokenizer::new(jieba, mode))
        .filter(RemoveLongFilter::limit(40))
        .build()
}

/// The index analyzer with jieba's default dictionary.
pub fn analyzer() -> TextAnalyzer {
    analyzer_with(default_jieba(), Mode::Index)
}

/// The query analyzer with jieba's default dictionary.
pub fn query_analyzer() -> TextAnalyzer {
    analyzer_with(default_jieba(), Mode::Query)
}

/// The tag normaliser: the whole value as one token, lower-cased.
pub fn tag_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(tantivy::tokenizer::RawTokenizer::default())
        .filter(tantivy::tokenizer::LowerCaser)
        .build()
}

/// The tokens `analyzer` gives for `text`.
pub fn tokens_of(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut s = analyzer.token_stream(text);
    let mut out = Vec::new();
    while s.advance() {
        out.push(s.token().text.clone());
    }
    out
}

/// The index analyzer's tokens of `text` (default dictionary; for tests and debugging).
pub fn tokens(text: &str) -> Vec<String> {
    tokens_of(&mut analyzer(), text)
}

/// The query analyzer's tokens of `text` (default dictionary).
pub fn query_tokens(text: &str) -> Vec<String> {
    tokens_of(&mut query_analyzer(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(t: &[String], w: &str) -> bool {
        t.iter().any(|x| x == w)
    }

    #[test]
    fn search_mode_cuts_sub_words() {
        let t = tokens("我要申请退款");
        assert!(has(&t, "退款") && has(&t, "申请"), "{t:?}");
    }

    #[test]
    fn words_inside_longer_words_are_indexed() {
        // jieba cuts 没到 | 账 here and keeps 没到账 whole elsewhere; the characters are
        // indexed on their own either way, and a query is the phrase of its characters.
        let t = tokens("钱还没到账");
        for w in ["没到", "没", "到", "账"] {
            assert!(has(&t, w), "{w}: {t:?}");
        }
        assert_eq!(query_tokens("到账"), vec!["到", "账"]);
        assert_eq!(query_tokens("Refunds 到帳"), vec!["refund", "到", "账"]);
    }

    #[test]
    fn traditional_and_full_width_fold() {
        assert_eq!(
            query_tokens("發貨太慢，質量差"),
            query_tokens("发货太慢，质量差")
        );
        assert_eq!(query_tokens("退貨"), vec!["退", "货"]);
        assert_eq!(query_tokens("ＶＩＰ　客戶"), query_tokens("vip 客户"));
        // Phrases, not characters: 螢幕 is the mainland 屏幕, 到帳 is 到账.
        assert_eq!(query_tokens("螢幕"), query_tokens("屏幕"));
        assert_eq!(query_tokens("到帳"), query_tokens("到账"));
    }

    #[test]
    fn english_lower_cased_and_stemmed() {
        assert_eq!(tokens("Refunds DELAYED"), vec!["refund", "delay"]);
        for (a, b) in [
            ("deliver", "delivery"),
            ("deliver", "deliveries"),
            ("delivered", "delivering"),
            ("refund", "refunded"),
            ("happy", "happiness"),
            ("company", "companies"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
        assert_ne!(stem("taxi"), stem("tax"));
    }

    #[test]
    fn tokens_come_in_text_order() {
        let text = "度过了一个搏鳌凯宾斯基假期，中华人民共和国";
        let mut a = analyzer();
        let mut s = a.token_stream(text);
        let mut last = (0, 0);
        let mut n = 0;
        while s.advance() {
            let t = s.token();
            assert!((t.offset_from, t.offset_to) >= last, "{:?}", t);
            last = (t.offset_from, t.offset_to);
            n += 1;
        }
        assert!(n > 8);
    }

    #[test]
    fn offsets_point_into_the_original_text() {
        let text = "ＡＢ 退款很慢";
        let mut a = analyzer();
        let mut s = a.token_stream(text);
        let mut seen = Vec::new();
        while s.advance() {
            let t = s.token();
            seen.push(text[t.offset_from..t.offset_to].to_string());
        }
        assert_eq!(seen[0], "ＡＢ");
        assert!(seen.contains(&"退款".to_string()), "{seen:?}");
    }
}
