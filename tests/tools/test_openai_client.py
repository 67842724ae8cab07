#!/usr/bin/env python3
"""The official `openai` Python client, unchanged, against `slm serve`: chat
(non-streaming and streaming), completions, the models list, an error case —
on the test model, then on a real one (SmolLM2-135M-Instruct, whose
completion of "The capital of France is" must name Paris) served with four slots, where four chats sent at
once each get the answer they get alone.

Usage: test_openai_client.py SLM_BINARY TESTDATA_DIR   (SLM_TESTDATA overrides the folder)
Needs the `openai` package (.ci/deps installs it with pip). Exit status 77
(CTest: skipped) only when the test data is absent; the real model is
required when SLM_MODELS_REQUIRED is set (.ci/run)."""
import concurrent.futures
import sys

import serve_harness

try:
    import openai
except ImportError:
    sys.exit("the openai package is missing: python3 -m pip install openai==1.109.1 (.ci/deps does)")

QUESTIONS = ["What is the capital of France?", "Name three animals.", "What color is the sky?", "Say hello."]


def ask(client, name, question):
    chat = client.chat.completions.create(model=name, messages=[{"role": "user", "content": question}],
                                          max_tokens=16, temperature=0)
    return chat.choices[0].message.content


def exercise(client, name, random_weights):
    """The checks on one server; returns the greedy answer to QUESTIONS[0].
    A random-weight model never ends its turn within 16 tokens; a real one may."""
    question = [{"role": "user", "content": QUESTIONS[0]}]
    chat = client.chat.completions.create(model=name, messages=question, max_tokens=16, temperature=0)
    answer = chat.choices[0].message.content
    assert chat.choices[0].message.role == "assistant" and answer, chat
    assert chat.choices[0].finish_reason in (("length",) if random_weights else ("length", "stop")), chat
    assert chat.usage.completion_tokens == 16 if random_weights else 0 < chat.usage.completion_tokens <= 16, chat.usage

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
    assert finish == chat.choices[0].finish_reason and usage.completion_tokens == chat.usage.completion_tokens, (
        finish, usage)

    done = client.completions.create(model=name, prompt="Once upon a time", max_tokens=8, temperature=0)
    assert done.object == "text_completion" and done.choices[0].text, done

    try:
        client.chat.completions.create(model=name, messages=question, temperature="hot")
        raise AssertionError("a bad temperature was accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and "temperature" in str(e), e
    return answer


def main():
    slm = sys.argv[1]
    with serve_harness.Server(slm, serve_harness.test_model(sys.argv[2]), "-c", "512") as server:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="unused", max_retries=0)
        models = client.models.list()
        assert len(models.data) == 1 and models.data[0].object == "model", models
        exercise(client, models.data[0].id, True)
        print("openai client on the test model: models, chat, chat streaming, completions and a 400 as expected")
    real = serve_harness.real_model()
    if real is None:
        return
    with serve_harness.Server(slm, real, "-c", "1024", "-np", "4") as server:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="unused", max_retries=0)
        name = client.models.list().data[0].id
        answer = exercise(client, name, False)
        fact = client.completions.create(model=name, prompt="The capital of France is", max_tokens=8, temperature=0)
        assert "Paris" in fact.choices[0].text, fact
        alone = [ask(client, name, q) for q in QUESTIONS]
        with concurrent.futures.ThreadPoolExecutor(len(QUESTIONS)) as pool:
            together = list(pool.map(lambda q: ask(client, name, q), QUESTIONS))
        assert together == alone, (together, alone)
        print(f"openai client on {name}: as expected; it answered {answer!r}; four at once answered as alone")


if __name__ == "__main__":
    main()
