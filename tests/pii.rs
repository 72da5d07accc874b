//! Personal data through the real binary: `vocmine score` on comments full of phone numbers,
//! e-mails and ID/bank-card numbers in the forms customers write them (full-width, spaced,
//! dotted, glued to words, Hong Kong, Taiwan, US), then no byte of any file in the run folder
//! (scored.jsonl, checkpoint parts, state, the search index) holds one, and the index finds
//! none of their digit groups.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use unicode_normalization::UnicodeNormalization;
use vocmine::index::query::{search, SearchRequest};
use vocmine::index::SearchIndex;

/// (id, text) of each comment; every one carries personal data except `p10`'s price and date.
const COMMENTS: &[(&str, &str)] = &[
    (
        "p1",
        "手机138－8765－1234 邮箱wang＠example．com 台灣0912-345-678",
    ),
    (
        "p2",
        "退款没到账，客服让我发邮件到service@youxuan.cn，发了三次没人回",
    ),
    (
        "p3",
        "请联系我13812345678或者发邮件到zhang.san@example.com，谢谢",
    ),
    (
        "p4",
        "快递一直不到，打电话 138.8765.4321 和 139 8765 1234 都没人接，座机(010)87654321也打不通",
    ),
    (
        "p5",
        "客服tel15912345678，经理 010-6234-5678，深圳店 0755 2345 6789",
    ),
    ("p6", "退货地址发我邮箱 user@例子.中国，身份证 110101 19900307 1234"),
    (
        "p7",
        "身份证号 1101 0119 9003 0712 34，老身份证 110101900307123，ID440305198811250421",
    ),
    (
        "p8",
        "Hong Kong store 9123 4567 or +852 6123 4567, Taipei (02)2345-6789, mobile +886 912 345 678",
    ),
    (
        "p9",
        "US support (415) 555 2671, 415 555 2672 and +1 415 555 2673 never answered",
    ),
    (
        "p10",
        "卡号4111 1111 1111 1111 被扣了两次 ¥2599.00，订单 2024-05-01 下的",
    ),
    (
        "p11",
        "全角身份证１１０１０１１９９００３０７１２３Ｘ，电话（０２１）６２３４５６７８",
    ),
];

/// The personal data in `COMMENTS`, as written.
const SECRETS: &[&str] = &[
    "138－8765－1234",
    "wang＠example．com",
    "0912-345-678",
    "service@youxuan.cn",
    "13812345678",
    "zhang.san@example.com",
    "138.8765.4321",
    "139 8765 1234",
    "(010)87654321",
    "15912345678",
    "010-6234-5678",
    "0755 2345 6789",
    "user@例子.中国",
    "110101 19900307 1234",
    "1101 0119 9003 0712 34",
    "110101900307123",
    "440305198811250421",
    "9123 4567",
    "+852 6123 4567",
    "(02)2345-6789",
    "+886 912 345 678",
    "(415) 555 2671",
    "415 555 2672",
    "+1 415 555 2673",
    "4111 1111 1111 1111",
    "１１０１０１１９９００３０７１２３Ｘ",
    "（０２１）６２３４５６７８",
];

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The ways a secret could be stored: as written, width-folded, and its digits alone (when
/// they are enough to identify it), plus an address's domain.
fn variants(secret: &str) -> Vec<String> {
    let folded: String = secret.nfkc().collect();
    let digits: String = folded.chars().filter(char::is_ascii_digit).collect();
    let mut v = vec![secret.to_string(), folded.clone()];
    if digits.len() >= 7 {
        v.push(digits);
    }
    if let Some((_, domain)) = folded.split_once('@') {
        v.push(format!("@{domain}"));
    }
    v
}

#[test]
fn no_personal_data_in_any_file_of_a_scored_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pii.jsonl");
    let lines: Vec<String> = COMMENTS
        .iter()
        .map(|(id, text)| serde_json::json!({"id": id, "text": text}).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let run = dir.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_vocmine"))
        .args([
            "score",
            input.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ])
        .current_dir(common::root())
        .env("VOCMINE_CACHE", dir.path().join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains(&format!("scored {0} of {0} records", COMMENTS.len())),
        "{stdout}"
    );

    // the masked texts, exactly: placeholders where the data was, the rest as written
    let scored = common::read_jsonl(&run.join("scored.jsonl"));
    let text = |id: &str| {
        scored
            .iter()
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("{id} not scored"))["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(text("p1"), "手机<PHONE> 邮箱<EMAIL> 台灣<PHONE>");
    assert_eq!(
        text("p2"),
        "退款没到账，客服让我发邮件到<EMAIL>，发了三次没人回"
    );
    assert_eq!(text("p3"), "请联系我<PHONE>或者发邮件到<EMAIL>，谢谢");
    assert_eq!(
        text("p7"),
        "身份证号 <ID_CARD>，老身份证 <ID_CARD>，ID<ID_CARD>"
    );
    assert_eq!(
        text("p9"),
        "US support <PHONE>, <PHONE> and <PHONE> never answered"
    );
    assert_eq!(
        text("p10"),
        "卡号<BANK_CARD> 被扣了两次 ¥2599.00，订单 2024-05-01 下的"
    );
    assert_eq!(text("p11"), "全角身份证<ID_CARD>，电话<PHONE>");

    // no file of the run folder holds a secret in any form
    let mut files = Vec::new();
    files_under(&run, &mut files);
    assert!(files.iter().any(|p| p.starts_with(run.join("index"))));
    assert!(files.iter().any(|p| p.starts_with(run.join("state"))));
    let scored_bytes = std::fs::read(run.join("scored.jsonl")).unwrap();
    assert!(
        contains(&scored_bytes, "¥2599.00".as_bytes()),
        "the byte search sees text as written"
    );
    let mut leaks = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for s in SECRETS {
            for v in variants(s) {
                if contains(&bytes, v.as_bytes()) {
                    leaks.push(format!("{v:?} in {}", f.display()));
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} files, leaks:\n{}",
        files.len(),
        leaks.join("\n")
    );

    // the index finds none of their digit groups of 4 or more, nor their addresses' parts
    let idx = SearchIndex::open(&run.join("index")).unwrap();
    let reader = idx.reader().unwrap();
    let count = |q: &str| {
        let req = SearchRequest {
            query: q.to_string(),
            limit: 10,
            ..SearchRequest::default()
        };
        search(&idx, &reader.searcher(), &req).unwrap().total
    };
    assert!(count("退款") >= 1, "the index answers");
    assert!(
        count("2599.00") + count("2599") >= 1,
        "a price stays searchable"
    );
    let mut found = Vec::new();
    for s in SECRETS {
        let folded: String = s.nfkc().collect();
        let groups = folded
            .split(|c: char| !c.is_ascii_digit())
            .filter(|g| g.len() >= 4);
        for q in groups.map(str::to_string).chain(variants(s)) {
            let n = count(&format!("\"{}\"", q.replace('"', "")));
            if n > 0 {
                found.push(format!("{q:?}: {n}"));
            }
        }
    }
    for q in ["youxuan", "wang", "zhang", "例子"] {
        if count(q) > 0 {
            found.push(q.to_string());
        }
    }
    assert!(found.is_empty(), "searchable: {found:?}");
}
