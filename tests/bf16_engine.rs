//! The bf16 engine (`--engine bf16`) against the exact f32 one on the real model: its
//! embeddings stay within cosine 0.999, do not depend on the batch, and are fingerprinted
//! apart; on a CPU without AVX512-BF16 it refuses to load, with a reason.

mod common;

use vocmine::encode::kernels::has_avx512_bf16;
use vocmine::encode::{cosine, EncoderConfig, Engine};
use vocmine::model::ModelSpec;

/// The peer benchmark's first 200 texts where ../shared is present, else a handful here.
fn texts() -> Vec<String> {
    let Some(inputs) = common::shared("bench/results/e5_first200_inputs.jsonl") else {
        eprintln!("(the bf16 check runs on 7 texts of this file instead of the 200 peer texts)");
        return [
            "物流太慢了，等了一个星期",
            "shipping was slow",
            "質量太差了，退貨退款都很麻煩",
            "ok",
            "",
            "客服很好，耐心解答",
            "The app crashes every time I open my order history, please fix it.",
        ]
        .map(String::from)
        .to_vec();
    };
    common::read_jsonl(&inputs)
        .iter()
        .map(|v| v["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn bf16_embeddings_are_within_cosine_0999_of_f32() {
    let spec = ModelSpec::open(&common::model_dir()).unwrap();
    let load = |engine, batch_size, workers| {
        spec.load_encoder(EncoderConfig {
            engine,
            batch_size,
            workers,
            threads: 2,
            ..EncoderConfig::default()
        })
    };
    if !has_avx512_bf16() {
        eprintln!("SKIP: no AVX512-BF16 on this CPU; checking only that --engine bf16 refuses");
        let err = load(Engine::Bf16, 32, 2)
            .err()
            .expect("bf16 loaded without AVX512-BF16");
        let why = format!("{err:#}");
        assert!(why.contains("AVX512-BF16"), "{why}");
        return;
    }
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let f32_enc = load(Engine::Packed, 32, 2).unwrap();
    let bf16_enc = load(Engine::Bf16, 32, 2).unwrap();
    let (exact, lens) = f32_enc.encode(&refs).unwrap();
    let (bf, blens) = bf16_enc.encode(&refs).unwrap();
    assert_eq!(blens, lens);
    let cos: Vec<f32> = bf.iter().zip(&exact).map(|(b, e)| cosine(b, e)).collect();
    let min = cos.iter().cloned().fold(1.0f32, f32::min);
    let mean = cos.iter().sum::<f32>() / cos.len() as f32;
    eprintln!(
        "bf16 vs f32 over {} texts: cosine min {min}, mean {mean}",
        cos.len()
    );
    assert!(min >= 0.999, "bf16 worst cosine {min}");
    // rounded, not f32 under another name: the values move by bf16 rounding (the mean cosine
    // alone cannot tell: on AMD Zen 5 it rounds to 0.999999)
    let moved = bf
        .iter()
        .zip(&exact)
        .flat_map(|(b, e)| b.iter().zip(e).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max);
    assert!(
        moved > 1e-4,
        "bf16 embeddings equal the f32 ones: largest difference {moved}, mean cosine {mean}"
    );
    for e in &bf {
        let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    // each row from its own sequence: the same bits in batches of 1 on one worker
    let (one, _) = load(Engine::Bf16, 1, 1).unwrap().encode(&refs).unwrap();
    assert_eq!(one, bf);
    // caches and runs keyed by the fingerprint never mix bf16 and f32 embeddings
    assert_ne!(
        bf16_enc.fingerprint().unwrap(),
        f32_enc.fingerprint().unwrap()
    );
}
