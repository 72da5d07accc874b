//! The clustering on synthetic blobs: topics found and labelled, ids kept by updates, labels
//! that stay, old models read unchanged, a deterministic PCA that does not depend on its seed,
//! min_samples that grow with the comments clustered.
use super::*;

/// Three well-separated blobs in 16 dimensions plus scattered noise.
fn blobs(n_per: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..3 * n_per {
        let c = i % 3;
        let mut v: Vec<f32> = (0..16)
            .map(|_| (rng.next_f64() as f32 - 0.5) * 0.2)
            .collect();
        v[c] += 1.0;
        normalise(&mut v);
        x.push(v);
        y.push(c);
    }
    (x, y)
}

fn words_for(y: &[usize]) -> Vec<Vec<String>> {
    let names = [["物流", "快递"], ["质量", "做工"], ["refund", "money"]];
    y.iter()
        .map(|&c| {
            names[c]
                .iter()
                .map(|s| s.to_string())
                .chain(["the_common".to_string()])
                .collect()
        })
        .collect()
}

#[test]
fn finds_the_blobs_and_labels_them() {
    let (x, y) = blobs(60, 1);
    let ids: Vec<String> = (0..x.len()).map(|i| format!("c{i}")).collect();
    let cfg = TopicConfig {
        min_cluster_size: 10,
        ..TopicConfig::default()
    };
    let (model, labels) = fit(&x, &words_for(&y), &ids, &cfg, Subject::default()).unwrap();
    assert_eq!(model.topics.len(), 3, "{labels:?}");
    // Each blob maps to one topic.
    for c in 0..3 {
        let ts: std::collections::BTreeSet<i64> = y
            .iter()
            .zip(&labels)
            .filter(|(&yy, _)| yy == c)
            .map(|(_, &l)| l)
            .collect();
        assert_eq!(ts.len(), 1, "{ts:?}");
    }
    let t = &model.topics[labels[0] as usize];
    // The blob's own words lead; the word every comment has weighs much less.
    let top2: Vec<&str> = t.terms[..2].iter().map(|(w, _)| w.as_str()).collect();
    assert!(
        top2.contains(&"物流") && top2.contains(&"快递"),
        "{:?}",
        t.terms
    );
    let common = t.terms.iter().find(|(w, _)| w == "the_common").unwrap().1;
    assert!(common < t.terms[0].1 * 0.6, "{:?}", t.terms);
    assert!(t.label.starts_with("快递 / 物流") || t.label.starts_with("物流 / 快递"));
    assert_eq!(t.representatives.len(), 3);
    // Same input, same seed: the same model.
    let (again, labels2) = fit(&x, &words_for(&y), &ids, &cfg, Subject::default()).unwrap();
    assert_eq!(
        serde_json::to_string(&model).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
    assert_eq!(labels, labels2);
}

#[test]
fn update_keeps_ids_and_opens_new_topics_only_for_dense_new_groups() {
    let (x, y) = blobs(60, 2);
    let ids: Vec<String> = (0..x.len()).map(|i| format!("c{i}")).collect();
    let cfg = TopicConfig {
        min_cluster_size: 10,
        ..TopicConfig::default()
    };
    // First night: blobs 0 and 1 only.
    let first: Vec<usize> = (0..x.len()).filter(|&i| y[i] != 2).collect();
    let pick = |v: &[usize]| {
        (
            v.iter().map(|&i| x[i].clone()).collect::<Vec<_>>(),
            words_for(&v.iter().map(|&i| y[i]).collect::<Vec<_>>()),
            v.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>(),
        )
    };
    let (x1, w1, i1) = pick(&first);
    let (mut model, l1) = fit(&x1, &w1, &i1, &cfg, Subject::default()).unwrap();
    assert_eq!(model.topics.len(), 2);
    let old_ids: Vec<i64> = model.topics.iter().map(|t| t.id).collect();
    let previous: HashMap<String, i64> = i1.iter().cloned().zip(l1.iter().copied()).collect();
    // Second night: everything (blob 2 is new and dense).
    let all: Vec<usize> = (0..x.len()).collect();
    let (x2, w2, i2) = pick(&all);
    let l2 = update(&mut model, &x2, &w2, &i2, &previous).unwrap();
    assert_eq!(model.topics.len(), 3);
    for (id, t) in &previous {
        let pos = i2.iter().position(|x| x == id).unwrap();
        assert_eq!(l2[pos], *t, "old comment {id} moved");
    }
    let new_ids: Vec<i64> = model.topics.iter().map(|t| t.id).collect();
    assert_eq!(&new_ids[..2], &old_ids[..]);
    assert_eq!(new_ids[2], 2);
    // A new comment near blob 0 joins blob 0's topic.
    assert_eq!(assign_one(&model.topics, &x[0]), Some(l1[0]));

    // Earlier assignments to ids the first model does not know (a crashed run's) are not
    // kept: blob 2 gets a fresh topic at next_id, and only its own comments are in it.
    let (mut model1, _) = fit(&x1, &w1, &i1, &cfg, Subject::default()).unwrap();
    let mut stale = previous.clone();
    stale.insert(ids[first[0]].clone(), model1.next_id);
    assert!(!known_ids(&model1).contains(&model1.next_id));
    let l3 = update(&mut model1, &x2, &w2, &i2, &stale).unwrap();
    let pos = i2.iter().position(|x| *x == ids[first[0]]).unwrap();
    assert_eq!(
        l3[pos], l1[0],
        "the stale assignment was replaced by its real topic"
    );
    let fresh = model1.topics[2].id;
    for id in previous.keys() {
        let p = i2.iter().position(|x| x == id).unwrap();
        assert_ne!(
            l3[p], fresh,
            "{id}, a first-night comment, is in the new topic"
        );
    }
}

#[test]
fn a_label_stays_while_its_words_still_lead_and_old_models_load_unchanged() {
    let terms =
        |ws: &[&str]| -> Vec<(String, f32)> { ws.iter().map(|w| (w.to_string(), 1.0)).collect() };
    let t = terms(&["屏幕", "电池", "系统", "驱动"]);
    assert!(label_still_fits("电池 / 屏幕 / 键盘", &t));
    assert!(!label_still_fits("键盘 / 鼠标 / 屏幕", &t));
    assert!(label_still_fits("系统", &t));
    assert!(!label_still_fits("", &t));
    // A model written before subjects, slack and themes: read with none of them, so its
    // topics assign exactly as they did.
    let old = r#"{"version":1,"config":{"min_cluster_size":0,"min_samples":0,"max_sample":10000,"max_share":0.25,"dims":20,"radius_quantile":1.0,"seed":42,"top_terms":8},"next_id":1,"topics":[{"id":0,"label":"a","terms":[],"size":1,"representatives":[],"centroid":[1.0,0.0],"radius":0.9}]}"#;
    let m: TopicModel = serde_json::from_str(old).unwrap();
    assert!(m.subject.is_identity() && m.themes.is_empty());
    assert_eq!(m.config.radius_slack, 0.0);
    assert_eq!(m.config.dims, 20);
    assert_eq!(m.assign(&[0.95, 0.31]), Some(0));
    assert_eq!(m.assign(&[0.8, 0.6]), None);
    assert!(!serde_json::to_string(&m).unwrap().contains("subject"));
}

#[test]
fn pca_is_deterministic_and_orders_by_variance() {
    let (x, _) = blobs(30, 3);
    let a = pca(&x, 4, 9);
    let b = pca(&x, 4, 9);
    assert_eq!(a, b);
    let var = |j: usize| a.iter().map(|r| r[j] * r[j]).sum::<f32>();
    assert!(var(0) >= var(1) && var(1) >= var(2) && var(2) >= var(3));
}

#[test]
fn pca_components_do_not_depend_on_the_seed() {
    // Three blobs: two directions with most of the variance, well apart from the rest.
    let (x, _) = blobs(40, 5);
    let a = pca(&x, 2, 9);
    let b = pca(&x, 2, 12345);
    for (ra, rb) in a.iter().zip(&b) {
        for (va, vb) in ra.iter().zip(rb) {
            assert!((va - vb).abs() < 1e-4, "{ra:?} vs {rb:?}");
        }
    }
}

#[test]
fn min_samples_grow_with_the_comments_clustered() {
    let ms: Vec<usize> = [10, 30, 300, 399, 400, 2400, 6000, 1_000_000]
        .into_iter()
        .map(auto_min_samples)
        .collect();
    assert_eq!(ms, [3, 3, 3, 3, 5, 5, 5, 5]);
    // An explicit setting wins.
    let cfg = TopicConfig {
        min_samples: 7,
        ..TopicConfig::default()
    };
    assert_eq!(auto_sizes(300, &cfg), (10, 7));
    assert_eq!(auto_sizes(300, &TopicConfig::default()), (10, 3));
    assert_eq!(auto_sizes(6000, &TopicConfig::default()), (30, 5));
}
