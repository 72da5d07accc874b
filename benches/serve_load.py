#!/usr/bin/env python3
"""Load generator for `vocmine serve --score`: CLIENTS threads, each sending one comment per
POST /score over a keep-alive connection to 127.0.0.1, for the texts of a JSONL file (each
text once, split between the clients; with SECONDS, each client goes round its texts again
until SECONDS have passed, so the load is bounded in time and stops by itself). Prints one
JSON line: comments/s, p50/p99 latency (of a request). With PER > 1 each request carries PER
comments (a client that forwards tickets in small batches); SECONDS 0 means no time bound.
Usage: serve_load.py ADDR TEXTS.jsonl CLIENTS [SECONDS [PER]]"""
import http.client, json, sys, threading, time

addr, path, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
seconds = float(sys.argv[4]) if len(sys.argv) > 4 and float(sys.argv[4]) > 0 else None
per = int(sys.argv[5]) if len(sys.argv) > 5 else 1
host, port = addr.rsplit(":", 1)
texts = [json.loads(l)["text"] for l in open(path, encoding="utf-8") if l.strip()]
lat, errors, done, lock = [], [], [], threading.Lock()


def rounds(mine, deadline):
    """Each text once; with a deadline, round again until it passes."""
    while True:
        for t in mine:
            if deadline is not None and time.perf_counter() >= deadline:
                return
            yield t
        if deadline is None:
            return


def client(mine, deadline):
    conn = http.client.HTTPConnection(host, int(port), timeout=120)

    def send(batch):
        body = json.dumps({"comments": [{"text": t} for t in batch]})
        t0 = time.perf_counter()
        conn.request("POST", "/score", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        with lock:
            if r.status != 200 or len(json.loads(data)["scored"]) != len(batch):
                errors.append(r.status)
            lat.append(dt)
            done.append(len(batch))

    batch = []
    for t in rounds(mine, deadline):
        batch.append(t)
        if len(batch) == per:
            send(batch)
            batch = []
    if batch:
        send(batch)


parts = [texts[i::clients] for i in range(clients)]
t0 = time.perf_counter()
deadline = None if seconds is None else t0 + seconds
threads = [threading.Thread(target=client, args=(p, deadline)) for p in parts]
for th in threads:
    th.start()
for th in threads:
    th.join()
wall = time.perf_counter() - t0
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(json.dumps({"clients": clients, "per_request": per, "comments": sum(done),
                  "errors": len(errors), "seconds": round(wall, 2),
                  "comments_per_s": round(sum(done) / wall, 1),
                  "p50_ms": round(q(0.50), 1), "p99_ms": round(q(0.99), 1)}))
