//! The search analyzer: one tantivy tokenizer for Chinese, English and mixed text.
//!
//! Text is folded character by character before segmentation: NFKC (full-width letters,
//! digits and punctuation to half-width), lower case, traditional Chinese to simplified
//! (`fast2s`, one character for one character). The folded text is cut by jieba in search
//! mode (through `tantivy-jieba`), so that 申请退款 is indexed as 申请, 退款 and 申请退款, and
//! a query for 退款 finds it. Tokens without a letter or digit (spaces, punctuation) are
//! dropped, and English words are stemmed. Token offsets point into the *original* text, so
//! highlighted snippets mark the characters the user wrote.

use tantivy::tokenizer::{
    Language, RemoveLongFilter, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer,
};
use unicode_normalization::UnicodeNormalization;

/// Name under which [`analyzer`] is registered on every vocmine index.
pub const TEXT_TOKENIZER: &str = "vocmine_text";
/// Name of the tag normaliser (raw value, lower case) used by tag fields.
pub const TAG_TOKENIZER: &str = "vocmine_tag";

/// Folded text with a map back to the original byte offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    /// The folded text.
    pub text: String,
    /// For each byte offset of `text` that starts a character: the original start offset.
    starts: Vec<u32>,
    /// For each byte offset of `text` that ends a character: the original end offset.
    ends: Vec<u32>,
}

impl Folded {
    /// Original byte range of the folded byte range `from..to` (both on char boundaries).
    pub fn original_range(&self, from: usize, to: usize) -> (usize, usize) {
        (self.starts[from] as usize, self.ends[to] as usize)
    }
}

/// Fold `text` for search (NFKC, lower case, traditional to simplified), keeping offsets.
pub fn fold(text: &str) -> Folded {
    let mut out = String::with_capacity(text.len());
    // Original byte span of each folded char.
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for (start, c) in text.char_indices() {
        let end = start + c.len_utf8();
        for n in c.encode_utf8(&mut buf).nfkc() {
            for l in n.to_lowercase() {
                out.push(l);
                spans.push((start, end));
            }
        }
    }
    // fast2s maps one character to one character, so spans stay aligned.
    let simplified = fast2s::convert(&out);
    let mut starts = vec![0u32; simplified.len() + 1];
    let mut ends = vec![0u32; simplified.len() + 1];
    for ((b, c), &(s, e)) in simplified.char_indices().zip(spans.iter()) {
        starts[b] = s as u32;
        ends[b + c.len_utf8()] = e as u32;
    }
    starts[simplified.len()] = text.len() as u32;
    Folded {
        text: simplified,
        starts,
        ends,
    }
}

/// The tokenizer behind [`analyzer`]: fold, cut with jieba (search mode), keep word tokens.
#[derive(Clone, Default)]
pub struct VocTokenizer {
    jieba: tantivy_jieba::JiebaTokenizer,
}

/// Token stream of [`VocTokenizer`]: the tokens are computed up front.
pub struct VocTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for VocTokenizer {
    type TokenStream<'a> = VocTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VocTokenStream {
        let folded = fold(text);
        let mut tokens = Vec::new();
        let mut stream = self.jieba.token_stream(&folded.text);
        while stream.advance() {
            let t = stream.token();
            if !t.text.chars().any(char::is_alphanumeric) {
                continue;
            }
            let (from, to) = folded.original_range(t.offset_from, t.offset_to);
            tokens.push(Token {
                offset_from: from,
                offset_to: to,
                position: t.position,
                text: t.text.clone(),
                position_length: t.position_length,
            });
        }
        // Search mode emits a word's sub-words before the word itself (凯宾, 斯基, 凯宾斯基);
        // tantivy's snippets and phrase queries want tokens in text order.
        tokens.sort_by_key(|t| (t.offset_from, t.offset_to));
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

/// The full text analyzer: [`VocTokenizer`], tokens over 40 bytes dropped, English stemming
/// (Snowball; Chinese words pass through it unchanged).
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(VocTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The tag normaliser: the whole value as one token, lower-cased.
pub fn tag_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(tantivy::tokenizer::RawTokenizer::default())
        .filter(tantivy::tokenizer::LowerCaser)
        .build()
}

/// The analyzed tokens of `text` (for tests and debugging).
pub fn tokens(text: &str) -> Vec<String> {
    let mut a = analyzer();
    let mut s = a.token_stream(text);
    let mut out = Vec::new();
    while s.advance() {
        out.push(s.token().text.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_mode_cuts_sub_words() {
        let t = tokens("我要申请退款");
        assert!(t.contains(&"退款".to_string()), "{t:?}");
        assert!(t.contains(&"申请".to_string()), "{t:?}");
    }

    #[test]
    fn traditional_and_full_width_fold() {
        assert_eq!(tokens("發貨太慢，質量差"), tokens("发货太慢，质量差"));
        assert_eq!(tokens("退貨"), vec!["退货"]);
        assert_eq!(tokens("ＶＩＰ　客戶"), tokens("vip 客户"));
    }

    #[test]
    fn english_lower_cased_and_stemmed() {
        assert_eq!(tokens("Refunds DELAYED"), vec!["refund", "delay"]);
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
