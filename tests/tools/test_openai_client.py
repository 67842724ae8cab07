#!/usr/bin/env python3
"""The official `openai` Python client, unchanged, against `slm serve`: chat
(non-streaming and streaming), completions, the models list, an error case.

Usage: test_openai_client.py SLM_BINARY TESTDATA_DIR   (SLM_TESTDATA overrides the folder)
Needs the `openai` package (.ci/deps installs it with pip). Exit status 77
(CTest: skipped) only when the test data is absent."""
import sys

import serve_harness

try:
    import openai
except ImportError:
    sys.exit("the openai package is missing: python3 -m pip install openai==1.109.1 (.ci/deps does)")


def main():
    model = serve_harness.test_model(sys.argv[2])
    with serve_harness.Server(sys.argv[1], model, "-c", "512") as server:
        port = server.port
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)

        models = client.models.list()
        assert len(models.data) == 1 and models.data[0].object == "model", models
        name = models.data[0].id

        question = [{"role": "user", "content": "What is the capital of France?"}]
        chat = client.chat.completions.create(model=name, messages=question, max_tokens=16, temperature=0)
        answer = chat.choices[0].message.content
        assert chat.choices[0].message.role == "assistant" and answer, chat
        assert chat.choices[0].finish_reason == "length", chat
        assert chat.usage.completion_tokens == 16, chat.usage

        pieces, finish, usage = [], None, None
        for chunk in client.chat.completions.create(model=name, messages=question, max_tokens=16, temperature=0,
                                                    stream=True, stream_options={"include_usage": True}):
            if chunk.usage:
                usage = chunk.usage
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                finish = choice.finish_reason or finish
        assert "".join(pieces) == answer, (pieces, answer)
        assert finish == "length" and usage.completion_tokens == 16, (finish, usage)

        done = client.completions.create(model=name, prompt="Once upon a time", max_tokens=8, temperature=0)
        assert done.object == "text_completion" and done.choices[0].text, done

        try:
            client.chat.completions.create(model=name, messages=question, temperature="hot")
            raise AssertionError("a bad temperature was accepted")
        except openai.BadRequestError as e:
            assert e.status_code == 400 and "temperature" in str(e), e
        print("openai client: models, chat, chat streaming, completions and a 400 all as expected")


if __name__ == "__main__":
    main()
