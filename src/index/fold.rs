//! Folding text for search, with a map back to the original offsets.
//!
//! Each character is folded on its own first (NFKC: full-width letters, digits and punctuation
//! to half-width; lower case). Chinese is then converted to simplified with OpenCC's phrase
//! tables (`data/opencc/`, applied as OpenCC's `tw2sp`/`hk2s` configurations do: Taiwan and
//! Hong Kong phrases and variants first, so 螢幕 becomes 屏幕 and 軟體 软件, then traditional
//! phrases and characters), left to right by longest match. Last, a few simplified variants
//! that OpenCC keeps apart but a customer uses for the same word are merged (帐 → 账, so the
//! traditional 到帳 and the simplified 到账 meet).
//!
//! Every folded character remembers the original bytes it came from. Where a phrase keeps its
//! length the mapping stays character for character; where it changes length (觸控式螢幕 →
//! 触摸屏) every character of the replacement maps to the whole original phrase, so a token
//! inside it highlights the phrase the customer wrote.

use std::collections::HashMap;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

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
    /// Original byte range of the folded byte range `from..to` (both on char boundaries of
    /// the folded text; other offsets are clamped to the text).
    pub fn original_range(&self, from: usize, to: usize) -> (usize, usize) {
        let last = self.starts.len().saturating_sub(1);
        let a = self.starts.get(from.min(last)).copied().unwrap_or(0) as usize;
        let b = self.ends.get(to.min(last)).copied().unwrap_or(0) as usize;
        (a, b.max(a))
    }
}

/// One conversion stage: a phrase table applied by longest match.
struct Stage {
    map: HashMap<String, String>,
    /// Key lengths in characters by first character, longest first.
    lens: HashMap<char, Vec<usize>>,
}

impl Stage {
    /// A stage from OpenCC tables (`key<TAB>value [more values]`); earlier tables win a key.
    fn new(tables: &[&str]) -> Stage {
        let mut map = HashMap::new();
        for table in tables {
            for line in table.lines() {
                if line.starts_with('#') {
                    continue;
                }
                let mut parts = line.split('\t');
                let (Some(key), Some(values)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let Some(value) = values.split(' ').find(|v| !v.is_empty()) else {
                    continue;
                };
                if key.is_empty() || key == value {
                    continue;
                }
                map.entry(key.to_string())
                    .or_insert_with(|| value.to_string());
            }
        }
        let mut lens: HashMap<char, Vec<usize>> = HashMap::new();
        for key in map.keys() {
            if let Some(first) = key.chars().next() {
                let v = lens.entry(first).or_default();
                let n = key.chars().count();
                if !v.contains(&n) {
                    v.push(n);
                }
            }
        }
        for v in lens.values_mut() {
            v.sort_unstable_by(|a, b| b.cmp(a));
        }
        Stage { map, lens }
    }

    /// Converts `input` into `out` by longest match, carrying original spans.
    fn apply(&self, input: &[Unit], out: &mut Vec<Unit>) {
        let mut key = String::new();
        let mut i = 0;
        while i < input.len() {
            let mut step = 0;
            if let Some(lens) = self.lens.get(&input[i].c) {
                for &n in lens {
                    if i + n > input.len() {
                        continue;
                    }
                    key.clear();
                    key.extend(input[i..i + n].iter().map(|u| u.c));
                    if let Some(v) = self.map.get(&key) {
                        emit(v, &input[i..i + n], out);
                        step = n;
                        break;
                    }
                }
            }
            if step == 0 {
                out.push(input[i]);
                step = 1;
            }
            i += step;
        }
    }
}

/// Appends the replacement `v` of the units `src`: character for character when the lengths
/// agree, else every character spanning the whole source phrase.
fn emit(v: &str, src: &[Unit], out: &mut Vec<Unit>) {
    if v.chars().count() == src.len() {
        out.extend(v.chars().zip(src).map(|(c, u)| Unit { c, ..*u }));
    } else {
        let from = src.iter().map(|u| u.from).min().unwrap_or(0);
        let to = src.iter().map(|u| u.to).max().unwrap_or(from);
        out.extend(v.chars().map(|c| Unit { c, from, to }));
    }
}

/// A folded character and the original bytes it came from.
#[derive(Debug, Clone, Copy)]
struct Unit {
    c: char,
    from: u32,
    to: u32,
}

/// Simplified variants merged for search (OpenCC keeps them apart): 帳 becomes 帐, while
/// mainland customers write 账 for accounts (账户, 到账, 转账).
const SEARCH_VARIANTS: &str = "帐\t账\n";

fn stages() -> &'static [Stage] {
    static STAGES: OnceLock<Vec<Stage>> = OnceLock::new();
    STAGES.get_or_init(|| {
        vec![
            Stage::new(&[
                include_str!("../../data/opencc/TWPhrasesRev.txt"),
                include_str!("../../data/opencc/TWVariantsRevPhrases.txt"),
                include_str!("../../data/opencc/TWVariantsRev.txt"),
                include_str!("../../data/opencc/HKVariantsRevPhrases.txt"),
                include_str!("../../data/opencc/HKVariantsRev.txt"),
            ]),
            Stage::new(&[
                include_str!("../../data/opencc/TSPhrases.txt"),
                include_str!("../../data/opencc/TSCharacters.txt"),
            ]),
            Stage::new(&[SEARCH_VARIANTS]),
        ]
    })
}

/// Folds `text` for search (NFKC, lower case, traditional to simplified by phrase), keeping
/// a map to the original offsets. Text past 4 GiB is not folded (offsets are 32-bit).
pub fn fold(text: &str) -> Folded {
    let mut end = text.len().min(u32::MAX as usize - 1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text[..end];
    let mut units: Vec<Unit> = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for (start, c) in text.char_indices() {
        let (from, to) = (start as u32, (start + c.len_utf8()) as u32);
        for n in c.encode_utf8(&mut buf).nfkc() {
            for l in n.to_lowercase() {
                units.push(Unit { c: l, from, to });
            }
        }
    }
    let mut next = Vec::with_capacity(units.len());
    for stage in stages() {
        next.clear();
        stage.apply(&units, &mut next);
        std::mem::swap(&mut units, &mut next);
    }
    let folded: String = units.iter().map(|u| u.c).collect();
    let mut starts = vec![0u32; folded.len() + 1];
    let mut ends = vec![0u32; folded.len() + 1];
    let mut b = 0;
    for u in &units {
        starts[b] = u.from;
        b += u.c.len_utf8();
        ends[b] = u.to;
    }
    starts[folded.len()] = text.len() as u32;
    Folded {
        text: folded,
        starts,
        ends,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_fold_to_the_mainland_word() {
        assert_eq!(fold("螢幕很亮").text, "屏幕很亮");
        assert_eq!(fold("錢還沒到帳").text, "钱还没到账");
        assert_eq!(fold("到账").text, "到账");
        assert_eq!(fold("軟體更新").text, "软件更新");
        assert_eq!(fold("ＡＰＰ　退貨").text, "app 退货");
    }

    #[test]
    fn offsets_map_back_by_phrase() {
        // Same length: character for character.
        let text = "新螢幕壞了";
        let f = fold(text);
        let at = f.text.find("屏幕").unwrap();
        let (a, b) = f.original_range(at, at + "屏幕".len());
        assert_eq!(&text[a..b], "螢幕");
        let (a, b) = f.original_range(at + "屏".len(), at + "屏幕".len());
        assert_eq!(&text[a..b], "幕");
        // Other length: the whole phrase.
        let text = "我的觸控式螢幕壞了";
        let f = fold(text);
        assert_eq!(f.text, "我的触摸屏坏了");
        let at = f.text.find("触摸屏").unwrap();
        let (a, b) = f.original_range(at, at + "触摸屏".len());
        assert_eq!(&text[a..b], "觸控式螢幕");
        let (a, b) = f.original_range(f.text.find("坏").unwrap(), f.text.len());
        assert_eq!(&text[a..b], "壞了");
    }
}
