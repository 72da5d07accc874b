use super::data::{gold_tags, read_aspect_set, Example, GoldAspect};
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
    let found = decode(&one_hot(&[0, 0, 1, 0, 3, 0]), &sp, text);
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].from, found[0].to, found[0].opinion),
        (2, 4, false)
    );
    assert_eq!((found[1].from, found[1].to, found[1].opinion), (4, 5, true));
    assert!((found[0].prob - 0.8).abs() < 1e-6);
    // an I- without B- opens a span; an I-OP after an aspect does not extend it
    let found = decode(&one_hot(&[0, 2, 2, 2, 4, 0]), &sp, text);
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].from, found[0].to, found[0].opinion),
        (1, 4, false)
    );
    assert_eq!((found[1].from, found[1].to, found[1].opinion), (4, 5, true));
    // an opinion inside a word the aspect is widened over is dropped, not split off
    let found = decode(&one_hot(&[0, 2, 2, 4, 0, 0]), &sp, text);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].from, found[0].to, found[0].opinion),
        (1, 4, false)
    );
}

#[test]
fn chinese_tokens_are_not_joined() {
    let text = "电池不耐用";
    let sp = spans(&[(0, 1), (1, 2), (2, 5)]);
    let found = decode(&one_hot(&[0, 1, 0, 3, 0]), &sp, text);
    assert_eq!((found[0].from, found[0].to), (1, 2));
    assert_eq!((found[1].from, found[1].to), (3, 4));
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
    let s = span_features(&states, h, &valid, 1, 2);
    assert_eq!(&s[..2], &[2.0, 2.0]); // the span
    assert_eq!(&s[2..4], &[4.0, 4.0]); // the only other text token
    assert_eq!(&s[4..], &[3.0, 3.0]); // mean of the text tokens
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
