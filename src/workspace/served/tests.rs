//! Tests of [`super`]: compaction, crash-cut lines and the streaming reader.

use super::*;
use std::collections::BTreeMap;

fn rec(id: &str, text: &str) -> Scored {
    Scored {
        id: id.into(),
        text: text.into(),
        lang: "en".into(),
        time: None,
        channel: None,
        rating: None,
        tier: None,
        product: None,
        masked: Vec::new(),
        tokens: None,
        n_tokens: 1,
        text_hash: String::new(),
        model: "m".into(),
        aspects: None,
        tasks: BTreeMap::new(),
    }
}

#[test]
fn the_latest_line_of_an_id_wins_and_a_line_cut_by_a_crash_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path().join("run"));
    assert!(read_served(&run.served()).unwrap().is_empty());
    let mut w = ServedWriter::open(&run).unwrap();
    w.append(&[rec("a", "one"), rec("b", "two")]).unwrap();
    w.append(&[rec("a", "three")]).unwrap();
    w.sync().unwrap();
    drop(w);
    // a crash in the middle of a line
    let mut f = OpenOptions::new().append(true).open(run.served()).unwrap();
    f.write_all(br#"{"id":"c","te"#).unwrap();
    let texts = |v: Vec<Scored>| {
        v.into_iter()
            .map(|s| s.id + "=" + &s.text)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        texts(read_served(&run.served()).unwrap()),
        ["a=three", "b=two"]
    );
    // the next writer cuts it, so its first line starts clean
    let mut w = ServedWriter::open(&run).unwrap();
    w.append(&[rec("c", "four")]).unwrap();
    assert_eq!(
        texts(read_served(&run.served()).unwrap()),
        ["a=three", "b=two", "c=four"]
    );
    std::fs::write(run.served(), "{oops}\n").unwrap();
    let e = read_served(&run.served()).unwrap_err().to_string();
    assert!(e.contains("served.jsonl") && e.contains("line 1"), "{e}");
}

#[test]
fn the_runs_records_are_the_scored_ones_then_the_served_ones_a_served_id_replacing_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path().join("run"));
    assert!(run.read_scored().is_err());
    // a run that only served comments
    let mut w = ServedWriter::open(&run).unwrap();
    assert!(
        run.read_scored().is_err(),
        "an empty served file is no records"
    );
    w.append(&[rec("b", "served b"), rec("c", "served c")])
        .unwrap();
    let ids = |run: &RunDir| {
        run.read_scored()
            .unwrap()
            .into_iter()
            .map(|s| s.id + "=" + &s.text)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&run), ["b=served b", "c=served c"]);
    // scored by `vocmine score` too: its records first, less the ids served since
    let lines: String = [rec("a", "scored a"), rec("b", "scored b")]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(run.scored(), lines).unwrap();
    assert_eq!(ids(&run), ["a=scored a", "b=served b", "c=served c"]);
    let mut n = 0;
    run.each_scored(|_| n += 1).unwrap();
    assert_eq!(n, 3);
}

fn line(s: &Scored) -> String {
    serde_json::to_string(s).unwrap() + "\n"
}

fn texts(v: Vec<Scored>) -> Vec<String> {
    v.into_iter().map(|s| s.id + "=" + &s.text).collect()
}

/// The reader before streaming (commit 3367b99): every served record in memory, the
/// latest line of each id in the order of each id's first line.
fn old_read_served(path: &Path) -> Vec<Scored> {
    let bytes = std::fs::read(path).unwrap();
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut out: Vec<Scored> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for line in bytes[..whole].split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let s: Scored = serde_json::from_slice(line).unwrap();
        match at.get(&s.id) {
            Some(&k) => out[k] = s,
            None => {
                at.insert(s.id.clone(), out.len());
                out.push(s);
            }
        }
    }
    out
}

/// `RunDir::read_scored` before streaming: scored.jsonl less the served ids, then those.
fn old_read_scored(run: &RunDir) -> Vec<Scored> {
    let served = old_read_served(&run.served());
    let ids: HashSet<String> = served.iter().map(|s| s.id.clone()).collect();
    let text = std::fs::read_to_string(run.scored()).unwrap();
    let scored = (text.lines())
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Scored>(l).unwrap())
        .filter(|s| !ids.contains(&s.id));
    scored.chain(served).collect()
}

/// A run folder with 3 scored records and a served.jsonl of 9 lines over 4 ids (2 of them
/// also scored), a blank line and a last line a crash cut.
fn hand_built_run(dir: &Path) -> RunDir {
    let run = RunDir::new(dir.join("run"));
    std::fs::create_dir_all(run.path()).unwrap();
    let scored: String = [
        rec("a", "scored a"),
        rec("b", "scored b"),
        rec("x", "scored x"),
    ]
    .iter()
    .map(line)
    .collect();
    std::fs::write(run.scored(), scored).unwrap();
    let mut served: String = [
        rec("c", "c1"),
        rec("b", "b1"),
        rec("c", "c2"),
        rec("d", "d1"),
        rec("b", "b2"),
    ]
    .iter()
    .map(line)
    .collect();
    served += "\n";
    served += &[rec("a", "a1"), rec("c", "c3"), rec("d", "d2")]
        .iter()
        .map(line)
        .collect::<String>();
    served += r#"{"id":"b","text":"cut"#;
    std::fs::write(run.served(), served).unwrap();
    run
}

#[test]
fn the_streaming_reader_yields_the_records_of_the_old_one_in_the_same_order() {
    let dir = tempfile::tempdir().unwrap();
    let run = hand_built_run(dir.path());
    let want = texts(old_read_scored(&run));
    assert_eq!(
        want,
        ["x=scored x", "c=c3", "b=b2", "d=d2", "a=a1"],
        "the old order: scored less served, then served by first line"
    );
    assert_eq!(texts(run.read_scored().unwrap()), want);
    let mut each = Vec::new();
    run.each_scored(|s| each.push(s)).unwrap();
    assert_eq!(texts(each), want);
    // a latest line that is no record (found in the second pass) is an error naming it
    let text = std::fs::read_to_string(run.served()).unwrap();
    let whole = text.rfind('\n').unwrap() + 1;
    std::fs::write(run.served(), text[..whole].to_string() + "{\"id\":\"d\"}\n").unwrap();
    let e = run.read_scored().unwrap_err().to_string();
    assert!(e.contains("served.jsonl") && e.contains("line 10"), "{e}");
}

#[test]
fn opening_compacts_to_the_latest_line_of_each_id_and_readers_see_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let run = hand_built_run(dir.path());
    let before = texts(run.read_scored().unwrap());
    let mut w = ServedWriter::open(&run).unwrap();
    assert_eq!((w.lines(), w.ids()), (4, 4));
    let text = std::fs::read_to_string(run.served()).unwrap();
    let lines: Vec<Scored> = (text.lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(texts(lines), ["c=c3", "b=b2", "d=d2", "a=a1"]);
    assert_eq!(texts(run.read_scored().unwrap()), before);
    assert!(ServedWriter::open(&run).is_ok() && !tmp_of(&run.served()).exists());
    // appends after the compaction go to the new file
    w.append(&[rec("e", "e1"), rec("c", "c4")]).unwrap();
    assert_eq!(
        texts(run.read_scored().unwrap()),
        ["x=scored x", "c=c4", "b=b2", "d=d2", "a=a1", "e=e1"]
    );
}

#[test]
fn the_server_compacts_once_superseded_lines_outnumber_live_ones_in_a_large_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path().join("run"));
    let mut w = ServedWriter::open(&run).unwrap();
    let batch: Vec<Scored> = (0..100).map(|i| rec(&format!("id{i}"), "v")).collect();
    let mut round = 0;
    while w.lines() + batch.len() <= COMPACT_MIN_LINES {
        w.append(&batch).unwrap();
        round += 1;
        assert_eq!(w.compact_if_large().unwrap(), None, "{} lines", w.lines());
    }
    let last: Vec<Scored> = (0..100).map(|i| rec(&format!("id{i}"), "last")).collect();
    w.append(&last).unwrap();
    w.sync().unwrap();
    let size = std::fs::metadata(run.served()).unwrap().len();
    let done = w.compact_if_large().unwrap().expect("compacted");
    assert_eq!(done.lines_before, (round + 1) * 100);
    assert_eq!((done.lines_after, w.lines(), w.ids()), (100, 100, 100));
    assert_eq!(done.bytes_before, size);
    assert_eq!(
        done.bytes_after,
        std::fs::metadata(run.served()).unwrap().len()
    );
    assert!(!tmp_of(&run.served()).exists());
    // a batch appended after it lands in the new file, after the compacted lines
    w.append(&[rec("id7", "after"), rec("new", "after")])
        .unwrap();
    let got = texts(read_served(&run.served()).unwrap());
    assert_eq!(got.len(), 101);
    assert_eq!(
        (got[0].as_str(), got[7].as_str()),
        ("id0=last", "id7=after")
    );
    assert_eq!(got[100], "new=after");
    assert_eq!(
        std::fs::read_to_string(run.served())
            .unwrap()
            .lines()
            .count(),
        102
    );
}

#[test]
fn a_tmp_file_a_crashed_compaction_left_is_deleted_and_the_original_kept() {
    let dir = tempfile::tempdir().unwrap();
    let run = hand_built_run(dir.path());
    let before = texts(run.read_scored().unwrap());
    let tmp = tmp_of(&run.served());
    // cut in the middle of writing the compacted copy
    std::fs::write(&tmp, &line(&rec("c", "c3"))[..20]).unwrap();
    assert_eq!(
        texts(run.read_scored().unwrap()),
        before,
        "readers ignore it"
    );
    let mut w = ServedWriter::open(&run).unwrap();
    assert!(!tmp.exists());
    assert_eq!(texts(run.read_scored().unwrap()), before);
    // a crash-cut last line after the compaction is still cut by the next writer
    w.append(&[rec("f", "f1")]).unwrap();
    drop(w);
    let mut f = OpenOptions::new().append(true).open(run.served()).unwrap();
    f.write_all(br#"{"id":"g","te"#).unwrap();
    let mut want = before.clone();
    want.push("f=f1".into());
    assert_eq!(texts(run.read_scored().unwrap()), want);
    let mut w = ServedWriter::open(&run).unwrap();
    w.append(&[rec("g", "g1")]).unwrap();
    want.push("g=g1".into());
    assert_eq!(texts(run.read_scored().unwrap()), want);
}

#[test]
fn latest_lines_scattered_over_a_large_file_read_as_the_old_reader_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path().join("run"));
    std::fs::create_dir_all(run.path()).unwrap();
    // 3,000 lines (~400 KB, past the 64 KiB buffer) over 70 ids whose latest lines lie
    // before and after one another, near and far
    let lines: String = (0..3000)
        .map(|i| {
            line(&rec(
                &format!("id{}", (i * 37 + i / 100) % 70),
                &format!("t{i}"),
            ))
        })
        .collect();
    std::fs::write(run.served(), lines).unwrap();
    let want = texts(old_read_served(&run.served()));
    assert_eq!(want.len(), 70);
    assert_eq!(texts(read_served(&run.served()).unwrap()), want);
    ServedWriter::open(&run).unwrap();
    assert_eq!(texts(read_served(&run.served()).unwrap()), want);
}
