#!/usr/bin/env python3
"""A bounded load test of `slm serve` on loopback: 32 clients x 20 requests,
a mix of plain answers, streamed answers read to the end, and streams the
client abandons after the first chunk. Every request must be answered (200)
or cleanly refused (503 with Retry-After); afterwards nothing runs or waits
(/metrics) and the server is still answering. With --rss, a second identical
round must leave the server's resident memory within 10 % of the first's.

Usage: test_serve_load.py SLM_BINARY TESTDATA_DIR [--rss]   (SLM_TESTDATA overrides the folder)
Exit status 77 (CTest: skipped) only when the test data is absent."""
import http.client
import json
import re
import sys
import threading
import time

import serve_harness

CLIENTS, REQUESTS = 32, 20


def request(port, i, errors, counts):
    kind = i % 3  # 0: plain, 1: streamed to the end, 2: stream abandoned after its first chunk
    body = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Count to {i % 7}."}],
            "max_tokens": 12, "temperature": 0.7, "seed": i, "stream": kind != 0}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        res = conn.getresponse()
        if res.status == 503:
            if not res.getheader("Retry-After"):
                errors.append(f"request {i}: 503 without Retry-After")
            counts["refused"] += 1
            return
        if res.status != 200:
            errors.append(f"request {i}: HTTP {res.status}: {res.read()[:200]!r}")
            return
        if kind == 0:
            answer = json.loads(res.read())
            if answer["object"] != "chat.completion":
                errors.append(f"request {i}: {answer}")
        elif kind == 1:
            text = res.read().decode()
            if not text.endswith("data: [DONE]\n\n"):
                errors.append(f"request {i}: stream ended without [DONE]: {text[-200:]!r}")
        else:
            res.read1(64)  # the first bytes, then hang up
        counts["answered"] += 1
    except Exception as e:  # a dropped connection, a timeout: a failure
        errors.append(f"request {i}: {type(e).__name__}: {e}")
    finally:
        conn.close()


def round_of_requests(port):
    errors, counts = [], {"answered": 0, "refused": 0}
    lock = threading.Lock()

    def client(c):
        local_errors, local = [], {"answered": 0, "refused": 0}
        for r in range(REQUESTS):
            request(port, c * REQUESTS + r, local_errors, local)
        with lock:
            errors.extend(local_errors)
            for k in counts:
                counts[k] += local[k]

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors, counts


def metrics(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(slm_\w+) (\S+)$", text, re.M)}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def main():
    model = serve_harness.test_model(sys.argv[2])
    check_rss = "--rss" in sys.argv[3:]
    with serve_harness.Server(sys.argv[1], model, "-c", "512", "-np", "4", "--max-queue", "16") as server:
        port = server.port
        rss = []
        for n in (1, 2):
            errors, counts = round_of_requests(port)
            assert not errors, f"round {n}: {len(errors)} failures, e.g. " + "; ".join(errors[:5])
            assert counts["answered"] + counts["refused"] == CLIENTS * REQUESTS, counts
            assert counts["answered"] > 0, counts
            # Abandoned streams end when the server next writes to them: give
            # it a moment to notice, then nothing may be running or waiting.
            for _ in range(100):
                m = metrics(port)
                if m["slm_requests_running"] == 0 and m["slm_queue_length"] == 0:
                    break
                time.sleep(0.1)
            assert m["slm_requests_running"] == 0 and m["slm_queue_length"] == 0, m
            # No slot is left holding a request's positions (the idle slots'
            # prompt caches stay: slm_kv_cache_tokens).
            assert m["slm_kv_cache_active_tokens"] == 0, m
            rss.append(rss_kib(server.pid))
            print(f"round {n}: {counts['answered']} answered, {counts['refused']} refused (503); "
                  f"{m['slm_requests_total']:.0f} requests so far; server RSS {rss[-1] / 1024:.1f} MiB")
        if check_rss:
            assert abs(rss[1] - rss[0]) <= 0.10 * rss[0], f"RSS grew from {rss[0]} to {rss[1]} KiB"


if __name__ == "__main__":
    main()
