//! Tests of encodings, delimiter detection and spreadsheets on real files.

use super::tests::{read_all, rejects};
use super::*;
use encoding_rs::{BIG5, GB18030};

fn comments(items: &[Item]) -> Vec<(String, String)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Comment(c) => Some((c.id.clone(), c.text.clone())),
            Item::Reject(_) => None,
        })
        .collect()
}

const CSV: &str = "id,text,rating\nc1,物流太慢了，等了一个星期,1\nc2,\"請問可以退貨嗎？\",3\nc3,Great service,5\n";

fn expected() -> Vec<(String, String)> {
    vec![
        ("c1".into(), "物流太慢了，等了一个星期".into()),
        ("c2".into(), "請問可以退貨嗎？".into()),
        ("c3".into(), "Great service".into()),
    ]
}

#[test]
fn a_gb18030_csv_from_excel_is_detected_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gbk.csv");
    std::fs::write(&p, GB18030.encode(CSV).0).unwrap();
    let r = Reader::open(&p, &IngestConfig::default()).unwrap();
    assert_eq!(r.encoding().encoding, GB18030);
    assert!(r.encoding().detected);
    let items: Vec<Item> = r.collect::<Result<_>>().unwrap();
    assert_eq!(comments(&items), expected());
    // named, as gbk (the same decoder)
    let cfg = IngestConfig {
        encoding: Some("gbk".into()),
        ..IngestConfig::default()
    };
    assert_eq!(comments(&read_all(&p, &cfg)), expected());
}

#[test]
fn big5_named_and_utf16_with_a_bom_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big5.csv");
    let (bytes, _, bad) = BIG5.encode("id,text\nt1,請問可以退貨嗎？\nt2,客服態度很好\n");
    assert!(!bad);
    std::fs::write(&p, bytes).unwrap();
    let cfg = IngestConfig {
        encoding: Some("big5".into()),
        ..IngestConfig::default()
    };
    assert_eq!(
        comments(&read_all(&p, &cfg)),
        vec![
            ("t1".to_string(), "請問可以退貨嗎？".to_string()),
            ("t2".to_string(), "客服態度很好".to_string())
        ]
    );

    let p = dir.path().join("utf16.csv");
    let mut le = vec![0xFF, 0xFE];
    for u in CSV.encode_utf16() {
        le.extend_from_slice(&u.to_le_bytes());
    }
    std::fs::write(&p, le).unwrap();
    assert_eq!(
        comments(&read_all(&p, &IngestConfig::default())),
        expected()
    );
}

#[test]
fn a_bad_sequence_in_a_gb18030_file_costs_its_record_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gbk.csv");
    let mut bytes = GB18030.encode(CSV).0.into_owned();
    bytes.extend_from_slice(b"c4,bad \x81\x20 bytes,2\n");
    bytes.extend_from_slice(&GB18030.encode("c5,质量很好,5\n").0);
    std::fs::write(&p, &bytes).unwrap();
    let cfg = IngestConfig {
        encoding: Some("gb18030".into()),
        ..IngestConfig::default()
    };
    let items = read_all(&p, &cfg);
    assert_eq!(items.len(), 5);
    let rej = rejects(&items);
    assert_eq!(rej.len(), 1);
    assert_eq!(
        (rej[0].id.as_deref(), rej[0].line, rej[0].field.as_deref()),
        (Some("c4"), 5, Some("text"))
    );
    assert_eq!(rej[0].reason, "bytes that are not valid gb18030");
    assert_eq!(comments(&items)[3], ("c5".into(), "质量很好".into()));
}

#[test]
fn an_unknown_encoding_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.csv");
    std::fs::write(&p, CSV).unwrap();
    let cfg = IngestConfig {
        encoding: Some("klingon".into()),
        ..IngestConfig::default()
    };
    let e = Reader::open(&p, &cfg).err().unwrap().to_string();
    assert!(e.contains("a.csv") && e.contains("unknown encoding"), "{e}");
}

#[test]
fn the_delimiter_is_taken_from_the_header_line() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("semi.csv", "id;text;rating\nc1;好评, 非常满意;5\n"),
        ("tab.txt", "id\ttext\trating\nc1\t好评, 非常满意\t5\n"),
        ("pipe.csv", "id|text|rating\nc1|好评, 非常满意|5\n"),
        ("quoted.csv", "\"id;x\",text\nc1,\"好评, 非常满意\"\n"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let cfg = IngestConfig {
            columns: ColumnMap {
                id: if name == "quoted.csv" { "id;x" } else { "id" }.into(),
                ..ColumnMap::default()
            },
            ..IngestConfig::default()
        };
        let items = read_all(&p, &cfg);
        assert_eq!(
            comments(&items),
            vec![("c1".to_string(), "好评, 非常满意".to_string())],
            "{name}"
        );
    }
}

#[test]
fn a_spreadsheet_is_read_with_row_numbers_numeric_ids_and_dates() {
    use rust_xlsxwriter::{ExcelDateTime, Format as XFormat, Workbook};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tickets.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("说明").unwrap();
    ws.write(0, 0, "this sheet is notes").unwrap();
    let ws = wb.add_worksheet();
    ws.set_name("tickets").unwrap();
    let date = XFormat::new().set_num_format("yyyy-mm-dd");
    for (c, h) in ["工单号", "内容", "time", "rating"].iter().enumerate() {
        ws.write(1, c as u16, *h).unwrap(); // header on row 2 (row 1 empty)
    }
    ws.write(2, 0, 10023).unwrap();
    ws.write(2, 1, "物流太慢了").unwrap();
    let d = ExcelDateTime::parse_from_str("2026-11-03").unwrap();
    ws.write_datetime_with_format(2, 2, &d, &date).unwrap();
    ws.write(2, 3, 1).unwrap();
    // row 4 left empty: skipped; row 5 has no text: rejected with its row number
    ws.write(4, 0, 10024).unwrap();
    ws.write(4, 3, 2).unwrap();
    ws.write(5, 0, "A-7").unwrap();
    ws.write(5, 1, "請問可以退貨嗎？").unwrap();
    ws.write(5, 3, 4.5).unwrap();
    wb.save(&p).unwrap();

    let cols = ColumnMap {
        id: "工单号".into(),
        text: "内容".into(),
        ..ColumnMap::default()
    };
    let cfg = IngestConfig {
        columns: cols.clone(),
        sheet: Some("tickets".into()),
        ..IngestConfig::default()
    };
    let items = read_all(&p, &cfg);
    assert_eq!(items.len(), 3);
    let Item::Comment(c) = &items[0] else {
        panic!("{:?}", items[0])
    };
    assert_eq!(
        (c.id.as_str(), c.text.as_str(), c.time.as_deref(), c.rating),
        ("10023", "物流太慢了", Some("2026-11-03"), Some(1.0))
    );
    assert_eq!(c.source.line, 3);
    let rej = rejects(&items);
    assert_eq!(
        (rej[0].id.as_deref(), rej[0].line, rej[0].field.as_deref()),
        (Some("10024"), 5, Some("text"))
    );
    let Item::Comment(c) = &items[2] else {
        panic!()
    };
    assert_eq!(
        (c.id.as_str(), c.rating, c.source.line),
        ("A-7", Some(4.5), 6)
    );

    // the first sheet has no text column: the error names the sheet, the row and the columns
    let cfg = IngestConfig {
        columns: cols,
        ..IngestConfig::default()
    };
    let e = Reader::open(&p, &cfg).err().unwrap().to_string();
    assert!(
        e.contains("sheet \"说明\", row 1") && e.contains("内容"),
        "{e}"
    );
    let cfg = IngestConfig {
        sheet: Some("nope".into()),
        ..IngestConfig::default()
    };
    let e = Reader::open(&p, &cfg).err().unwrap().to_string();
    assert!(
        e.contains("no sheet \"nope\"") && e.contains("tickets"),
        "{e}"
    );
    assert!(Format::is_data_file(&p));
}
