use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt64Type};

fn task(label: &str, probs: &[(&str, f32)]) -> TaskResult {
    TaskResult {
        label: label.into(),
        confidence: probs.iter().map(|p| p.1).fold(0.0, f32::max),
        probs: probs.iter().map(|(l, p)| (l.to_string(), *p)).collect(),
        score: None,
        kind: None,
        labels: Vec::new(),
        alternatives: Vec::new(),
    }
}

/// Records that use every field, and leave every optional one out somewhere.
fn records() -> Vec<Scored> {
    let mut sent = task(
        "negative",
        &[("negative", 0.7), ("neutral", 0.2), ("positive", 0.1)],
    );
    sent.score = Some(-0.6);
    let mut pain = task(
        "quality",
        &[("quality", 0.55), ("delivery", 0.3), ("price", 0.15)],
    );
    pain.kind = Some("product".into());
    pain.labels = vec!["quality".into()];
    pain.alternatives = vec![("delivery".into(), 0.3), ("price".into(), 0.15)];
    let full = Scored {
        id: "s1".into(),
        text: "烧水壶生锈了，电话 [PHONE]".into(),
        lang: "zh".into(),
        time: Some("2026-09-01T18:00:26+08:00".into()),
        channel: Some("app_review".into()),
        rating: Some(1.5),
        tier: Some("gold".into()),
        product: Some("SmartKettle 2".into()),
        masked: vec!["PHONE".into()],
        tokens: Some(vec!["烧水壶".into(), "生锈".into()]),
        n_tokens: 17,
        text_hash: "0123456789abcdef".into(),
        model: "m1".into(),
        aspects: None,
        tasks: [
            ("sentiment".to_string(), sent),
            ("pain_point".to_string(), pain),
        ]
        .into_iter()
        .collect(),
    };
    let bare = Scored {
        id: "s2".into(),
        text: "fine".into(),
        lang: "en".into(),
        time: None,
        channel: None,
        rating: None,
        tier: None,
        product: None,
        masked: Vec::new(),
        tokens: None,
        n_tokens: 3,
        text_hash: "fedcba9876543210".into(),
        model: "m1".into(),
        aspects: None,
        // a model version with a label the other record's lacks; no pain point
        tasks: [(
            "sentiment".to_string(),
            task("mixed", &[("mixed", 0.6), ("positive", 0.4)]),
        )]
        .into_iter()
        .collect(),
    };
    vec![full, bare]
}

#[test]
fn a_batch_round_trips_every_field() {
    let recs = records();
    let batch = scored_batch(&recs).unwrap();
    assert_eq!(batch.num_rows(), 2);
    let sent = batch.column_by_name("sentiment").unwrap().as_struct();
    let probs = sent.column_by_name("probs").unwrap().as_struct();
    let names: Vec<&str> = probs.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["mixed", "negative", "neutral", "positive"]);
    let neg = probs
        .column_by_name("negative")
        .unwrap()
        .as_primitive::<Float32Type>();
    assert_eq!(neg.value(0), 0.7);
    assert!(neg.is_null(1), "a label the record's model lacks is null");
    assert!(batch.column_by_name("pain_point").unwrap().is_null(1));
    assert_eq!(records_from_batch(&batch).unwrap(), recs);
}

#[test]
fn a_file_round_trips_the_jsonl_records() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("scored.jsonl");
    let recs = records();
    let mut text = String::new();
    for r in &recs {
        text.push_str(&serde_json::to_string(r).unwrap());
        text.push('\n');
    }
    std::fs::write(&jsonl, text).unwrap();
    assert_eq!(
        update_run_parquet(&super::super::RunDir::new(dir.path()), false).unwrap(),
        None
    );
    assert_eq!(
        update_run_parquet(&super::super::RunDir::new(dir.path()), true).unwrap(),
        Some(2)
    );
    let back = read_scored_parquet(&dir.path().join(SCORED_PARQUET)).unwrap();
    assert_eq!(back, recs);
    // once there, it is kept up to date without being asked
    std::fs::write(&jsonl, serde_json::to_string(&recs[1]).unwrap() + "\n").unwrap();
    assert_eq!(
        update_run_parquet(&super::super::RunDir::new(dir.path()), false).unwrap(),
        Some(1)
    );
    let back = read_scored_parquet(&dir.path().join(SCORED_PARQUET)).unwrap();
    assert_eq!(back, recs[1..]);
}

#[test]
fn an_empty_run_writes_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scored.jsonl"), "").unwrap();
    assert_eq!(
        update_run_parquet(&super::super::RunDir::new(dir.path()), true).unwrap(),
        Some(0)
    );
    let back = read_scored_parquet(&dir.path().join(SCORED_PARQUET)).unwrap();
    assert!(back.is_empty());
}

#[test]
fn a_bad_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scored.jsonl"), "{\"id\": 1}\n").unwrap();
    let e = update_run_parquet(&super::super::RunDir::new(dir.path()), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("scored.jsonl: line 1:"), "{e}");
}

/// `batch` as a distributed job writes it: `n_tokens` as int64, and the `reject`, `topic`
/// and `topic_label` columns of the Python package.
fn spark_like(
    batch: &RecordBatch,
    reject: Vec<Option<&str>>,
    topic: Vec<Option<i64>>,
    label: Vec<Option<&str>>,
) -> RecordBatch {
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.name() == "n_tokens" {
            let u = c.as_primitive::<UInt64Type>();
            let v: arrow_array::Int64Array = u.iter().map(|v| v.map(|x| x as i64)).collect();
            cols.push(Arc::new(v));
            fields.push(Field::new("n_tokens", DataType::Int64, true));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    cols.push(Arc::new(StringArray::from(reject)));
    fields.push(Field::new("reject", DataType::Utf8, true));
    cols.push(Arc::new(arrow_array::Int64Array::from(topic)));
    fields.push(Field::new("topic", DataType::Int64, true));
    cols.push(Arc::new(StringArray::from(label)));
    fields.push(Field::new("topic_label", DataType::Utf8, true));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

fn write_part(path: &Path, batch: &RecordBatch) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

#[test]
fn a_folder_of_spark_parts_is_a_run_without_its_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let run = super::super::RunDir::new(dir.path());
    let parts = run.scored_parquet();
    std::fs::create_dir_all(&parts).unwrap();
    let recs = records();
    let mut third = recs[1].clone();
    third.id = "s3".into();
    let a = spark_like(
        &scored_batch(&recs).unwrap(),
        vec![None, Some("empty text after normalisation")],
        vec![Some(3), None],
        vec![Some("生锈 / 烧水壶"), None],
    );
    let b = spark_like(
        &scored_batch(std::slice::from_ref(&third)).unwrap(),
        vec![None],
        vec![Some(-1)],
        vec![Some("")],
    );
    write_part(&parts.join("part-00001-x.snappy.parquet"), &b);
    write_part(&parts.join("part-00000-x.snappy.parquet"), &a);
    std::fs::write(parts.join("_SUCCESS"), "").unwrap();
    std::fs::write(parts.join(".part-00000-x.snappy.parquet.crc"), "junk").unwrap();
    // no scored.jsonl: the folder is the run's records, in part order, the reject left out
    assert_eq!(run.scored_records(), parts);
    run.require_scored().unwrap();
    assert_eq!(run.read_scored().unwrap(), vec![recs[0].clone(), third]);
    let mut n = 0;
    run.each_scored(|_| n += 1).unwrap();
    assert_eq!(n, 2);
    let topics = run.read_assignments().unwrap();
    assert_eq!(topics.len(), 2);
    assert_eq!(topics["s1"].topic, 3);
    assert_eq!(topics["s1"].label, "生锈 / 烧水壶");
    assert_eq!(topics["s3"].topic, -1);
    // a folder with no part file is an error naming it
    let empty = dir.path().join("empty.parquet");
    std::fs::create_dir_all(&empty).unwrap();
    let e = read_scored_parquet(&empty).unwrap_err().to_string();
    assert!(
        e.contains("empty.parquet") && e.contains("no .parquet files"),
        "{e}"
    );
}
