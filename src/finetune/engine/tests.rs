//! The own engine against candle's autograd on a tiny random BERT: every parameter's gradient,
//! a 20-step loss curve, resume and determinism.

use super::super::model::{Model, Params, PARTS};
use super::super::*;
use super::layer::Shape;
use super::ops::Products;
use super::*;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;

const H: usize = 64;
const INTER: usize = 128;
const DEPTH: usize = 3;

fn config() -> Config {
    Config {
        hidden_size: H,
        num_hidden_layers: DEPTH,
        num_attention_heads: 2,
        intermediate_size: INTER,
        vocab_size: 16,
        max_position_embeddings: 32,
        ..Config::default()
    }
}

fn rnd(rng: &mut Rng, n: usize, scale: f32, mean: f32) -> Vec<f32> {
    (0..n)
        .map(|_| mean + (rng.next_f64() as f32 * 2.0 - 1.0) * scale)
        .collect()
}

/// A folder with random base weights of the tiny config.
fn weights(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vocmine-engine-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng::new(7);
    let mut map = HashMap::new();
    let t = |v: Vec<f32>, d: &[usize]| Tensor::from_vec(v, d, &Device::Cpu).unwrap();
    map.insert(
        "embeddings.word_embeddings.weight".to_string(),
        t(rnd(&mut rng, 16 * H, 0.1, 0.0), &[16, H]),
    );
    for l in 0..DEPTH {
        for part in PARTS {
            let (dims, scale, mean): (Vec<usize>, f32, f32) = match part {
                p if p.contains("LayerNorm.weight") => (vec![H], 0.2, 1.0),
                p if p.contains("LayerNorm.bias") => (vec![H], 0.1, 0.0),
                "intermediate.dense.weight" => (vec![INTER, H], 0.15, 0.0),
                "intermediate.dense.bias" => (vec![INTER], 0.1, 0.0),
                "output.dense.weight" => (vec![H, INTER], 0.1, 0.0),
                p if p.ends_with("weight") => (vec![H, H], 0.25, 0.0),
                _ => (vec![H], 0.1, 0.0),
            };
            let n = dims.iter().product();
            map.insert(
                format!("encoder.layer.{l}.{part}"),
                t(rnd(&mut rng, n, scale, mean), &dims),
            );
        }
    }
    candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
    dir
}

fn tasks(anchor: f64, relations: bool) -> Vec<TaskSpec> {
    vec![
        TaskSpec {
            name: "a".into(),
            labels: vec!["x".into(), "y".into(), "z".into()],
            hidden: 16,
            anchor,
            label_anchor: Vec::new(),
            anchor_relations: relations,
        },
        TaskSpec {
            name: "b".into(),
            labels: vec!["p".into(), "q".into()],
            hidden: 0,
            anchor: 0.0,
            label_anchor: Vec::new(),
            anchor_relations: false,
        },
    ]
}

fn examples(n: usize, seed: u64, tasks: usize) -> Vec<Example> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let task = i % tasks;
            let len = 2 + rng.below(9);
            let label = rng.below(if task == 0 { 3 } else { 2 });
            let mut anchor = rnd(&mut rng, H, 1.0, 0.0);
            let norm = anchor.iter().map(|v| v * v).sum::<f32>().sqrt();
            anchor.iter_mut().for_each(|v| *v /= norm);
            let mut states = rnd(&mut rng, len * H, 1.0, 0.0);
            // a label signal, so the loss falls
            for r in 0..len {
                states[r * H + label] += 1.5;
            }
            Example {
                task,
                label,
                states,
                anchor,
            }
        })
        .collect()
}

fn shape() -> Shape {
    Shape {
        h: H,
        heads: 2,
        inter: INTER,
        eps: 1e-12,
    }
}

#[allow(clippy::too_many_arguments)]
fn input<'a>(
    dir: &'a Path,
    cfg: &'a Config,
    tasks: &'a [TaskSpec],
    heads: &'a [Option<Head>],
    train: &'a [Example],
    dev: &'a [Example],
    engine: Engine,
    ck: &str,
) -> FinetuneInput<'a> {
    FinetuneInput {
        weights: Box::leak(dir.join("model.safetensors").into_boxed_path()),
        overlay: None,
        config: cfg,
        tasks,
        init_heads: heads,
        train,
        dev,
        checkpoint_dir: dir.join(ck),
        key: "k".into(),
        device: Device::Cpu,
        engine: EngineOptions {
            engine,
            micro_batch: 0,
        },
    }
}

/// The candle path's model of `inp` with its top `layers` layers tuned (fresh heads).
fn model<'a>(inp: &FinetuneInput<'a>, layers: usize) -> Model<'a> {
    let cfg = FinetuneConfig {
        layers,
        ..FinetuneConfig::default()
    };
    Model {
        cfg: inp.config,
        tasks: inp.tasks,
        device: Device::Cpu,
        p: Params::new(inp, &cfg).unwrap(),
    }
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let n: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (d / n.max(1e-30)).sqrt()
}

/// Every parameter's gradient from the own engine against candle's autograd: within `tol`
/// relative error (f32 products: 1e-4).
fn grads_match(
    layers: usize,
    anchor: f64,
    relations: bool,
    micro: usize,
    products: Products,
    tol: f64,
) {
    let dir = weights(&format!("g{layers}{relations}{micro}"));
    let cfg_b = config();
    let ts = tasks(anchor, relations);
    let heads = vec![None, None];
    let train = examples(12, 3, 1);
    let inp = input(&dir, &cfg_b, &ts, &heads, &train, &train, Engine::Own, "ck");
    let model = model(&inp, layers);
    let ex: Vec<&Example> = train.iter().collect();
    let loss = candle_loss(&model, &ts[0], &ex, 0.1, &mut Rng::new(5)).unwrap();
    let store = loss.backward().unwrap();
    let own = OwnEngine::new(&model.p, shape(), &ts, products).unwrap();
    let got = own
        .loss_and_grads(&ex, 0, &ts[0], 0.1, &mut Rng::new(5), micro)
        .unwrap();
    let want = loss
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    // f32: 1e-5; bf16: a tenth of the gradients' tolerance
    assert!(
        (got.loss - want).abs() <= (tol / 10.0).max(1e-5) * want.abs().max(1.0),
        "loss {} vs {want}",
        got.loss
    );
    let mut checked = 0;
    let mut worst = 0f64;
    for (i, var) in model.p.vars.iter().enumerate() {
        let reference = store.get(var.as_tensor());
        match (reference, &got.g[i]) {
            (None, None) => {}
            (Some(r), Some(g)) => {
                let r = r.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let name = &model.p.names[i];
                if name.ends_with("key.bias") {
                    // exactly zero (softmax ignores a shift shared by a query's scores): both
                    // are rounding noise, far below the key weights' gradient
                    let kw = got.g[i - 1].as_ref().unwrap();
                    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    assert!(norm(g) <= 1e-4 * norm(kw) && norm(&r) <= 1e-4 * norm(kw));
                } else {
                    let e = rel(g, &r);
                    worst = worst.max(e);
                    assert!(e <= tol, "{name}: relative error {e}");
                }
                checked += 1;
            }
            (r, g) => panic!(
                "{}: candle has a gradient {}, own {}",
                model.p.names[i],
                r.is_some(),
                g.is_some()
            ),
        }
    }
    // every layer parameter and task a's four head parameters (task b's head has none)
    assert_eq!(checked, layers * PARTS.len() + 4);
    println!("{products:?} products, {layers} layers: worst relative error {worst:.2e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn evaluation_on_the_own_kernels_matches_candle() {
    if !crate::encode::kernels::available() {
        return;
    }
    let dir = weights("eval");
    let cfg_b = config();
    let ts = tasks(0.0, false);
    let heads = vec![None, None];
    // 150 dev texts of two tasks: more than one chunk of 64 for each
    let dev = examples(150, 9, 2);
    let inp = input(&dir, &cfg_b, &ts, &heads, &dev, &dev, Engine::Own, "ck");
    let model = model(&inp, DEPTH);
    let (acc_c, logits_c) = model.evaluate(&dev).unwrap();
    let mut own = OwnEngine::new(&model.p, shape(), &ts, Products::F32).unwrap();
    // the weights are read back in, as for the kept weights at the end of a run
    own.read_weights(&model.p).unwrap();
    let (acc_o, logits_o) = own.evaluate(&dev, &ts).unwrap();
    assert_eq!(acc_c, acc_o);
    for ((lc, yc), (lo, yo)) in logits_c.iter().zip(&logits_o) {
        assert_eq!(yc, yo);
        assert_eq!(lc.dims(), lo.dims());
        let a = lc.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = lo.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let e = rel(&b, &a);
        assert!(e <= 1e-5, "logits differ by {e}");
    }
    // a task with no dev text is an error, as in the candle path
    let only_a: Vec<Example> = examples(10, 9, 1);
    assert!(own.evaluate(&only_a, &ts).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gradients_of_one_layer_match_candle() {
    if !crate::encode::kernels::available() {
        return;
    }
    grads_match(1, 0.0, false, 0, Products::F32, 1e-4);
}

#[test]
fn gradients_of_the_full_depth_match_candle() {
    if !crate::encode::kernels::available() {
        return;
    }
    grads_match(DEPTH, 0.0, false, 0, Products::F32, 1e-4);
}

#[test]
fn bf16_products_give_the_gradients_within_bf16_rounding() {
    if !crate::encode::kernels::has_avx512_bf16() {
        println!("SKIP: this CPU has no AVX512-BF16, which the bf16 training products need");
        return;
    }
    // both operands of every product rounded to 8-bit mantissas (relative error 2^-9 each):
    // every gradient within 2% of candle's f32 one, over the full depth and with the anchor
    // and accumulation
    grads_match(DEPTH, 0.0, false, 0, Products::Bf16, 2e-2);
    grads_match(2, 0.5, true, 5, Products::Bf16, 2e-2);
}

#[test]
fn gradients_with_anchor_and_accumulation_match_candle() {
    if !crate::encode::kernels::available() {
        return;
    }
    // position anchor over micro-batches of 5 texts (gradient accumulation), relations anchor
    grads_match(2, 0.5, false, 5, Products::F32, 1e-4);
    grads_match(2, 0.5, true, 5, Products::F32, 1e-4);
}

fn run(engine: Engine, stop_after: usize, ck: &str, dir: &Path) -> Finetuned {
    let cfg_b = config();
    let ts = tasks(0.0, false);
    let heads = vec![None, None];
    let train = examples(80, 11, 2);
    let dev = examples(20, 12, 2);
    let inp = input(dir, &cfg_b, &ts, &heads, &train, &dev, engine, ck);
    let cfg = FinetuneConfig {
        layers: 2,
        epochs: 2,
        batch_size: 8,
        eval_every: 1,
        patience: 100,
        checkpoint_every: 3,
        stop_after,
        ..FinetuneConfig::default()
    };
    let mut out = finetune(&inp, &cfg, |_| {}).unwrap();
    if stop_after > 0 {
        let cfg = FinetuneConfig {
            stop_after: 0,
            ..cfg
        };
        out = finetune(&inp, &cfg, |_| {}).unwrap();
    }
    out
}

fn flat(f: &Finetuned) -> Vec<f32> {
    let mut v = Vec::new();
    for (_, t) in &f.overlay {
        v.extend(t.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
    for h in &f.heads {
        v.extend(h.w1.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
    v
}

#[test]
fn twenty_steps_follow_candle_and_resume_and_repeat_exactly() {
    if !crate::encode::kernels::available() {
        return;
    }
    let dir = weights("run");
    let own = run(Engine::Own, 0, "own", &dir);
    let candle = run(Engine::Candle, 0, "candle", &dir);
    let steps = own.report.history.len() - 1;
    assert_eq!(steps, 20, "one evaluation per step");
    for (a, b) in own.report.history[1..]
        .iter()
        .zip(&candle.report.history[1..])
    {
        assert!(
            (a.train_loss - b.train_loss).abs() <= 1e-3,
            "step {}: loss {} vs candle {}",
            a.step,
            a.train_loss,
            b.train_loss
        );
    }
    let first = own.report.history[1].train_loss;
    let last = own.report.history[steps].train_loss;
    assert!(last < first, "the loss falls: {first} -> {last}");
    // an interrupted and resumed run equals the uninterrupted one, and a rerun repeats it
    let resumed = run(Engine::Own, 7, "resumed", &dir);
    assert_eq!(flat(&resumed), flat(&own));
    let again = run(Engine::Own, 0, "again", &dir);
    assert_eq!(flat(&again), flat(&own));
    assert!(rel(&flat(&own), &flat(&candle)) < 1e-3);
    let _ = std::fs::remove_dir_all(&dir);
}
