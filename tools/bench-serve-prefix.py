#!/usr/bin/env python3
"""Time to first token of `slm serve` with and without a cached prefix.

Starts `slm serve MODEL` and sends chat requests that share a long system
prompt (about PREFIX tokens): the first one evaluates it cold; each later
one, with a different question, finds the prefix in its slot's cache.
Prints the median time to the first streamed text of each kind and the
ratio (issue 14's bar: >= 5x for a 1000-token prefix).

Usage: tools/bench-serve-prefix.py SLM_BINARY MODEL.gguf [--prefix 1000] [--runs 5] [--threads N]"""
import argparse
import http.client
import json
import re
import statistics
import subprocess
import time


def first_token_seconds(port, messages):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions",
                 json.dumps({"messages": messages, "max_tokens": 4, "temperature": 0, "stream": True}),
                 {"Content-Type": "application/json"})
    res = conn.getresponse()
    if res.status != 200:
        raise SystemExit(f"HTTP {res.status}: {res.read()[:300]!r}")
    seconds = None
    while True:
        line = res.readline()
        if not line:
            break
        if seconds is None and line.startswith(b"data: ") and b'"content":"' in line and b'"content":""' not in line:
            seconds = time.perf_counter() - start
    conn.close()
    return seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("slm")
    ap.add_argument("model")
    ap.add_argument("--prefix", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    server = subprocess.Popen([a.slm, "serve", a.model, "--port", "0", "-c", str(2 * a.prefix + 512), "-np", "2",
                               "-t", str(a.threads)], stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in server.stderr:
            m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        words = " ".join(f"rule{i} applies." for i in range(a.prefix // 5))  # about 5 tokens each
        cold, warm = [], []
        for r in range(a.runs):
            system = {"role": "system", "content": f"Session {r}. {words}"}  # a new prefix: cold
            cold.append(first_token_seconds(port, [system, {"role": "user", "content": "First question?"}]))
            warm.append(first_token_seconds(port, [system, {"role": "user", "content": f"Another question {r}?"}]))
        if None in cold + warm:
            raise SystemExit("an answer without text: cannot time its first token")
        c, w = statistics.median(cold), statistics.median(warm)
        print(f"prefix ~{a.prefix} tokens, {a.runs} runs: first token cold {c * 1000:.0f} ms, "
              f"with the prefix cached {w * 1000:.0f} ms: {c / w:.1f}x sooner")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
