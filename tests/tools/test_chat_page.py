#!/usr/bin/env python3
"""The chat page `slm serve` shows at /, in a real headless browser (Debian's
chromium, driven by selenium through chromium-driver): it loads, sends a
message, shows the streamed answer (as the API gives it); New chat clears
the page.

Usage: test_chat_page.py SLM_BINARY TESTDATA_DIR   (SLM_TESTDATA overrides the folder)
Needs chromium, chromium-driver (apt) and selenium (pip); .ci/deps installs
them. Exit status 77 (CTest: skipped) only when the test data is absent."""
import http.client
import json
import shutil
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

import serve_harness


def wait_until(what, predicate, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def check_page(port):
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        assert browser.title == "slm chat", browser.title

        # A message: the user's bubble, then the streamed answer, which must
        # read exactly as the API's own (greedy) answer to the same request.
        box = browser.find_element(By.ID, "input")
        box.send_keys("What is the capital of France?")
        browser.find_element(By.ID, "send").click()
        wait_until("the user's message", lambda: browser.find_elements(By.CSS_SELECTOR, ".msg.user"))
        assert browser.find_element(By.CSS_SELECTOR, ".msg.user").text == "What is the capital of France?"
        wait_until("the answer to finish", lambda: browser.find_elements(By.CSS_SELECTOR, ".msg.assistant")
                   and browser.find_element(By.ID, "send").is_enabled())
        shown = browser.find_element(By.CSS_SELECTOR, ".msg.assistant").text
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/chat/completions",
                     json.dumps({"messages": [{"role": "user", "content": "What is the capital of France?"}]}),
                     {"Content-Type": "application/json"})
        want = json.loads(conn.getresponse().read())["choices"][0]["message"]["content"]
        # The page shows text as the browser lays it out: compare words.
        assert shown.split() == want.split(), (shown, want)
        assert len(want.split()) > 10, want
        assert not browser.find_elements(By.CSS_SELECTOR, ".msg.error")
        assert not browser.find_element(By.ID, "stop").is_enabled()

        browser.find_element(By.ID, "new").click()
        assert not browser.find_elements(By.CSS_SELECTOR, ".msg")
        print(f"chat page: the streamed answer ({len(shown)} characters) as the API gives it; new chat cleared")
    finally:
        browser.quit()


def main():
    model = serve_harness.test_model(sys.argv[2])
    with serve_harness.Server(sys.argv[1], model, "-c", "1024", "-n", "100", "--ignore-eos", "--temp", "0") as server:
        check_page(server.port)


if __name__ == "__main__":
    main()
