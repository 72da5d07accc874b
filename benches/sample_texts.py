"""Writes corpora/sample/comments.csv's comments as JSONL ({"id", "text"}; with --no-id only
{"text"}), the texts the serve benchmarks post: python3 benches/sample_texts.py OUT [--no-id]"""
import csv
import json
import sys

with open("corpora/sample/comments.csv", encoding="utf-8-sig") as f, open(sys.argv[1], "w") as o:
    for r in csv.DictReader(f):
        row = {"text": r["text"]} if "--no-id" in sys.argv[2:] else {"id": r["id"], "text": r["text"]}
        o.write(json.dumps(row, ensure_ascii=False) + "\n")
