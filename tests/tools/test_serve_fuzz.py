#!/usr/bin/env python3
"""Property-based API fuzzing of a live `slm serve` with schemathesis
(docs/openapi.yaml): valid and invalid requests for every endpoint; no
answer may be a server error (5xx) and the server must still be up after.

Usage: test_serve_fuzz.py SLM_BINARY TESTDATA_DIR SCHEMA [MAX_EXAMPLES]   (SLM_TESTDATA overrides the folder)
Needs schemathesis (.ci/deps installs it with pip). Exit status 77 (CTest:
skipped) only when the test data is absent."""
import http.client
import os
import re
import subprocess
import sys


def main():
    slm, schema = sys.argv[1], sys.argv[3]
    testdata = os.environ.get("SLM_TESTDATA") or sys.argv[2]
    examples = sys.argv[4] if len(sys.argv) > 4 else "50"
    model = os.path.join(testdata, "models", "phi3-tiny-vocab-q8_0.gguf")
    if not os.path.exists(model):
        if os.environ.get("SLM_TESTDATA_REQUIRED"):
            sys.exit(f"test data missing: {model}")
        print(f"skipped: no test data at {model} (set SLM_TESTDATA)")
        sys.exit(77)
    server = subprocess.Popen([slm, "serve", model, "--port", "0", "-c", "256"], stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in server.stderr:
            m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "slm serve did not say where it listens"
        fuzz = subprocess.run([sys.executable, "-m", "schemathesis.cli", "run", schema, "--url",
                               f"http://127.0.0.1:{port}", "--checks", "not_a_server_error", "--max-examples", examples,
                               "--no-color"], capture_output=True, text=True)
        print(fuzz.stdout[-6000:])
        print(fuzz.stderr[-2000:], file=sys.stderr)
        assert fuzz.returncode == 0, f"schemathesis found failures (exit {fuzz.returncode})"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200, "the server is not answering after the fuzzing"
        assert server.poll() is None, "the server exited during the fuzzing"
    finally:
        server.terminate()
        assert server.wait(timeout=60) == 0, "slm serve did not exit 0 on SIGTERM"


if __name__ == "__main__":
    main()
