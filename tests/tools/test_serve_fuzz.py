#!/usr/bin/env python3
"""Property-based API fuzzing of a live `slm serve` with schemathesis
(docs/openapi.yaml): valid and invalid requests for every endpoint; no
answer may be a server error (5xx) and the server must still be up after.

Usage: test_serve_fuzz.py SLM_BINARY TESTDATA_DIR SCHEMA [MAX_EXAMPLES]   (SLM_TESTDATA overrides the folder)
Needs schemathesis (.ci/deps installs it with pip). Exit status 77 (CTest:
skipped) only when the test data is absent."""
import http.client
import subprocess
import sys

import serve_harness


def main():
    model = serve_harness.test_model(sys.argv[2])
    schema = sys.argv[3]
    examples = sys.argv[4] if len(sys.argv) > 4 else "50"
    with serve_harness.Server(sys.argv[1], model, "-c", "256") as server:
        port = server.port
        fuzz = subprocess.run([sys.executable, "-m", "schemathesis.cli", "run", schema, "--url",
                               f"http://127.0.0.1:{port}", "--checks", "not_a_server_error", "--max-examples", examples,
                               "--no-color"], capture_output=True, text=True)
        print(fuzz.stdout[-6000:])
        print(fuzz.stderr[-2000:], file=sys.stderr)
        assert fuzz.returncode == 0, f"schemathesis found failures (exit {fuzz.returncode})"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200, "the server is not answering after the fuzzing"
        assert server.process.poll() is None, "the server exited during the fuzzing"


if __name__ == "__main__":
    main()
