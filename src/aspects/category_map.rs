//! Aspect categories as data (issue 33 item 2): an editable TOML list of categories, each with
//! the words that name it in zh and en (`models/taxonomies/aspect_category.toml`), so that
//! 快递, 物流 and "courier" are counted together as `delivery`, and the report and the index
//! count categories rather than spellings.
//!
//! An aspect belongs to the category of the longest listed word it contains: a Chinese word
//! anywhere in it (traditional characters read as simplified), an English word as a whole word
//! and an English phrase as a run of whole words (case-insensitive, a trailing plural `s`
//! ignored). One that matches none is [`OTHER`].

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The category of an aspect no listed word names.
pub const OTHER: &str = "other";

/// One category: its id, names and words.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AspectCategory {
    /// Stable id (`delivery`).
    pub id: String,
    /// English name.
    pub name_en: String,
    /// Chinese name.
    pub name_zh: String,
    /// Words that name it.
    #[serde(default)]
    pub words: Vec<String>,
}

/// The category list of a model (`aspect_categories` in its manifest).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AspectCategories {
    /// Always `aspect_category`.
    pub task: String,
    /// The categories, in file order (ties between words of one length go to the first).
    #[serde(rename = "category")]
    pub categories: Vec<AspectCategory>,
    /// Every listed word prepared once for matching: (category index, length in characters,
    /// the word). Built by [`AspectCategories::load`].
    #[serde(skip)]
    keys: Vec<(usize, usize, Key)>,
}

/// A listed word as it is matched: English as its lower-cased singular words (a run of whole
/// words), Chinese as lower-cased text (found anywhere).
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Words(Vec<String>),
    Text(String),
}

fn has_latin(w: &str) -> bool {
    w.chars().any(|c| c.is_ascii_alphabetic())
}

/// The words of `text` (split at anything not alphanumeric), each without a plural `s`.
fn words_of(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(singular)
}

/// An English word without a trailing plural `s` (`screens` -> `screen`; `ss` kept).
fn singular(w: &str) -> &str {
    match w.strip_suffix('s') {
        Some(s) if s.len() > 2 && !s.ends_with('s') => s,
        _ => w,
    }
}

impl AspectCategories {
    /// Reads and checks a category file: ids unique and non-empty, [`OTHER`] among them.
    pub fn load(path: &Path) -> Result<AspectCategories> {
        let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut c: AspectCategories =
            toml::from_str(&s).map_err(|e| Error::model(path, e.to_string()))?;
        let mut seen = std::collections::BTreeSet::new();
        for cat in &c.categories {
            if cat.id.trim().is_empty() || !seen.insert(cat.id.as_str()) {
                return Err(Error::model(
                    path,
                    format!("category id {:?} is empty or repeated", cat.id),
                ));
            }
        }
        if !seen.contains(OTHER) {
            return Err(Error::model(
                path,
                format!("no {OTHER:?} category (where aspects no word names go)"),
            ));
        }
        c.keys = (c.categories.iter().enumerate())
            .flat_map(|(i, cat)| cat.words.iter().map(move |w| (i, w.to_lowercase())))
            .map(|(i, w)| {
                let len = w.chars().count();
                let key = match has_latin(&w) {
                    true => Key::Words(words_of(&w).map(str::to_string).collect()),
                    false => Key::Text(w),
                };
                (i, len, key)
            })
            .filter(|(_, _, k)| !matches!(k, Key::Words(v) if v.is_empty()))
            .collect();
        Ok(c)
    }

    /// The category id of `aspect` (see the module docs).
    pub fn category_of(&self, aspect: &str) -> &str {
        let simplified = fast2s::convert(&aspect.to_lowercase());
        let words: Vec<&str> = words_of(&simplified).collect();
        let mut best: Option<(usize, usize)> = None;
        for (i, len, key) in &self.keys {
            let hit = match key {
                Key::Words(phrase) => words.windows(phrase.len()).any(|run| run == phrase),
                Key::Text(w) => simplified.contains(w.as_str()),
            };
            if hit && best.is_none_or(|(l, _)| *len > l) {
                best = Some((*len, *i));
            }
        }
        best.map_or(OTHER, |(_, i)| self.categories[i].id.as_str())
    }

    /// The name of category `id` in `lang` (`zh` or English), or the id itself.
    pub fn name(&self, id: &str, lang: &str) -> String {
        self.categories.iter().find(|c| c.id == id).map_or_else(
            || id.to_string(),
            |c| {
                if lang == "zh" {
                    c.name_zh.clone()
                } else {
                    c.name_en.clone()
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_categories_group_spellings_and_languages() {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/taxonomies/aspect_category.toml");
        let c = AspectCategories::load(&p).unwrap();
        for (aspect, want) in [
            ("快递", "delivery"),
            ("物流", "delivery"),
            ("快遞員", "delivery"),
            ("the courier", "delivery"),
            ("Delivery", "delivery"),
            ("电池", "battery"),
            ("battery life", "battery"),
            ("屏幕", "display"),
            ("screens", "display"),
            ("客服", "service"),
            ("客服态度", "service"),
            ("价格", "price"),
            ("prices", "price"),
            ("音质", "sound"),
            ("APP", "software"),
            ("happy hour", OTHER),
            ("烧水壶", OTHER),
        ] {
            assert_eq!(c.category_of(aspect), want, "{aspect}");
        }
        // 充电 (battery) and 速度 (performance) are as long: the first category in the file
        assert_eq!(c.category_of("充电速度"), "battery");
        assert_eq!(c.name("delivery", "zh"), "物流配送");
        assert_eq!(c.name("delivery", "en"), "Delivery");
        assert_eq!(c.name("nope", "en"), "nope");
    }

    #[test]
    fn the_restaurant_list_has_its_eighteen_categories() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/taxonomies/aspect_category_restaurant.toml");
        let c = AspectCategories::load(&p).unwrap();
        assert_eq!(c.categories.len(), 19, "18 categories and other");
        for (aspect, want) in [
            ("地铁站", "location_transport"),
            ("地理位置", "location_area"),
            ("入口", "location_finding"),
            ("排队", "service_queue"),
            ("服务员", "service_hospitality"),
            ("the waiter", "service_hospitality"),
            ("停车位", "service_parking"),
            ("parking lot", "service_parking"),
            ("上菜速度", "service_timely"),
            ("人均消费", "price_level"),
            ("性价比", "price_value"),
            ("value for money", "price_value"),
            ("团购套餐", "price_discount"),
            ("happy hour", "price_discount"),
            ("装修", "ambience_decor"),
            ("噪音", "ambience_noise"),
            ("包间", "ambience_space"),
            ("卫生间", "ambience_hygiene"),
            ("衛生", "ambience_hygiene"),
            ("分量", "food_portion"),
            ("portions", "food_portion"),
            ("味道", "food_taste"),
            ("the pasta", "food_taste"),
            ("摆盘", "food_appearance"),
            ("招牌菜", "food_signature"),
            // no single-character word turns quality or area into a portion or a dish
            ("质量", OTHER),
            ("面积", OTHER),
        ] {
            assert_eq!(c.category_of(aspect), want, "{aspect}");
        }
        assert_eq!(c.name("service_parking", "zh"), "服务-停车");
    }

    #[test]
    fn a_bad_category_file_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.toml");
        std::fs::write(&p, "task = \"aspect_category\"\n[[category]]\nid = \"a\"\nname_en = \"A\"\nname_zh = \"甲\"\nwords = [\"x\"]\n").unwrap();
        let e = AspectCategories::load(&p).unwrap_err().to_string();
        assert!(e.contains("\"other\"") && e.contains("c.toml"), "{e}");
        std::fs::write(&p, "task = \"aspect_category\"\n[[category]]\nid = \"other\"\nname_en = \"O\"\nname_zh = \"其他\"\n[[category]]\nid = \"other\"\nname_en = \"O\"\nname_zh = \"其他\"\n").unwrap();
        assert!(AspectCategories::load(&p)
            .unwrap_err()
            .to_string()
            .contains("repeated"));
    }
}
