//! The real encoder against the reference embeddings of the peer benchmark.

mod common;

use std::io::BufRead;
use vocmine::encode::{cosine, read_npy_f32, EncoderConfig};
use vocmine::model::ModelSpec;

#[test]
fn embeddings_match_the_reference_at_cosine_0999() {
    let (Some(inputs), Some(npy)) = (
        common::shared("bench/results/e5_first200_inputs.jsonl"),
        common::shared("bench/results/e5_first200_embeddings.npy"),
    ) else {
        return;
    };
    let (shape, reference) = read_npy_f32(&npy).unwrap();
    assert_eq!(shape, vec![200, 384]);
    let mut texts = Vec::new();
    let mut ids = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(&inputs).unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        texts.push(v["text"].as_str().unwrap().to_string());
        ids.push(
            v["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect::<Vec<u32>>(),
        );
    }
    assert_eq!(texts.len(), 200);
    // the reference is the base encoder's (the shipped bundle merges fine-tuned layers over it)
    let spec = ModelSpec::open(&common::model_dir().join("multilingual-e5-small-zh-en")).unwrap();
    let enc = spec.load_encoder(EncoderConfig::default()).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // tokenisation identical to the peer's
    assert_eq!(enc.tokenize(&refs).unwrap(), ids);
    let (embs, lens) = enc.encode(&refs).unwrap();
    assert_eq!(lens, ids.iter().map(Vec::len).collect::<Vec<_>>());
    let mut worst = 1.0f32;
    for (i, e) in embs.iter().enumerate() {
        assert_eq!(e.len(), 384);
        let c = cosine(e, &reference[i * 384..(i + 1) * 384]);
        assert!(c >= 0.999, "text {i}: cosine {c}");
        worst = worst.min(c);
    }
    eprintln!("worst cosine over 200 texts: {worst}");

    // the int8 engine: close to the f32 reference, yet its own numbers (quantization noise);
    // its fingerprint differs, so no cache mixes its embeddings with f32 ones
    let int8 = spec
        .load_encoder(EncoderConfig {
            engine: vocmine::encode::Engine::Int8,
            ..EncoderConfig::default()
        })
        .unwrap();
    let (q, qlens) = int8.encode(&refs).unwrap();
    assert_eq!(qlens, lens);
    let cos: Vec<f32> = q
        .iter()
        .enumerate()
        .map(|(i, e)| cosine(e, &reference[i * 384..(i + 1) * 384]))
        .collect();
    let (min, mean) = (
        cos.iter().cloned().fold(1.0f32, f32::min),
        cos.iter().sum::<f32>() / cos.len() as f32,
    );
    eprintln!("int8: cosine to the reference min {min}, mean {mean}");
    assert!(min >= 0.999, "int8 worst cosine {min}");
    assert!(mean >= 0.9998, "int8 mean cosine {mean}");
    assert!(
        mean < 0.99999,
        "int8 embeddings equal the f32 ones: not quantized?"
    );
    assert_ne!(int8.fingerprint().unwrap(), enc.fingerprint().unwrap());
}

#[test]
fn batching_and_order_do_not_change_embeddings() {
    let spec = ModelSpec::open(&common::model_dir()).unwrap();
    let texts = [
        "物流太慢了，等了一个星期",
        "shipping was slow",
        "客服很好，耐心解答",
        "The customer service agent was helpful and patient with my refund question.",
        "質量太差了",
        "👍",
    ];
    let one = spec
        .load_encoder(EncoderConfig {
            batch_size: 1,
            workers: 1,
            ..EncoderConfig::default()
        })
        .unwrap();
    let many = spec
        .load_encoder(EncoderConfig {
            batch_size: 4,
            workers: 2,
            threads: 2,
            ..EncoderConfig::default()
        })
        .unwrap();
    let (a, _) = one.encode(&texts).unwrap();
    let (b, _) = many.encode(&texts).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!(cosine(x, y) > 0.99999, "{}", cosine(x, y));
        let norm: f32 = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    // a lone comment (what `serve` posts one at a time) runs with every thread in its matmuls
    // when there are fewer batches than workers: the same bits as on one thread
    let lone = ["物流太慢了，等了一个星期，客服也不回消息"];
    let (l1, _) = one.encode(&lone).unwrap();
    let (l2, _) = many.encode(&lone).unwrap();
    assert_eq!(l1, l2);
    // the multilingual encoder puts translations close: zh "logistics too slow" is nearer to
    // "shipping was slow" than to "customer service was helpful"
    assert!(cosine(&a[0], &a[1]) > cosine(&a[0], &a[3]));
    assert!(cosine(&a[2], &a[3]) > cosine(&a[2], &a[1]));

    // int8: each row quantized on its own, exact integer sums: the same bits in any batch
    if vocmine::encode::kernels::available() {
        let int8 = |batch_size, workers| {
            spec.load_encoder(EncoderConfig {
                batch_size,
                workers,
                threads: 2,
                engine: vocmine::encode::Engine::Int8,
                ..EncoderConfig::default()
            })
            .unwrap()
        };
        let (qa, _) = int8(1, 1).encode(&texts).unwrap();
        let (qb, _) = int8(4, 2).encode(&texts).unwrap();
        assert_eq!(qa, qb);
        for (q, f) in qa.iter().zip(&a) {
            assert!(cosine(q, f) > 0.999, "int8 vs f32: {}", cosine(q, f));
        }
    }
}

#[test]
fn packed_engine_agrees_with_candle_bert() {
    use vocmine::encode::{kernels, Engine};
    if !kernels::available() {
        eprintln!("SKIP: the packed engine needs AVX2 + FMA");
        return;
    }
    let spec = ModelSpec::open(&common::model_dir()).unwrap();
    let long = "物流太慢了，客服也不回复，".repeat(30); // truncated to 128 tokens
    let texts = [
        "物流太慢了，等了一个星期",
        "shipping was slow",
        "質量太差了，退貨退款都很麻煩",
        "ok",
        "",
        long.as_str(),
        "The app crashes every time I open my order history, please fix it.",
    ];
    let load = |engine, batch_size, workers| {
        spec.load_encoder(EncoderConfig {
            engine,
            batch_size,
            workers,
            threads: 2,
            ..EncoderConfig::default()
        })
        .unwrap()
    };
    let (candle, lens) = load(Engine::Candle, 32, 1).encode(&texts).unwrap();
    assert_eq!(lens[5], 128);
    // packed, one batch with intra-op threads, and batches of 3 on two workers
    for (batch, workers) in [(32, 1), (3, 2)] {
        let (packed, plens) = load(Engine::Packed, batch, workers).encode(&texts).unwrap();
        assert_eq!(plens, lens);
        for (i, (p, c)) in packed.iter().zip(&candle).enumerate() {
            let cos = cosine(p, c);
            assert!(cos > 0.99999, "text {i}: cosine {cos}");
        }
    }
}

/// Short comments in Chinese (simplified and traditional) and English.
const MIXED: [&str; 5] = [
    "物流太慢了，等了一个星期",
    "shipping was slow",
    "質量太差了，退貨退款都很麻煩",
    "ok",
    "The app crashes every time I open my order history, please fix it.",
];

#[test]
fn states_and_embeddings_in_one_pass_match_the_two_calls() {
    use vocmine::encode::{kernels, Engine};
    if !kernels::available() {
        eprintln!("SKIP: hidden states need the packed engine (AVX2 + FMA)");
        return;
    }
    let spec = ModelSpec::open(&common::model_dir()).unwrap();
    let enc = spec
        .load_encoder(EncoderConfig {
            engine: Engine::Packed,
            batch_size: 3,
            workers: 2,
            threads: 2,
            ..EncoderConfig::default()
        })
        .unwrap();
    let texts = MIXED;
    let toks = enc.tokenize(&texts).unwrap();
    for layers in [0, 8, 12] {
        let (states, embs) = enc.hidden_states_and_embeddings(&toks, layers).unwrap();
        assert_eq!(
            states,
            enc.hidden_states(&toks, layers).unwrap(),
            "layers {layers}"
        );
        assert_eq!(embs, enc.encode_ids(&toks).unwrap(), "layers {layers}");
        for (s, t) in states.iter().zip(&toks) {
            assert_eq!(s.len(), t.len() * enc.dim());
        }
    }
}

#[test]
fn a_few_rows_on_a_spinning_team_give_the_bits_of_one_thread() {
    use vocmine::encode::{kernels, Engine};
    if !kernels::available() {
        eprintln!("SKIP: the packed engine needs AVX2 + FMA + F16C");
        return;
    }
    // one comment and batches of 4 (fewer than 512 token rows): the products split by
    // columns on a team of 2 or 3 threads that spin for the pass (and the attention of a
    // batch's sequences dealt over them); the embeddings are those of one thread, bit for bit
    let spec = ModelSpec::open(&common::model_dir()).unwrap();
    let mut texts = MIXED.to_vec();
    texts.push("客服态度很好，问题当天就解决了 but the refund took two weeks");
    let load = |batch_size, threads| {
        spec.load_encoder(EncoderConfig {
            engine: Engine::Packed,
            batch_size,
            workers: 1,
            threads,
            ..EncoderConfig::default()
        })
        .unwrap()
    };
    let (want, _) = load(1, 1).encode(&texts).unwrap();
    for (batch, threads) in [(1, 2), (1, 3), (4, 2), (4, 3)] {
        let (got, _) = load(batch, threads).encode(&texts).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()),
                "text {i}, batch {batch}, {threads} threads: not the bits of one thread"
            );
        }
    }
}
