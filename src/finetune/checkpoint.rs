//! Checkpoints of a fine-tuning run: written atomically every few steps, and read back so an
//! interrupted run resumes where it stopped with the same result as an uninterrupted one.

use super::model::Params;
use super::EvalPoint;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The run's checkpoint: `checkpoint.safetensors` (parameters, moments, best parameters)
/// plus `checkpoint.json` (progress and the run's key).
#[derive(Serialize, Deserialize)]
pub(super) struct CheckpointState {
    pub(super) key: String,
    pub(super) step: usize,
    pub(super) seconds: f64,
    pub(super) loss_sum: f64,
    pub(super) loss_n: usize,
    pub(super) bad_evals: usize,
    pub(super) finished: bool,
    pub(super) history: Vec<EvalPoint>,
    pub(super) best: Option<EvalPoint>,
}

pub(super) fn save(dir: &Path, st: &CheckpointState, p: &Params, best: &[Tensor]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (i, v) in p.vars.iter().enumerate() {
        map.insert(format!("p.{i}"), v.as_tensor().to_device(&Device::Cpu)?);
        map.insert(format!("m.{i}"), p.m[i].to_device(&Device::Cpu)?);
        map.insert(format!("v.{i}"), p.v[i].to_device(&Device::Cpu)?);
    }
    for (i, t) in best.iter().enumerate() {
        map.insert(format!("best.{i}"), t.to_device(&Device::Cpu)?);
    }
    let w = dir.join("checkpoint.safetensors");
    let tmp = dir.join("checkpoint.safetensors.tmp");
    candle_core::safetensors::save(&map, &tmp)?;
    std::fs::rename(&tmp, &w).map_err(|e| Error::io(&w, e))?;
    // the JSON is written last: it names the step the weights file belongs to
    let j = dir.join("checkpoint.json");
    let tmp = dir.join("checkpoint.json.tmp");
    let s = serde_json::to_string_pretty(st).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(&tmp, s).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &j).map_err(|e| Error::io(&j, e))
}

/// Restores the run whose key is `key` from `dir` into `p` and `best`, returning its state;
/// `None` (and a log line) when there is no checkpoint, an unreadable one, or another run's.
pub(super) fn resume(
    dir: &Path,
    key: &str,
    p: &mut Params,
    best: &mut [Tensor],
    device: &Device,
    log: &mut impl FnMut(&str),
) -> Result<Option<CheckpointState>> {
    let Ok(s) = std::fs::read_to_string(dir.join("checkpoint.json")) else {
        return Ok(None);
    };
    match serde_json::from_str::<CheckpointState>(&s) {
        Ok(old) if old.key == key => {
            let w = dir.join("checkpoint.safetensors");
            let saved = candle_core::safetensors::load(&w, device)?;
            let get = |n: String| -> Result<Tensor> {
                saved
                    .get(&n)
                    .cloned()
                    .ok_or_else(|| Error::model(&w, format!("{n} is missing")))
            };
            for (i, kept) in best.iter_mut().enumerate() {
                p.vars[i].set(&get(format!("p.{i}"))?)?;
                p.m[i] = get(format!("m.{i}"))?;
                p.v[i] = get(format!("v.{i}"))?;
                *kept = get(format!("best.{i}"))?;
            }
            Ok(Some(old))
        }
        Ok(_) => {
            log("a checkpoint of another run is here; starting afresh (it will be replaced)");
            Ok(None)
        }
        Err(e) => {
            log(&format!("unreadable checkpoint ({e}); starting afresh"));
            Ok(None)
        }
    }
}
