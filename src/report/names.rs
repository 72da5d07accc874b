//! Category names in the reader's language, from the taxonomies of the model bundle, and the
//! order of the journey stages.

use crate::error::Result;
use crate::model::{ModelSpec, TaskSource};
use crate::taxonomy::Taxonomy;
use std::collections::BTreeMap;
use std::path::Path;

/// The journey stages in journey order, used when no journey-stage taxonomy is at hand.
pub use crate::taxonomy::JOURNEY_STAGES as DEFAULT_STAGES;

/// Display names of categories (task -> id -> name) in one language, and the stage order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Names {
    /// `en` or `zh`.
    pub lang: String,
    names: BTreeMap<String, BTreeMap<String, String>>,
    stages: Vec<String>,
}

impl Names {
    /// No taxonomy: ids are shown as they are, stages in [`DEFAULT_STAGES`] order.
    pub fn ids(lang: &str) -> Names {
        Names {
            lang: lang.to_string(),
            names: BTreeMap::new(),
            stages: DEFAULT_STAGES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Names from taxonomies (`name_zh` when `lang` is `zh`, else `name_en`); the stage order
    /// is the `journey_stage` taxonomy's category order (its `other` left out: not a stage).
    pub fn from_taxonomies(taxonomies: &[Taxonomy], lang: &str) -> Names {
        let mut n = Names::ids(lang);
        for t in taxonomies {
            let m = n.names.entry(t.task.clone()).or_default();
            for c in &t.categories {
                let name = if lang == "zh" { &c.name_zh } else { &c.name_en };
                m.insert(c.id.clone(), name.clone());
            }
            if t.task == "journey_stage" {
                n.stages = t
                    .categories
                    .iter()
                    .map(|c| c.id.clone())
                    .filter(|id| id != "other")
                    .collect();
            }
        }
        n
    }

    /// The names of every taxonomy task of the model bundle in `model_dir`.
    pub fn from_model(model_dir: &Path, lang: &str) -> Result<Names> {
        let spec = ModelSpec::open(model_dir)?;
        let mut taxonomies = Vec::new();
        for src in spec.heads.values() {
            if let TaskSource::Taxonomy(p) = src {
                taxonomies.push(Taxonomy::load(p)?);
            }
        }
        let mut n = Names::from_taxonomies(&taxonomies, lang);
        if let Some(p) = &spec.aspect_categories {
            let c = crate::aspects::AspectCategories::load(p)?;
            let m = n.names.entry("aspect_category".into()).or_default();
            for cat in &c.categories {
                m.insert(cat.id.clone(), c.name(&cat.id, lang));
            }
        }
        Ok(n)
    }

    /// The names of the model folder `model`, else of the default model folder; when no
    /// model folder is found, the ids in `lang`, with the reason as the second value (so the
    /// caller can say the categories are shown by id).
    pub fn for_model(model: Option<&Path>, lang: &str) -> Result<(Names, Option<String>)> {
        match model {
            Some(m) => Ok((Names::from_model(m, lang)?, None)),
            None => match crate::model::default_model_dir() {
                Ok(m) => Ok((Names::from_model(&m, lang)?, None)),
                Err(e) => Ok((Names::ids(lang), Some(e.to_string()))),
            },
        }
    }

    /// The display name of `id` in `task`, or the id itself when the taxonomy has none.
    pub fn name(&self, task: &str, id: &str) -> String {
        self.names
            .get(task)
            .and_then(|m| m.get(id))
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    /// The journey stages in order.
    pub fn stages(&self) -> &[String] {
        &self.stages
    }
}
