//! Parquet in and out through the real binary: the sample corpus as a Parquet file scores as
//! the CSV does, and `--output-format parquet` writes records equal to scored.jsonl.

mod common;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use std::path::Path;
use std::sync::Arc;
use vocmine::record::Scored;

/// The sample CSV as a Parquet file (rating as int64, the rest as strings), plus one row
/// whose text is null.
fn sample_as_parquet(csv_path: &Path, out: &Path) -> usize {
    let mut rdr = csv::Reader::from_path(csv_path).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let mut cols: Vec<(String, ArrayRef)> = Vec::new();
    for (c, name) in header.iter().enumerate() {
        let cells = rows.iter().map(|r| r[c].to_string());
        let col: ArrayRef = if name == "rating" {
            let mut v: Vec<Option<i64>> = cells.map(|s| s.parse().ok()).collect();
            v.push(Some(3));
            Arc::new(Int64Array::from(v))
        } else {
            let mut v: Vec<Option<String>> = cells.map(|s| (!s.is_empty()).then_some(s)).collect();
            v.push(match name.as_str() {
                "id" => Some("null-text".into()),
                _ => None,
            });
            Arc::new(StringArray::from(v))
        };
        cols.push((name.clone(), col));
    }
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let f = std::fs::File::create(out).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    rows.len()
}

fn scored(p: &Path) -> Vec<Scored> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_sample_as_parquet_scores_as_the_csv_and_writes_parquet_equal_to_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = common::root().join("corpora/sample/comments.csv");
    let pq = dir.path().join("comments.parquet");
    let n = sample_as_parquet(&csv_path, &pq);
    let (w_csv, w_pq) = (dir.path().join("W_csv"), dir.path().join("W_pq"));
    let out = common::vocmine_in(
        dir.path(),
        &[
            "score",
            csv_path.to_str().unwrap(),
            "--out",
            w_csv.to_str().unwrap(),
            "--no-index",
        ],
    );
    assert!(!w_csv.join("scored.parquet").exists(), "{out}");
    let out = common::vocmine_in(
        dir.path(),
        &[
            "score",
            pq.to_str().unwrap(),
            "--out",
            w_pq.to_str().unwrap(),
            "--no-index",
            "--output-format",
            "parquet",
        ],
    );
    assert!(
        out.contains(&format!("scored {n} of {} records (1 rejected", n + 1)),
        "{out}"
    );
    assert!(out.contains(&format!("wrote {n} comments to")), "{out}");
    let from_csv = scored(&w_csv.join("scored.jsonl"));
    let from_pq = scored(&w_pq.join("scored.jsonl"));
    assert_eq!(from_csv.len(), n);
    assert_eq!(from_pq, from_csv, "Parquet input scores as the CSV does");
    let back =
        vocmine::workspace::parquet::read_scored_parquet(&w_pq.join("scored.parquet")).unwrap();
    assert_eq!(
        back, from_pq,
        "scored.parquet holds the scored.jsonl records"
    );
    let rejects = common::read_jsonl(&w_pq.join("rejects.jsonl"));
    assert_eq!(rejects.len(), 1);
    let r = &rejects[0];
    assert_eq!(r["id"], "null-text");
    assert_eq!(r["line"], n as u64 + 1, "the row number");
    assert_eq!(r["field"], "text");
    assert!(
        r["file"].as_str().unwrap().ends_with("comments.parquet"),
        "{r}"
    );
    assert_eq!(r["reason"], "text is null");
}
