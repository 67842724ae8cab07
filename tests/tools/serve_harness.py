"""What the Python tests of `slm serve` share: the test model (or CTest's
"skipped" status when the test data is absent) and a live server on a free
port that must exit 0 on SIGTERM."""
import os
import re
import subprocess
import sys

SKIPPED = 77  # CTest's SKIP_RETURN_CODE for these tests


def test_model(testdata_arg):
    """testdata/models/phi3-tiny-vocab-q8_0.gguf (SLM_TESTDATA overrides the
    folder); exits with SKIPPED when it is absent, or fails when
    SLM_TESTDATA_REQUIRED says it must be there."""
    testdata = os.environ.get("SLM_TESTDATA") or testdata_arg
    model = os.path.join(testdata, "models", "phi3-tiny-vocab-q8_0.gguf")
    if not os.path.exists(model):
        if os.environ.get("SLM_TESTDATA_REQUIRED"):
            sys.exit(f"test data missing: {model}")
        print(f"skipped: no test data at {model} (set SLM_TESTDATA)")
        sys.exit(SKIPPED)
    return model


def real_model():
    """SmolLM2-135M-Instruct from slm's model folder ($SLM_MODELS, default
    ~/.cache/slm/models; tools/fetch-models puts it there): None when it is
    absent, a failure when SLM_MODELS_REQUIRED says it must be there."""
    folder = os.environ.get("SLM_MODELS") or os.path.expanduser("~/.cache/slm/models")
    model = os.path.join(folder, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(model):
        if os.environ.get("SLM_MODELS_REQUIRED"):
            sys.exit(f"real model missing: {model} (tools/fetch-models)")
        print(f"note: no real model at {model}; the real-model half is left out (tools/fetch-models)")
        return None
    return model


class Server:
    """`slm serve MODEL --port 0 ARGS...` for a `with` block: .port is where
    it listens, .pid its process; leaving the block sends SIGTERM and
    requires exit status 0."""

    def __init__(self, slm, model, *args):
        self.process = subprocess.Popen([slm, "serve", model, "--port", "0", *args], stderr=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        self.port = None
        for line in self.process.stderr:
            m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.process.kill()
            raise AssertionError("slm serve did not say where it listens")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        status = self.process.wait(timeout=60)
        if exc[0] is None:
            assert status == 0, f"slm serve exited {status} on SIGTERM, not 0"
        return False
