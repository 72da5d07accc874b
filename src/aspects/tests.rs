use super::data::{gold_tags, read_aspect_set, Example, GoldAspect};
use super::decode::{decode, greedy_tags, viterbi_tags, well_formed};
use super::*;

fn spans(v: &[(usize, usize)]) -> TokenSpans {
    // a special token first and last, as the tokenizer gives them
    let mut s: TokenSpans = vec![None];
    s.extend(v.iter().map(|&x| Some(x)));
    s.push(None);
    s
}

fn one_hot(tags: &[usize]) -> Vec<Vec<f32>> {
    tags.iter()
        .map(|&t| {
            let mut p = vec![0.05; 5];
            p[t] = 0.8;
            p
        })
        .collect()
}

#[test]
fn decode_reads_bio_and_widens_to_words() {
    // "the battery dies": tokens "the", "bat", "tery", "dies"
    let text = "the battery dies";
    let sp = spans(&[(0, 3), (4, 7), (7, 11), (12, 16)]);
    // tagger marks only "bat" as B-ASP and "dies" as B-OP
    let found = decode(&one_hot(&[0, 0, 1, 0, 3, 0]), &sp, text, Decoding::Greedy);
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].from, found[0].to, found[0].opinion),
        (2, 4, false)
    );
    assert_eq!((found[1].from, found[1].to, found[1].opinion), (4, 5, true));
    assert!((found[0].prob - 0.8).abs() < 1e-6);
    // an I- without B- opens a span; an I-OP after an aspect does not extend it
    let found = decode(&one_hot(&[0, 2, 2, 2, 4, 0]), &sp, text, Decoding::Greedy);
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].from, found[0].to, found[0].opinion),
        (1, 4, false)
    );
    assert_eq!((found[1].from, found[1].to, found[1].opinion), (4, 5, true));
    // an opinion inside a word the aspect is widened over is dropped, not split off
    let found = decode(&one_hot(&[0, 2, 2, 4, 0, 0]), &sp, text, Decoding::Greedy);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].from, found[0].to, found[0].opinion),
        (1, 4, false)
    );
}

#[test]
fn viterbi_makes_ill_formed_greedy_tags_well_formed() {
    // special, 5 text tokens, special; the argmaxes: I-ASP first, I-OP after an aspect,
    // I-ASP after O
    let probs: Vec<Vec<f32>> = vec![
        vec![0.9, 0.025, 0.025, 0.025, 0.025],
        vec![0.30, 0.25, 0.40, 0.03, 0.02],
        vec![0.10, 0.05, 0.30, 0.05, 0.50],
        vec![0.70, 0.10, 0.10, 0.05, 0.05],
        vec![0.35, 0.05, 0.50, 0.05, 0.05],
        vec![0.20, 0.30, 0.40, 0.05, 0.05],
        vec![0.1, 0.1, 0.6, 0.1, 0.1],
    ];
    let valid = [false, true, true, true, true, true, false];
    let greedy = greedy_tags(&probs, &valid);
    assert_eq!(greedy, vec![0, 2, 4, 0, 2, 2, 0]);
    assert!(!well_formed(&greedy));
    let best = viterbi_tags(&probs, &valid);
    assert!(well_formed(&best));
    // B-ASP I-ASP O O B-ASP: 0.25 * 0.30 * 0.70 * 0.35 * 0.30 = 0.0055, ahead of ending in O
    // (0.0037) and of greedy's B-ASP I-ASP at the end (0.25 * 0.30 * 0.70 * 0.05 * 0.40)
    assert_eq!(best, vec![0, 1, 2, 0, 0, 1, 0]);
    // greedy reads three spans (ASP, OP, ASP), Viterbi two aspects
    let text = "aa bb cc dd ee";
    let sp = spans(&[(0, 2), (3, 5), (6, 8), (9, 11), (12, 14)]);
    let found = decode(&probs, &sp, text, Decoding::Viterbi);
    let got: Vec<_> = found.iter().map(|s| (s.from, s.to, s.opinion)).collect();
    assert_eq!(got, vec![(1, 3, false), (5, 6, false)]);
    assert!((found[0].prob - (0.25 + 0.30) / 2.0).abs() < 1e-6);
    assert!((found[1].prob - 0.30).abs() < 1e-6);
    let found = decode(&probs, &sp, text, Decoding::Greedy);
    let got: Vec<_> = found.iter().map(|s| (s.from, s.to, s.opinion)).collect();
    assert_eq!(got, vec![(1, 2, false), (2, 3, true), (4, 6, false)]);
}

#[test]
fn viterbi_and_greedy_differ_on_a_hand_made_table() {
    // token 0 leans B-ASP, token 1 leans I-OP: greedy reads an aspect then an opinion;
    // the best well-formed sequence is one opinion B-OP I-OP (0.40 * 0.55 = 0.22 against
    // B-ASP I-ASP 0.45 * 0.30 = 0.135 and B-ASP O 0.45 * 0.05)
    let probs = vec![
        vec![0.10, 0.45, 0.00, 0.40, 0.05],
        vec![0.05, 0.05, 0.30, 0.05, 0.55],
    ];
    let valid = [true, true];
    assert_eq!(greedy_tags(&probs, &valid), vec![1, 4]);
    assert_eq!(viterbi_tags(&probs, &valid), vec![3, 4]);
    assert_eq!(Decoding::default().tags(&probs, &valid), vec![3, 4]);
    assert_eq!(Decoding::Greedy.tags(&probs, &valid), vec![1, 4]);
    // a non-text token between them ends the run: then each token decodes alone
    let probs3 = vec![
        probs[0].clone(),
        vec![1.0, 0.0, 0.0, 0.0, 0.0],
        probs[1].clone(),
    ];
    assert_eq!(viterbi_tags(&probs3, &[true, false, true]), vec![1, 0, 0]);
}

#[test]
fn viterbi_finds_the_best_well_formed_sequence() {
    // against brute force over all 5^n sequences, on seeded random tables
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 + 1e-3
    };
    for n in 1..=5usize {
        for _ in 0..40 {
            let probs: Vec<Vec<f32>> = (0..n)
                .map(|_| {
                    let r: Vec<f32> = (0..5).map(|_| next()).collect();
                    let z: f32 = r.iter().sum();
                    r.iter().map(|x| x / z).collect()
                })
                .collect();
            let score = |t: &[usize]| -> f64 {
                t.iter()
                    .zip(&probs)
                    .map(|(&k, p)| f64::from(p[k]).ln())
                    .sum()
            };
            let mut best: Option<(f64, Vec<usize>)> = None;
            for code in 0..5usize.pow(n as u32) {
                let t: Vec<usize> = (0..n).map(|i| code / 5usize.pow(i as u32) % 5).collect();
                if well_formed(&t) && best.as_ref().is_none_or(|b| score(&t) > b.0 + 1e-12) {
                    best = Some((score(&t), t));
                }
            }
            let Some((s, _)) = best else {
                panic!("no well-formed sequence of {n} tokens");
            };
            let got = viterbi_tags(&probs, &vec![true; n]);
            assert!(well_formed(&got), "{got:?}");
            assert!((score(&got) - s).abs() < 1e-9, "{probs:?}: {got:?}");
        }
    }
}

#[test]
fn chinese_tokens_are_not_joined() {
    let text = "电池不耐用";
    let sp = spans(&[(0, 1), (1, 2), (2, 5)]);
    for d in [Decoding::Greedy, Decoding::Viterbi] {
        let found = decode(&one_hot(&[0, 1, 0, 3, 0]), &sp, text, d);
        assert_eq!(found.len(), 2, "{d:?}");
        assert_eq!((found[0].from, found[0].to), (1, 2));
        assert_eq!((found[1].from, found[1].to), (3, 4));
    }
}

#[test]
fn opinions_pair_with_the_nearest_aspect() {
    let aspects = [(0, 2), (6, 8)];
    let opinions = [(3, 5), (9, 12)];
    assert_eq!(pair_opinions(&aspects, &opinions), vec![Some(0), Some(1)]);
    assert_eq!(pair_opinions(&aspects, &[(9, 12)]), vec![None, Some(0)]);
    assert_eq!(pair_opinions(&aspects, &[]), vec![None, None]);
}

#[test]
fn features_have_the_configured_widths_and_values() {
    let h = 2;
    let states = vec![1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 8.0, 8.0];
    let mut f = Vec::new();
    token_features(&states, h, 0, 1, &mut f);
    assert_eq!(f, vec![1.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
    let valid = [false, true, true, false];
    let s = span_features(&states, h, &valid, &[], PolarityFeatures::Mean, 1, 2);
    assert_eq!(&s[..2], &[2.0, 2.0]); // the span
    assert_eq!(&s[2..4], &[4.0, 4.0]); // the only other text token
    assert_eq!(&s[4..], &[3.0, 3.0]); // mean of the text tokens
}

#[test]
fn clause_features_stop_at_punctuation_and_contrast() {
    // "The screen is sharp but the battery dies fast": one token a word, plus [CLS] and [SEP]
    let text = "The screen is sharp but the battery dies fast";
    let mut words = Vec::new();
    let mut at = 0;
    for w in text.split(' ') {
        words.push((at, at + w.len()));
        at += w.len() + 1;
    }
    let sp = spans(&words);
    let breaks = clause_breaks(text, &sp);
    let want: Vec<bool> = (0..sp.len()).map(|i| i == 5).collect(); // "but"
    assert_eq!(breaks, want);
    let zh = "屏幕很清晰，电池但是不耐用";
    let sp_zh = spans(
        &(0..zh.chars().count())
            .map(|i| (i, i + 1))
            .collect::<Vec<_>>(),
    );
    let b = clause_breaks(zh, &sp_zh);
    let on: Vec<usize> = (0..b.len()).filter(|&i| b[i]).collect();
    assert_eq!(on, vec![6, 9, 10]); // "，", "但是" (token i covers char i - 1)

    // token i's state is i in both dims; the aspect "screen" is token 2
    let h = 2;
    let states: Vec<f32> = (0..sp.len()).flat_map(|i| [i as f32, i as f32]).collect();
    let valid: Vec<bool> = sp.iter().map(Option::is_some).collect();
    let s = span_features(&states, h, &valid, &breaks, PolarityFeatures::Clause, 2, 3);
    assert_eq!(s.len(), 8);
    assert_eq!(&s[..2], &[2.0, 2.0]);
    // the clause: "The", "is", "sharp" (tokens 1, 3, 4), not "the battery dies fast"
    assert_eq!(&s[6..], &[8.0 / 3.0, 8.0 / 3.0]);
    // the first three parts are the `mean` features
    let m = span_features(&states, h, &valid, &[], PolarityFeatures::Mean, 2, 3);
    assert_eq!(&s[..6], &m[..]);
}

#[test]
fn gold_tags_mark_aspects_before_opinions() {
    let ex = Example {
        id: "1".into(),
        text: "the battery dies".into(),
        aspects: vec![GoldAspect {
            term: "battery".into(),
            polarity: "negative".into(),
            span: Some((4, 11)),
            opinion: Some("dies".into()),
            opinion_span: Some((12, 16)),
        }],
        source: 0,
    };
    let sp = spans(&[(0, 3), (3, 7), (7, 11), (11, 16)]);
    assert_eq!(gold_tags(&ex, &sp), vec![0, 0, 1, 2, 3, 0]);
    assert_eq!(token_range(&sp, 4, 11), Some((2, 4)));
    assert_eq!(token_range(&sp, 20, 22), None);
}

#[test]
fn reading_places_words_and_names_bad_lines() {
    let dir = std::env::temp_dir().join(format!("vocmine-aspects-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("a.jsonl");
    std::fs::write(
        &p,
        concat!(
            r#"{"text": "动力很强，油耗高", "aspects": [{"aspect": "油耗", "polarity": "negative", "opinion": "高"}, {"aspect": "价格", "polarity": "neutral"}]}"#,
            "\n",
            r#"{"text": "The bread is good", "aspects": [{"term": "bread", "polarity": "positive", "from": 4, "to": 9}]}"#,
            "\n"
        ),
    )
    .unwrap();
    let set = read_aspect_set(&p).unwrap();
    assert_eq!(set.examples.len(), 2);
    assert_eq!((set.aspects, set.searched, set.placed), (3, 2, 1));
    assert_eq!(set.opinions, (1, 1));
    let a = &set.examples[0].aspects;
    assert_eq!(a[0].span, Some((5, 7)));
    assert_eq!(a[0].opinion_span, Some((7, 8)));
    assert_eq!(a[1].span, None);
    assert!(!set.examples[0].complete());
    assert!(set.examples[1].complete());
    // a second file's sentences know where they came from
    let mut both = AspectSet::default();
    both.extend(set.clone());
    both.extend(set);
    let src: Vec<usize> = both.examples.iter().map(|e| e.source).collect();
    assert_eq!(src, vec![0, 0, 1, 1]);

    std::fs::write(
        &p,
        "\n{\"text\": \"The bread\", \"aspects\": [{\"term\": \"bread\", \"polarity\": \"positive\", \"from\": 3, \"to\": 9}]}\n",
    )
    .unwrap();
    let set = read_aspect_set(&p).unwrap();
    assert_eq!(set.examples[0].aspects[0].span, Some((4, 9)));
    assert_eq!(set.corrected, 1);
    std::fs::write(
        &p,
        "\n{\"text\": \"The bread\", \"aspects\": [{\"term\": \"wine\", \"polarity\": \"positive\", \"from\": 3, \"to\": 7}]}\n",
    )
    .unwrap();
    let e = read_aspect_set(&p).unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("aspects[0].from"), "{e}");
    std::fs::write(&p, "{\"text\": \"x\", \"aspects\": [{\"term\": \"x\"}]}\n").unwrap();
    let e = read_aspect_set(&p).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("polarity"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tensor(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn mlp(s: f32) -> Mlp {
    Mlp {
        w1: tensor((0..6).map(|i| (i as f32 - 2.5) * s).collect(), &[3, 2]),
        b1: tensor(vec![0.1 * s, 0.0, -0.2], &[3]),
        w2: Some(tensor(
            (0..9).map(|i| i as f32 * s - 2.0).collect(),
            &[3, 3],
        )),
        b2: Some(tensor(vec![s, 0.0, -s], &[3])),
    }
}

#[test]
fn merged_polarity_heads_average_their_logits() {
    let (a, b) = (mlp(1.0), mlp(-0.5));
    let m = super::train::merge(&[&a, &b]).unwrap();
    assert_eq!(m.w1.dims(), [6, 2]);
    let x = tensor(vec![0.3, -1.2, 2.0, 0.7], &[2, 2]);
    let want: Vec<Vec<f32>> = ((a.forward(&x).unwrap() + b.forward(&x).unwrap()).unwrap() / 2.0)
        .unwrap()
        .to_vec2()
        .unwrap();
    let got: Vec<Vec<f32>> = m.forward(&x).unwrap().to_vec2().unwrap();
    for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
}

#[test]
fn attention_heads_save_load_and_score() {
    let h = 2;
    let config = AspectConfig {
        hidden_size: h,
        window: 0,
        tag_hidden: 3,
        polarity_hidden: 3,
        polarity_features: PolarityFeatures::Mean,
        polarity_attention: 2,
        tags: TAGS.iter().map(|s| s.to_string()).collect(),
        polarities: POLARITIES.iter().map(|s| s.to_string()).collect(),
        temperature: 1.0,
        encoder: String::new(),
        training: serde_json::Value::Null,
    };
    let pol = Mlp {
        w1: tensor(
            (0..24).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect(),
            &[3, 8],
        ),
        ..mlp(1.0)
    };
    let tag = Mlp {
        w1: tensor((0..6).map(|i| i as f32 * 0.1).collect(), &[3, 2]),
        w2: Some(tensor(vec![0.1; 15], &[5, 3])),
        b2: Some(tensor(vec![0.0; 5], &[5])),
        ..mlp(1.0)
    };
    let att = super::attention::Attention {
        wq: tensor(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]),
        wk: tensor(vec![0.5, 0.5, -0.5, 0.5], &[2, 2]),
        dist: tensor((0..8).map(|i| -0.1 * i as f32).collect(), &[8]),
    };
    let model = AspectModel {
        categories: None,
        config,
        decoding: Decoding::default(),
        tag,
        pol,
        att: Some(att),
    };
    let text = "ab cd ef";
    let sp = spans(&[(0, 2), (3, 5), (6, 8)]);
    let states: Vec<f32> = (0..sp.len() * h).map(|i| (i as f32 * 0.7).sin()).collect();
    let p = model
        .polarity_probs(&states, text, &sp, &[(1, 2), (2, 4)])
        .unwrap();
    assert_eq!(p.len(), 2);
    assert!(p.iter().all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5));
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("asp");
    model.save(&stem).unwrap();
    let back = AspectModel::load(&stem).unwrap();
    assert_eq!(back.config.polarity_input(), 4 * h);
    assert_eq!(
        back.polarity_probs(&states, text, &sp, &[(1, 2), (2, 4)])
            .unwrap(),
        p
    );
}
