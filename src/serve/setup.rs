//! What `vocmine serve` decides before the server starts: the bind check, which index to
//! open, and the scorer loaded from a model bundle.

use super::Scorer;
use crate::encode::Encoder;
use crate::index::{resolve_index_dir, SearchIndex};
use crate::model::ModelSpec;
use crate::text::normalise::NormaliseConfig;
use crate::text::segment::Segmenter;
use crate::workspace::RunDir;
use crate::{Error, Result};
use std::path::Path;

/// Refuses an address that parses as a non-loopback socket address when there is no token;
/// checked before a model loads ([`serve`](super::serve) checks the bound address again).
pub fn check_bind(addr: &str, token: Option<&str>) -> Result<()> {
    if let (Ok(a), None) = (addr.parse::<std::net::SocketAddr>(), token) {
        if !a.ip().is_loopback() {
            return Err(Error::Invalid(format!(
                "{addr} is not a loopback address: serving it needs a bearer token (--token or \
                 VOCMINE_TOKEN)"
            )));
        }
    }
    Ok(())
}

/// The index `serve` answers from for `path` (an index or a run folder). With `scoring`,
/// scored comments are upserted into it, so it is created if absent: in `path` when that is
/// an index already, else in the run folder's `index/`.
pub fn open_index(path: &Path, scoring: bool) -> Result<SearchIndex> {
    if !scoring {
        SearchIndex::open(&resolve_index_dir(path))
    } else if path.join("meta.json").exists() {
        SearchIndex::open_or_create(path)
    } else {
        SearchIndex::open_or_create(&RunDir::new(path).index())
    }
}

/// The run folder `path` names, when it is one and not an index folder: what `serve --score
/// --index RUN` appends its scored comments to (`RUN/served.jsonl`), so the run's report and
/// alerts see them.
pub fn run_folder(path: &Path) -> Option<RunDir> {
    (!path.join("meta.json").exists()).then(|| RunDir::new(path))
}

impl Scorer {
    /// The scorer of a model bundle: the heads of `tasks` (the default tasks when `None`) on
    /// `encoder`, the default segmenter, masking unless `mask_pii` is false.
    pub fn from_model(
        spec: &ModelSpec,
        encoder: Encoder,
        tasks: Option<&[String]>,
        mask_pii: bool,
    ) -> Result<Scorer> {
        let (heads, model_version) = spec.heads_and_version(tasks, &encoder)?;
        let aspects = spec.load_aspects(tasks, &encoder)?;
        Ok(Scorer {
            aspects,
            encoder,
            heads,
            segmenter: Segmenter::default(),
            normalise: NormaliseConfig { mask_pii },
            model_version,
        })
    }
}
