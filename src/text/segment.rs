//! Segment: Chinese words with jieba-rs (simplified text, user dictionary supported), English
//! words with a Unicode word tokenizer, lower-cased, stop words removed.

use crate::error::{Error, Result};
use crate::text::normalise::{Lang, Normalised};
use jieba_rs::Jieba;
use std::collections::HashSet;
use std::io::BufReader;
use std::path::Path;
use std::sync::OnceLock;

/// English stop words (function words and chat filler).
const EN_STOP: &str = "a about above after again against all am an and any are aren't as at be because been before being below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only or other ought our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so some such than that that's the their theirs them themselves then there there's these they they'd they'll they're they've this those through to too under until up very was wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while who who's whom why why's with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves im ive dont cant wont thats u ur just get got also will would really still even one much";

/// Chinese stop words (particles, pronouns, fillers), simplified.
const ZH_STOP: &str = "的 了 是 我 你 他 她 它 我们 你们 他们 这 那 这个 那个 就 都 也 还 和 与 及 或 在 有 没 没有 不 很 太 又 再 吧 吗 呢 啊 呀 哦 嗯 哈 哈哈 么 之 其 而 但 但是 就是 还是 因为 所以 如果 虽然 然后 可以 一个 一下 一些 什么 怎么 这样 那样 这么 那么 自己 已经 对 把 被 给 让 从 到 向 着 过 得 地 等 个 才 又 能 会 要 想 说 去 来 上 下 里 中 后 前 真 挺 比较 非常 特别 一直 还有 感觉 觉得 东西 今天 时候";

fn en_stop() -> &'static HashSet<&'static str> {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| EN_STOP.split_whitespace().collect())
}

fn zh_stop() -> &'static HashSet<&'static str> {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| ZH_STOP.split_whitespace().collect())
}

/// True for a stop word of either language (expects lower-case English).
pub fn is_stop_word(w: &str) -> bool {
    en_stop().contains(w) || zh_stop().contains(w)
}

/// Word segmenter for Chinese and English comments.
pub struct Segmenter {
    jieba: Jieba,
}

impl Segmenter {
    /// A segmenter with jieba's default dictionary.
    pub fn new() -> Self {
        Segmenter {
            jieba: Jieba::new(),
        }
    }

    /// A segmenter with jieba's default dictionary plus a user dictionary (one word a line:
    /// `word [freq] [tag]`), for product names and domain terms.
    pub fn with_user_dict(path: &Path) -> Result<Self> {
        let mut s = Self::new();
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        s.jieba
            .load_dict(&mut BufReader::new(f))
            .map_err(|e| Error::input(path, format!("bad user dictionary: {e}")))?;
        Ok(s)
    }

    /// The underlying jieba instance (for keyword extraction and search tokenizers).
    pub fn jieba(&self) -> &Jieba {
        &self.jieba
    }

    /// Content words of a normalised comment: simplified Chinese words from jieba, English
    /// words lower-cased; punctuation, numbers, placeholders and stop words removed.
    pub fn tokens(&self, n: &Normalised) -> Vec<String> {
        match n.lang {
            Lang::En | Lang::Other => english_words(&n.text),
            Lang::Zh | Lang::ZhHant | Lang::Mixed => self.chinese_words(&n.simplified),
        }
    }

    /// Segments simplified (or mixed) text with jieba, HMM on.
    pub fn chinese_words(&self, simplified: &str) -> Vec<String> {
        let mut out = Vec::new();
        for t in self.jieba.cut(&strip_placeholders(simplified), true) {
            let w = t.word.trim();
            if w.is_empty() || !w.chars().any(char::is_alphabetic) {
                continue;
            }
            if w.is_ascii() {
                out.extend(english_words(w));
                continue;
            }
            if !zh_stop().contains(w) {
                out.push(w.to_string());
            }
        }
        out
    }
}

impl Default for Segmenter {
    fn default() -> Self {
        Self::new()
    }
}

fn strip_placeholders(s: &str) -> String {
    let mut out = s.to_string();
    for p in ["<PHONE>", "<EMAIL>", "<ID_CARD>", "<BANK_CARD>"] {
        out = out.replace(p, " ");
    }
    out
}

/// English words: letters (and digits inside words), apostrophes kept inside words,
/// lower-cased; @mentions, URLs, stop words, pure numbers and one-letter words dropped.
pub fn english_words(s: &str) -> Vec<String> {
    let s = strip_placeholders(s);
    let mut out = Vec::new();
    for raw in s.split_whitespace() {
        if raw.starts_with('@') || raw.starts_with("http") || raw.starts_with("www.") {
            continue;
        }
        let mut cur = String::new();
        let chars: Vec<char> = raw.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            let inner_apos = (c == '\'' || c == '’')
                && i > 0
                && i + 1 < chars.len()
                && chars[i - 1].is_alphabetic()
                && chars[i + 1].is_alphabetic();
            if c.is_alphanumeric() && !is_cjk(c) {
                cur.extend(c.to_lowercase());
            } else if inner_apos {
                cur.push('\'');
            } else {
                push_word(&mut out, &mut cur);
            }
        }
        push_word(&mut out, &mut cur);
    }
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

fn push_word(out: &mut Vec<String>, cur: &mut String) {
    if cur.chars().count() > 1
        && cur.chars().any(char::is_alphabetic)
        && !en_stop().contains(cur.as_str())
    {
        out.push(std::mem::take(cur));
    } else {
        cur.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::normalise::{normalise, NormaliseConfig};

    #[test]
    fn english_words_lowercase_and_stop_words() {
        assert_eq!(
            english_words("@united I've been on HOLD for 2 hours!!! Worst customer-service ever."),
            vec!["hold", "hours", "worst", "customer", "service", "ever"]
        );
    }

    #[test]
    fn chinese_traditional_and_mixed() {
        let s = Segmenter::new();
        let n = normalise("退貨流程太麻煩了，客服態度很差", NormaliseConfig::default());
        let t = s.tokens(&n);
        assert!(
            t.contains(&"退货".to_string()) && t.contains(&"客服".to_string()),
            "{t:?}"
        );
        assert!(!t.contains(&"了".to_string()));
        let n = normalise(
            "App 一直 crash，登录不了 13812345678",
            NormaliseConfig::default(),
        );
        let t = s.tokens(&n);
        assert!(
            t.contains(&"app".to_string()) && t.contains(&"crash".to_string()),
            "{t:?}"
        );
        assert!(t.contains(&"登录".to_string()), "{t:?}");
        assert!(
            !t.iter().any(|w| w.contains("PHONE") || w.contains("phone")),
            "{t:?}"
        );
    }

    #[test]
    fn user_dictionary_keeps_product_names_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dict.txt");
        std::fs::write(&p, "扫地机器人七号 1000 n\n").unwrap();
        let plain = Segmenter::new().chinese_words("扫地机器人七号坏了");
        assert!(!plain.contains(&"扫地机器人七号".to_string()));
        let s = Segmenter::with_user_dict(&p).unwrap();
        assert!(s
            .chinese_words("扫地机器人七号坏了")
            .contains(&"扫地机器人七号".to_string()));
    }
}
