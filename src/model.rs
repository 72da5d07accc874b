//! The model bundle: an encoder folder plus the heads of each task, described by a
//! `vocmine.toml` manifest:
//!
//! ```toml
//! encoder = "multilingual-e5-small-zh-en"   # folder, relative to the manifest
//! max_len = 128
//! [tasks.sentiment]
//! head = "heads/sentiment"                  # STEM of STEM.json + STEM.safetensors
//! by_language = { en = "heads/sentiment_en" }  # optional: this head answers English comments
//! ```
//!
//! A bare encoder folder (config.json, model.safetensors, tokenizer.json) also loads, with no
//! tasks.

use crate::classify::Head;
use crate::corpus::EmbeddingCache;
use crate::encode::{Encoder, EncoderConfig};
use crate::error::{Error, Result};
use crate::taxonomy::{prototype_head, Taxonomy};
use crate::text::normalise::Lang;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest file name inside a model folder.
pub const MANIFEST: &str = "vocmine.toml";

/// One task entry of the manifest: a trained head, or a taxonomy whose seed examples make a
/// few-shot head at load time (a taxonomy beside a head supplies category types).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskEntry {
    /// Head file stem, relative to the manifest.
    #[serde(default)]
    pub head: Option<String>,
    /// Taxonomy file, relative to the manifest.
    #[serde(default)]
    pub taxonomy: Option<String>,
    /// Run by `score` when no `--tasks` is given (default true). Benchmark heads (banking77,
    /// clinc150, ...) set `default = false`: they stay available to `eval` and `--tasks`.
    #[serde(default = "yes")]
    pub default: bool,
    /// Heads that answer instead of `head` for the comments of a language (the code `normalise`
    /// detects: `en`, `zh`, `zh-Hant`, `mixed`, `other`), as language -> head stem. Each has the
    /// task's labels; the encoder, and so the cost of a comment, stays the same.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_language: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// The `vocmine.toml` manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Encoder folder, relative to the manifest.
    pub encoder: String,
    /// Fine-tuned encoder weights (a safetensors file of the tuned layers), relative to the
    /// manifest: merged over the base weights at load time, so scoring costs nothing extra.
    #[serde(default)]
    pub encoder_overlay: Option<String>,
    /// Token limit the heads were trained with.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Tasks by name.
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskEntry>,
    /// Aspect heads (STEM of STEM.json + STEM.safetensors, relative to the manifest): the
    /// [`ASPECTS_TASK`] task, run on the same encoder pass when asked for (`score --aspects`,
    /// or `aspects` among `--tasks`).
    #[serde(default)]
    pub aspects: Option<String>,
    /// The aspect categories (a TOML list, relative to the manifest; see
    /// [`crate::aspects::category_map`]): each aspect found is put in one.
    #[serde(default)]
    pub aspect_categories: Option<String>,
}

/// The task name of the aspect heads (`--tasks sentiment,aspects`; the `aspects` field of a
/// scored record).
pub const ASPECTS_TASK: &str = "aspects";

fn default_max_len() -> usize {
    128
}

/// Where the model is looked for when none is named: `$VOCMINE_MODEL` when set, else the first
/// of `<exe dir>/models`, `<exe dir>/../models`, `<exe dir>/../../models` (beside the binary,
/// for a copied install or `target/release/`) and the `models/` folder of the source tree the
/// binary was built from that holds a `vocmine.toml`. The error names every place looked at.
pub fn default_model_dir() -> Result<PathBuf> {
    let env = std::env::var_os("VOCMINE_MODEL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let exe = std::env::current_exe().ok();
    find_model_dir(
        env,
        exe.as_deref(),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
    )
}

/// [`default_model_dir`] with its inputs given: the `$VOCMINE_MODEL` value, the binary's path
/// and the build-time folder.
pub fn find_model_dir(env: Option<PathBuf>, exe: Option<&Path>, built: &Path) -> Result<PathBuf> {
    if let Some(dir) = env {
        return Ok(dir);
    }
    let mut tried = Vec::new();
    if let Some(bin) = exe.and_then(Path::parent) {
        tried.push(bin.join("models"));
        tried.push(bin.join("..").join("models"));
        tried.push(bin.join("..").join("..").join("models"));
    }
    tried.push(built.to_path_buf());
    if let Some(found) = tried.iter().find(|d| d.join(MANIFEST).is_file()) {
        return Ok(found.clone());
    }
    let places: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(Error::Invalid(format!(
        "no model folder found: $VOCMINE_MODEL is not set and none of {} holds a {MANIFEST}; \
         name one with --model DIR or VOCMINE_MODEL=DIR",
        places.join(", ")
    )))
}

/// A resolved model folder: where the encoder is and which heads belong to it.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The folder given.
    pub dir: PathBuf,
    /// The encoder folder.
    pub encoder_dir: PathBuf,
    /// Fine-tuned weights merged over the encoder's at load time.
    pub encoder_overlay: Option<PathBuf>,
    /// Token limit.
    pub max_len: usize,
    /// Task name -> head stem or taxonomy file.
    pub heads: BTreeMap<String, TaskSource>,
    /// Tasks run when none are named.
    pub default_tasks: Vec<String>,
    /// Per task, the heads routed by language (language -> head stem), from `by_language`.
    pub routes: BTreeMap<String, BTreeMap<String, PathBuf>>,
    /// The aspect heads' stem, when the manifest names them.
    pub aspects: Option<PathBuf>,
    /// The aspect category list, when the manifest names one.
    pub aspect_categories: Option<PathBuf>,
}

/// Where a task's head comes from.
#[derive(Debug, Clone)]
pub enum TaskSource {
    /// A trained head (STEM.json + STEM.safetensors).
    Head(PathBuf),
    /// A taxonomy file: a few-shot head is built from its seed examples.
    Taxonomy(PathBuf),
}

impl ModelSpec {
    /// Reads `dir/vocmine.toml`, or treats `dir` as a bare encoder folder.
    pub fn open(dir: &Path) -> Result<ModelSpec> {
        let m = dir.join(MANIFEST);
        if m.is_file() {
            let s = std::fs::read_to_string(&m).map_err(|e| Error::io(&m, e))?;
            let man: Manifest = toml::from_str(&s).map_err(|e| Error::model(&m, e.to_string()))?;
            Ok(ModelSpec {
                dir: dir.to_path_buf(),
                encoder_dir: dir.join(&man.encoder),
                encoder_overlay: man.encoder_overlay.as_ref().map(|o| dir.join(o)),
                max_len: man.max_len,
                heads: man
                    .tasks
                    .iter()
                    .map(|(k, v)| {
                        let src = match (&v.head, &v.taxonomy) {
                            (Some(h), _) => TaskSource::Head(dir.join(h)),
                            (None, Some(t)) => TaskSource::Taxonomy(dir.join(t)),
                            (None, None) => {
                                return Err(Error::model(
                                    &m,
                                    format!("task {k:?} names neither a head nor a taxonomy"),
                                ))
                            }
                        };
                        Ok((k.clone(), src))
                    })
                    .collect::<Result<_>>()?,
                default_tasks: man
                    .tasks
                    .iter()
                    .filter(|(_, v)| v.default)
                    .map(|(k, _)| k.clone())
                    .collect(),
                routes: man
                    .tasks
                    .iter()
                    .filter(|(_, v)| !v.by_language.is_empty())
                    .map(|(k, v)| {
                        let by = v
                            .by_language
                            .iter()
                            .map(|(l, h)| {
                                if Lang::from_code(l).is_none() {
                                    let codes: Vec<&str> =
                                        Lang::ALL.iter().map(|c| c.as_str()).collect();
                                    return Err(Error::model(
                                        &m,
                                        format!(
                                            "task {k:?}: by_language names {l:?}, not a language code ({})",
                                            codes.join(", ")
                                        ),
                                    ));
                                }
                                Ok((l.clone(), dir.join(h)))
                            })
                            .collect::<Result<_>>()?;
                        Ok((k.clone(), by))
                    })
                    .collect::<Result<_>>()?,
                aspects: man.aspects.as_ref().map(|a| dir.join(a)),
                aspect_categories: man.aspect_categories.as_ref().map(|a| dir.join(a)),
            })
        } else if dir.join("config.json").is_file() {
            Ok(ModelSpec {
                dir: dir.to_path_buf(),
                encoder_dir: dir.to_path_buf(),
                encoder_overlay: None,
                max_len: default_max_len(),
                heads: BTreeMap::new(),
                default_tasks: Vec::new(),
                routes: BTreeMap::new(),
                aspects: None,
                aspect_categories: None,
            })
        } else {
            Err(Error::model(
                dir,
                format!("neither {MANIFEST} nor an encoder (config.json) here; pass --model with the shipped `models` folder or an encoder folder"),
            ))
        }
    }

    /// Loads the encoder with `cfg` (its `max_len` and overlay are taken from the manifest;
    /// an overlay already set in `cfg` wins).
    pub fn load_encoder(&self, mut cfg: EncoderConfig) -> Result<Encoder> {
        cfg.max_len = self.max_len;
        if cfg.overlay.is_none() {
            cfg.overlay = self.encoder_overlay.clone();
        }
        Encoder::load(&self.encoder_dir, cfg)
    }

    /// Loads the heads of `tasks` (the default tasks when `None`), checking each exists; few-shot heads
    /// are built from their taxonomy's seeds with `encoder`.
    pub fn load_heads(&self, tasks: Option<&[String]>, encoder: &Encoder) -> Result<Vec<Head>> {
        let names: Vec<String> = match tasks {
            Some(t) => t.to_vec(),
            None => self.default_tasks.clone(),
        };
        names
            .iter()
            .filter(|n| n.as_str() != ASPECTS_TASK || self.heads.contains_key(ASPECTS_TASK))
            .map(|n| {
                let stem = self.heads.get(n).ok_or_else(|| {
                    Error::model(
                        &self.dir,
                        format!(
                            "no task {n:?} in this model (tasks: {})",
                            self.heads.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    )
                })?;
                let mut head = match stem {
                    TaskSource::Head(p) => Head::load(p)?,
                    TaskSource::Taxonomy(p) => few_shot_head(p, encoder)?,
                };
                for (lang, p) in self.routes.get(n).into_iter().flatten() {
                    let routed = Head::load(p)?;
                    head.route(lang, routed)
                        .map_err(|e| Error::model(self.dir.join(MANIFEST), e.to_string()))?;
                }
                Ok(head)
            })
            .collect()
    }
}

impl ModelSpec {
    /// The heads of `tasks` (the default tasks when `None`) and the model version a scoring
    /// run with them records ([`ModelSpec::version`] of the encoder's fingerprint and those
    /// tasks): what `score`, `status` and `serve --score` load.
    pub fn heads_and_version(
        &self,
        tasks: Option<&[String]>,
        encoder: &Encoder,
    ) -> Result<(Vec<Head>, String)> {
        let heads = self.load_heads(tasks, encoder)?;
        let mut names: Vec<String> = heads.iter().map(|h| h.meta.task.clone()).collect();
        if self.wants_aspects(tasks)? {
            names.push(ASPECTS_TASK.to_string());
        }
        let version = self.version(&encoder.fingerprint()?, &names)?;
        Ok((heads, version))
    }

    /// Whether `tasks` run the aspect heads: when [`ASPECTS_TASK`] is among them (an error if
    /// this model has none). The default tasks (`None`) leave them out: they cost a pass over
    /// each comment's token states, so a run asks for them.
    pub fn wants_aspects(&self, tasks: Option<&[String]>) -> Result<bool> {
        match tasks {
            None => Ok(false),
            Some(t) if t.iter().any(|n| n == ASPECTS_TASK) => {
                if self.aspects.is_none() {
                    return Err(Error::model(
                        &self.dir,
                        "--tasks names aspects, but this model has no aspect heads (an `aspects = \"STEM\"` line in its vocmine.toml)",
                    ));
                }
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    /// `tasks` (the default tasks when `None`) with [`ASPECTS_TASK`] added.
    pub fn with_aspects(&self, tasks: Option<&[String]>) -> Vec<String> {
        let mut t = tasks.map_or_else(|| self.default_tasks.clone(), <[String]>::to_vec);
        if !t.iter().any(|n| n == ASPECTS_TASK) {
            t.push(ASPECTS_TASK.to_string());
        }
        t
    }

    /// The aspect heads `tasks` run (see [`wants_aspects`](Self::wants_aspects)), checked
    /// against `encoder`: they read its per-token states, which needs the packed engine.
    pub fn load_aspects(
        &self,
        tasks: Option<&[String]>,
        encoder: &Encoder,
    ) -> Result<Option<crate::aspects::AspectModel>> {
        if !self.wants_aspects(tasks)? {
            return Ok(None);
        }
        let Some(stem) = &self.aspects else {
            return Ok(None);
        };
        let mut m = crate::aspects::AspectModel::load(stem)?;
        m.check_encoder(encoder)?;
        if let Some(p) = &self.aspect_categories {
            m = m.with_categories(crate::aspects::AspectCategories::load(p)?);
        }
        if !encoder.is_packed() {
            return Err(Error::model(
                &self.dir,
                "the aspect heads need the packed engine (a CPU with AVX2 and FMA); leave aspects out with --tasks",
            ));
        }
        Ok(Some(m))
    }

    /// The model version a scoring run records: a hash of the encoder fingerprint and of the
    /// files behind each task run (head weights and metadata, or taxonomy), with the task names.
    pub fn version(&self, encoder_fingerprint: &str, tasks: &[String]) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(encoder_fingerprint.as_bytes());
        for t in tasks {
            h.update(b"\0task:");
            h.update(t.as_bytes());
            let mut files: Vec<PathBuf> = match self.heads.get(t) {
                None if t == ASPECTS_TASK => self
                    .aspects
                    .iter()
                    .flat_map(|stem| {
                        [
                            stem.with_extension("json"),
                            stem.with_extension("safetensors"),
                        ]
                    })
                    .collect(),
                Some(TaskSource::Head(stem)) => vec![
                    stem.with_extension("json"),
                    stem.with_extension("safetensors"),
                ],
                Some(TaskSource::Taxonomy(p)) => vec![p.clone()],
                None => Vec::new(),
            };
            for (lang, stem) in self.routes.get(t).into_iter().flatten() {
                h.update(format!("\0lang:{lang}").as_bytes());
                files.push(stem.with_extension("json"));
                files.push(stem.with_extension("safetensors"));
            }
            for f in files {
                h.update(std::fs::read(&f).map_err(|e| Error::io(&f, e))?);
            }
        }
        Ok(h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

/// Builds the few-shot head of a taxonomy file: its seeds are normalised and encoded like
/// comments, then [`prototype_head`] makes the calibrated nearest-prototype head.
pub fn few_shot_head(path: &Path, encoder: &Encoder) -> Result<Head> {
    let tax = Taxonomy::load(path)?;
    let (texts, ys) = tax.seeds();
    let cache = EmbeddingCache::new(EmbeddingCache::default_dir());
    let embs = cache.embed(encoder, &encoder.fingerprint()?, &texts, |_, _| {})?;
    let mut head = prototype_head(&tax.task, &tax.labels(), &embs, &ys, tax.unknown_below)?;
    let kinds: Vec<String> = tax
        .categories
        .iter()
        .map(|c| c.kind.clone().unwrap_or_default())
        .collect();
    if kinds.iter().any(|k| !k.is_empty()) {
        head.meta.kinds = Some(kinds);
    }
    Ok(head)
}

/// How the manifest `manifest` names the head `stem`: relative to the manifest's folder when
/// the head lies under it, else absolute (with `/` separators).
pub fn head_path_for(manifest: &Path, stem: &Path) -> Result<String> {
    let dir = match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let canon = |p: &Path| std::fs::canonicalize(p).map_err(|e| Error::io(p, e));
    let head_json = stem.with_extension("json");
    let head_dir = canon(match head_json.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    })?;
    let name = stem
        .file_name()
        .ok_or_else(|| Error::model(manifest, format!("{}: not a head stem", stem.display())))?;
    let abs = head_dir.join(name);
    let rel = match abs.strip_prefix(canon(dir)?) {
        Ok(r) => r.to_path_buf(),
        Err(_) => abs.clone(),
    };
    Ok(rel.to_string_lossy().replace('\\', "/"))
}

/// The bundle manifest that `into` names (a `vocmine.toml` or its folder), checked to be the
/// manifest of `spec`'s bundle: a head trained on one encoder only fits that encoder's bundle.
pub fn bundle_manifest_of(into: &Path, spec: &ModelSpec) -> Result<PathBuf> {
    let manifest = if into.is_dir() {
        into.join(MANIFEST)
    } else {
        into.to_path_buf()
    };
    let dir = match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let same = match (
        std::fs::canonicalize(&dir),
        std::fs::canonicalize(&spec.dir),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    if !manifest.is_file() || !same {
        return Err(Error::model(
            into,
            format!(
                "not the manifest of the model the head is trained on ({}); name that bundle's vocmine.toml, or train with --model on the bundle you want",
                spec.dir.join(MANIFEST).display()
            ),
        ));
    }
    Ok(manifest)
}

/// The `vocmine.toml` lines that make the head `stem` task `task`'s head.
pub fn head_entry(manifest: &Path, task: &str, stem: &Path) -> Result<String> {
    Ok(format!(
        "[tasks.{task}]\nhead = {}",
        toml::Value::String(head_path_for(manifest, stem)?)
    ))
}

/// Names the head `stem` (STEM.json + STEM.safetensors) as task `task`'s head in the bundle
/// manifest `manifest` (a `vocmine.toml`), keeping the rest of the file (comments included)
/// as it is: a new task gets a `[tasks.TASK]` table at the end; an existing one has its `head`
/// (or `taxonomy`) line replaced and keeps its other keys. The path is written relative to the
/// manifest when the head lies under its folder. The result is checked (it must parse and
/// name the head) before it atomically replaces the file. Returns the lines written.
pub fn set_task_head(manifest: &Path, task: &str, stem: &Path) -> Result<String> {
    if task.is_empty()
        || !task
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::model(
            manifest,
            format!("task name {task:?}: use letters, digits, _ and - only"),
        ));
    }
    let text = std::fs::read_to_string(manifest).map_err(|e| Error::io(manifest, e))?;
    let rel = head_path_for(manifest, stem)?;
    let head_line = format!("head = {}", toml::Value::String(rel.clone()));
    let header = format!("[tasks.{task}]");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim() == header);
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 3);
    let written = match start {
        Some(s) => {
            let end = (s + 1..lines.len())
                .find(|&i| lines[i].trim_start().starts_with('['))
                .unwrap_or(lines.len());
            out.extend(lines[..=s].iter().map(|l| l.to_string()));
            out.push(head_line.clone());
            for l in &lines[s + 1..end] {
                let key = l.split('=').next().unwrap_or("").trim();
                if key != "head" && key != "taxonomy" {
                    out.push(l.to_string());
                }
            }
            out.extend(lines[end..].iter().map(|l| l.to_string()));
            format!("{header}\n{head_line}")
        }
        None => {
            out.extend(lines.iter().map(|l| l.to_string()));
            if out.last().is_some_and(|l| !l.trim().is_empty()) {
                out.push(String::new());
            }
            out.push(header.clone());
            out.push(head_line.clone());
            format!("{header}\n{head_line}")
        }
    };
    let new_text = out.join("\n") + "\n";
    let parsed: Manifest = toml::from_str(&new_text).map_err(|e| {
        Error::model(
            manifest,
            format!("the file would not parse after adding {task:?} ({e}); add these lines by hand:\n{written}"),
        )
    })?;
    if parsed.tasks.get(task).and_then(|t| t.head.as_deref()) != Some(rel.as_str()) {
        return Err(Error::model(
            manifest,
            format!(
                "could not set task {task:?} in this file; add these lines by hand:\n{written}"
            ),
        ));
    }
    crate::workspace::write_atomic(manifest, new_text.as_bytes())?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_folder_is_looked_for_beside_the_binary_then_at_the_build_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let exe = d.join("opt").join("bin").join("vocmine");
        let built = d.join("src").join("models");
        // nothing anywhere: the error lists every place looked at
        let err = find_model_dir(None, Some(&exe), &built)
            .unwrap_err()
            .to_string();
        for p in [
            d.join("opt/bin/models"),
            d.join("opt/bin/../models"),
            d.join("opt/bin/../../models"),
            built.clone(),
        ] {
            assert!(err.contains(&p.display().to_string()), "{err}");
        }
        assert!(
            err.contains("VOCMINE_MODEL") && err.contains("--model"),
            "{err}"
        );
        // the build path, then one folder above the binary first
        std::fs::create_dir_all(&built).unwrap();
        std::fs::write(built.join(MANIFEST), "").unwrap();
        assert_eq!(find_model_dir(None, Some(&exe), &built).unwrap(), built);
        let beside = d.join("opt/bin/../models");
        std::fs::create_dir_all(&beside).unwrap();
        std::fs::write(beside.join(MANIFEST), "").unwrap();
        assert_eq!(find_model_dir(None, Some(&exe), &built).unwrap(), beside);
        // $VOCMINE_MODEL wins, as given
        let env = d.join("elsewhere");
        assert_eq!(
            find_model_dir(Some(env.clone()), Some(&exe), &built).unwrap(),
            env
        );
    }

    #[test]
    fn set_task_head_adds_or_replaces_one_table_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join(MANIFEST);
        std::fs::create_dir_all(dir.path().join("heads")).unwrap();
        std::fs::write(
            &m,
            "# my bundle\nencoder = \"enc\"\n\n# intents, by hand\n[tasks.intent]\ntaxonomy = \"t.toml\"\ndefault = false\n\n[tasks.sentiment]\nhead = \"s\"\n",
        )
        .unwrap();
        let lines = set_task_head(&m, "intent", &dir.path().join("heads/intent")).unwrap();
        assert_eq!(lines, "[tasks.intent]\nhead = \"heads/intent\"");
        let text = std::fs::read_to_string(&m).unwrap();
        assert!(text.contains("# my bundle") && text.contains("# intents, by hand"));
        let man: Manifest = toml::from_str(&text).unwrap();
        let intent = &man.tasks["intent"];
        assert_eq!(intent.head.as_deref(), Some("heads/intent"));
        assert!(intent.taxonomy.is_none() && !intent.default);
        assert_eq!(man.tasks["sentiment"].head.as_deref(), Some("s"));

        set_task_head(&m, "reason", &dir.path().join("heads/reason")).unwrap();
        let man: Manifest = toml::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
        assert_eq!(man.tasks["reason"].head.as_deref(), Some("heads/reason"));
        assert!(man.tasks["reason"].default);
        assert_eq!(man.tasks.len(), 3);

        // a head elsewhere is named by its absolute path; a bad task name is refused
        let other = tempfile::tempdir().unwrap();
        let lines = set_task_head(&m, "x", &other.path().join("h")).unwrap();
        assert!(lines.contains(
            &std::fs::canonicalize(other.path())
                .unwrap()
                .display()
                .to_string()
        ));
        assert!(set_task_head(&m, "a]\nb", &dir.path().join("h")).is_err());
    }
}
