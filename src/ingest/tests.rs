//! Tests of the readers on real files.

use super::*;
use std::io::Write;

pub(super) fn read_all(path: &Path, cfg: &IngestConfig) -> Vec<Item> {
    Reader::open(path, cfg)
        .unwrap()
        .collect::<Result<Vec<_>>>()
        .unwrap()
}

#[test]
fn csv_with_bom_semicolons_and_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.csv");
    let mut f = File::create(&p).unwrap();
    f.write_all("\u{feff}ticket;body;stars\n".as_bytes())
        .unwrap();
    f.write_all("t1;物流太慢了;1\n".as_bytes()).unwrap();
    f.write_all(b"t2;bad \xff utf8;2\n").unwrap();
    f.write_all("t3;too;many;fields\n".as_bytes()).unwrap();
    f.write_all("t1;dup id;3\n".as_bytes()).unwrap();
    f.write_all("t5;nice;five\n".as_bytes()).unwrap();
    f.write_all(";no id here;4\n".as_bytes()).unwrap();
    drop(f);
    let cfg = IngestConfig {
        columns: ColumnMap {
            id: "ticket".into(),
            text: "body".into(),
            rating: "stars".into(),
            ..ColumnMap::default()
        },
        format: None,
        delimiter: Some(b';'),
        ..IngestConfig::default()
    };
    let items = read_all(&p, &cfg);
    assert_eq!(items.len(), 6);
    let Item::Comment(c) = &items[0] else {
        panic!()
    };
    assert_eq!(
        (c.id.as_str(), c.text.as_str(), c.rating),
        ("t1", "物流太慢了", Some(1.0))
    );
    assert_eq!(c.source.line, 2);
    let reasons: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::Reject(r) => Some((r.line, r.field.clone(), r.reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!((reasons[0].0, reasons[0].1.as_deref()), (3, Some("body")));
    assert!(
        reasons[0].2.starts_with(
            "invalid UTF-8 (if the file is not UTF-8, name its encoding with --encoding"
        ),
        "{}",
        reasons[0].2
    );
    assert_eq!(reasons[1].0, 4);
    assert!(reasons[1].2.contains("expected 3 fields"));
    assert_eq!(reasons[2].2, "duplicate id (first seen at line 2)");
    assert_eq!(reasons[3].1, Some("rating".into()));
    let Item::Comment(c) = &items[5] else {
        panic!()
    };
    assert_eq!(c.id, content_id("no id here"));
}

#[test]
fn jsonl_with_errors_and_generated_ids() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.jsonl");
    let mut f = File::create(&p).unwrap();
    writeln!(f, r#"{{"id": 7, "text": "hello", "channel": "email"}}"#).unwrap();
    writeln!(f, r#"{{"text": "same"}}"#).unwrap();
    writeln!(f).unwrap();
    writeln!(f, r#"{{"text": "same"}}"#).unwrap();
    writeln!(f, r#"{{"id": "x", "text": 3}}"#).unwrap();
    writeln!(f, r#"{{"id": "y", "text": "#).unwrap();
    f.write_all(b"{\"id\": \"z\", \"text\": \"\xfe\"}\n")
        .unwrap();
    drop(f);
    let items = read_all(&p, &IngestConfig::default());
    assert_eq!(items.len(), 6);
    let ids: Vec<String> = items
        .iter()
        .map(|i| match i {
            Item::Comment(c) => c.id.clone(),
            Item::Reject(r) => format!("R{}:{}", r.line, r.id.clone().unwrap_or_default()),
        })
        .collect();
    let h = content_id("same");
    assert_eq!(
        ids,
        vec![
            "7".to_string(),
            h.clone(),
            format!("{h}-2"),
            "R5:x".into(),
            "R6:".into(),
            "R7:z".into()
        ]
    );
}

#[test]
fn missing_text_column_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.csv");
    std::fs::write(&p, "id,body\n1,x\n").unwrap();
    let err = Reader::open(&p, &IngestConfig::default()).err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("no text column") && msg.contains("--text-col"),
        "{msg}"
    );
}

fn items_of(path: &Path) -> Vec<Item> {
    read_all(path, &IngestConfig::default())
}

fn comment_ids(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Comment(c) => Some(c.id.clone()),
            Item::Reject(_) => None,
        })
        .collect()
}

pub(super) fn rejects(items: &[Item]) -> Vec<&Reject> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Reject(r) => Some(r),
            Item::Comment(_) => None,
        })
        .collect()
}

#[test]
fn an_unbalanced_quote_rejects_its_record_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.csv");
    std::fs::write(
        &p,
        "id,text\nr1,ok\nq1,\"open quote\nr2,物流太慢\nr3,退款没到\n",
    )
    .unwrap();
    let items = items_of(&p);
    assert_eq!(comment_ids(&items), ["r1", "r2", "r3"]);
    let Item::Comment(c) = &items[2] else {
        panic!()
    };
    assert_eq!((c.text.as_str(), c.source.line), ("物流太慢", 4));
    let r = rejects(&items);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].id.as_deref(), r[0].line, r[0].field.as_deref()),
        (Some("q1"), 3, Some("text"))
    );
    assert!(
        r[0].reason.starts_with("unbalanced quote"),
        "{}",
        r[0].reason
    );
    assert!(r[0].file.ends_with("q.csv"));

    // three columns, 1,000 rows, a stray quote at row 10: one reject, 999 comments
    let mut s = String::from("id,text,channel\n");
    for i in 0..1000 {
        if i == 9 {
            s += &format!("x{i},\"broken,app\n");
        } else {
            s += &format!("x{i},comment {i},app\n");
        }
    }
    std::fs::write(&p, s).unwrap();
    let items = items_of(&p);
    assert_eq!(items.len(), 1000);
    assert_eq!(comment_ids(&items).len(), 999);
    assert_eq!(rejects(&items)[0].line, 11);
}

#[test]
fn jsonl_with_a_bom_keeps_its_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bom.jsonl");
    std::fs::write(
        &p,
        "\u{feff}{\"id\": \"b1\", \"text\": \"first\"}\n{\"id\": \"b2\", \"text\": \"second\"}\n",
    )
    .unwrap();
    let items = items_of(&p);
    assert_eq!(comment_ids(&items), ["b1", "b2"]);
}

#[test]
fn gzip_files_are_read_as_their_inner_format() {
    use flate2::write::GzEncoder;
    let dir = tempfile::tempdir().unwrap();
    let gz = |name: &str, body: &str| {
        let p = dir.path().join(name);
        let mut e = GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::default());
        e.write_all(body.as_bytes()).unwrap();
        e.finish().unwrap();
        p
    };
    let p = gz("a.csv.gz", "id,text\ng1,压缩的评论\ng2,\"two\nlines\"\n");
    assert_eq!(Format::from_path(&p), Some(Format::Csv));
    let items = items_of(&p);
    assert_eq!(comment_ids(&items), ["g1", "g2"]);
    let p = gz("b.tsv.gz", "id\ttext\nt1\ttab, separated\n");
    let Item::Comment(c) = &items_of(&p)[0] else {
        panic!()
    };
    assert_eq!(c.text, "tab, separated");
    let p = gz("c.jsonl.gz", "{\"id\": \"j1\", \"text\": \"x\"}\n");
    assert_eq!(comment_ids(&items_of(&p)), ["j1"]);
}

#[test]
fn input_folders_read_data_files_and_list_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for f in [
        "b.csv",
        "a.jsonl",
        "c.csv.gz",
        "README.txt",
        "notes.md",
        "data.gz",
    ] {
        std::fs::write(d.join(f), "").unwrap();
    }
    std::fs::create_dir(d.join("old")).unwrap();
    let found = expand_inputs(&[d.to_path_buf()]).unwrap();
    assert_eq!(
        found.files,
        vec![d.join("a.jsonl"), d.join("b.csv"), d.join("c.csv.gz")]
    );
    let skipped: Vec<_> = found.skipped.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(
        skipped,
        vec![
            d.join("README.txt"),
            d.join("data.gz"),
            d.join("notes.md"),
            d.join("old")
        ]
    );
    // a file named on the command line is read whatever its name
    let named = expand_inputs(&[d.join("README.txt")]).unwrap();
    assert_eq!(named.files, vec![d.join("README.txt")]);
}

#[test]
fn an_id_seen_in_an_earlier_file_of_the_run_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.jsonl");
    std::fs::write(&a, "id,text\nk1,one\nk2,two\n,same text\n").unwrap();
    std::fs::write(
        &b,
        "{\"id\": \"k3\", \"text\": \"three\"}\n{\"id\": \"k1\", \"text\": \"again\"}\n{\"text\": \"same text\"}\n",
    )
    .unwrap();
    let cfg = IngestConfig::default();
    let mut ra = Reader::open(&a, &cfg).unwrap();
    let items_a: Vec<Item> = (&mut ra).collect::<Result<_>>().unwrap();
    let mut rb = Reader::open(&b, &cfg).unwrap().with_ids(ra.into_ids());
    let items_b: Vec<Item> = (&mut rb).collect::<Result<_>>().unwrap();
    assert_eq!(rb.into_ids().len(), 5);
    let h = content_id("same text");
    assert_eq!(comment_ids(&items_a), ["k1", "k2", h.as_str()]);
    assert_eq!(comment_ids(&items_b), ["k3".to_string(), format!("{h}-2")]);
    let r = rejects(&items_b);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].id.as_deref(), r[0].line, r[0].field.as_deref()),
        (Some("k1"), 2, Some("id"))
    );
    assert_eq!(
        r[0].reason,
        format!("duplicate id (first seen in {}, line 2)", a.display())
    );
}

#[test]
fn invisible_texts_odd_ids_and_wild_ratings_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("odd.jsonl");
    let lines = [
        r#"{"id": "z1", "text": "\u200b\u200c\u200d\ufeff \u2060\u00ad"}"#,
        r#"{"id": "z2", "text": "\u3164\u2800\ufe0f"}"#,
        r#"{"id": {"a": 1}, "text": "object id"}"#,
        r#"{"id": [1], "text": "array id"}"#,
        r#"{"id": 1.5, "text": "fraction id"}"#,
        r#"{"id": 42, "text": "integer id"}"#,
        r#"{"id": "r1", "text": "x", "rating": -1e300}"#,
        r#"{"id": "r2", "text": "x", "rating": 101}"#,
        r#"{"id": "r3", "text": "x", "rating": "1e400"}"#,
        r#"{"id": "r4", "text": "x", "rating": 0}"#,
        r#"{"id": "r5", "text": "x", "rating": "100"}"#,
        r#"{"id": "r6", "text": "x", "rating": {"stars": 5}}"#,
        r#"{"id": "r7", "text": "x", "channel": ["app"]}"#,
        r#"{"id": "r8", "text": "visible\u200b"}"#,
    ];
    std::fs::write(&p, lines.join("\n")).unwrap();
    let items = items_of(&p);
    assert_eq!(items.len(), lines.len());
    assert_eq!(comment_ids(&items), ["42", "r4", "r5", "r8"]);
    let got: Vec<(u64, Option<&str>, Option<&str>)> = rejects(&items)
        .iter()
        .map(|r| (r.line, r.id.as_deref(), r.field.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Some("z1"), Some("text")),
            (2, Some("z2"), Some("text")),
            (3, None, Some("id")),
            (4, None, Some("id")),
            (5, None, Some("id")),
            (7, Some("r1"), Some("rating")),
            (8, Some("r2"), Some("rating")),
            (9, Some("r3"), Some("rating")),
            (12, Some("r6"), Some("rating")),
            (13, Some("r7"), Some("channel")),
        ]
    );
    let r = rejects(&items);
    assert!(r[2].reason.contains("an object"), "{}", r[2].reason);
    assert!(r[5].reason.contains("out of range"), "{}", r[5].reason);
    // the same checks in CSV
    let p = dir.path().join("odd.csv");
    std::fs::write(
        &p,
        "id,text,rating\nc1,\u{200b}\u{200d},\nc2,ok,-1e300\nc3,ok,4.5\n",
    )
    .unwrap();
    let items = items_of(&p);
    assert_eq!(comment_ids(&items), ["c3"]);
    let fields: Vec<_> = rejects(&items).iter().map(|r| r.field.clone()).collect();
    assert_eq!(
        fields,
        [Some("text".to_string()), Some("rating".to_string())]
    );
}
