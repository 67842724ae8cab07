#!/usr/bin/env python3
"""Aggregate decode tokens/s of an OpenAI-compatible server with N streams.

Sends N streaming /v1/completions requests at once (distinct short prompts,
temperature 0, ignore_eos, max_tokens T) to a running server — `slm serve
MODEL -np N` or llama.cpp's `llama-server -m MODEL -np N` — and reports,
for each N, the decode throughput over all streams: the tokens generated
after every stream's first one, divided by the time from the first stream's
first token to the last stream's end (the prompts are read before the first
tokens, so this is decode). The ratio to N = 1 is the batching gain.

Usage: tools/bench-serve-throughput.py --port PORT [--streams 1,2,4] [--tokens 64] [--reps 2]"""
import argparse
import http.client
import json
import statistics
import threading
import time


def one_stream(port, prompt, tokens, out):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}, "cache_prompt": False}
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    res = conn.getresponse()
    if res.status != 200:
        raise SystemExit(f"HTTP {res.status}: {res.read()[:300]!r}")
    first = None
    n = None
    while True:
        line = res.readline()
        if not line:
            break
        if not line.startswith(b"data: {"):
            continue
        chunk = json.loads(line[6:])
        if first is None and chunk.get("choices") and chunk["choices"][0].get("text"):
            first = time.perf_counter()
        if chunk.get("usage"):
            n = chunk["usage"]["completion_tokens"]
    out.append((start, first, time.perf_counter(), n))
    conn.close()


def run(port, streams, tokens):
    out = []
    threads = [threading.Thread(target=one_stream, args=(port, f"Story number {i}: once upon a time", tokens, out))
               for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(first is None or n is None for _, first, _, n in out):
        raise SystemExit("a stream without text or without usage: cannot time it")
    first = min(f for _, f, _, _ in out)
    end = max(e for _, _, e, _ in out)
    generated = sum(n - 1 for _, _, _, n in out)
    return generated / (end - first), sum(n for *_, n in out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--streams", default="1,2,4")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    run(a.port, 1, 4)  # warm-up
    base = None
    for n in [int(x) for x in a.streams.split(",")]:
        rates = [run(a.port, n, a.tokens)[0] for _ in range(a.reps)]
        mean = statistics.mean(rates)
        base = base or (mean if n == 1 else None)
        gain = f", {mean / base:.2f}x one stream" if base else ""
        print(f"{n} streams x {a.tokens} tokens: {mean:.2f} t/s aggregate decode "
              f"(runs: {', '.join(f'{r:.2f}' for r in rates)}){gain}", flush=True)


if __name__ == "__main__":
    main()
