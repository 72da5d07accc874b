#!/usr/bin/env python3
"""Load generator for `vocmine serve --score`: CLIENTS threads, each sending one comment per
POST /score over a keep-alive connection to 127.0.0.1, for the texts of a JSONL file (each
text once, split between the clients). Prints one JSON line: comments/s, p50/p99 latency.
Usage: serve_load.py ADDR TEXTS.jsonl CLIENTS"""
import http.client, json, sys, threading, time

addr, path, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = addr.rsplit(":", 1)
texts = [json.loads(l)["text"] for l in open(path, encoding="utf-8") if l.strip()]
lat, errors, lock = [], [], threading.Lock()


def client(mine):
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    for t in mine:
        body = json.dumps({"comments": [{"text": t}]})
        t0 = time.perf_counter()
        conn.request("POST", "/score", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        with lock:
            if r.status != 200 or len(json.loads(data)["scored"]) != 1:
                errors.append(r.status)
            lat.append(dt)


parts = [texts[i::clients] for i in range(clients)]
threads = [threading.Thread(target=client, args=(p,)) for p in parts]
t0 = time.perf_counter()
for th in threads:
    th.start()
for th in threads:
    th.join()
wall = time.perf_counter() - t0
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(json.dumps({"clients": clients, "comments": len(lat), "errors": len(errors),
                  "seconds": round(wall, 2), "comments_per_s": round(len(lat) / wall, 1),
                  "p50_ms": round(q(0.50), 1), "p99_ms": round(q(0.99), 1)}))
