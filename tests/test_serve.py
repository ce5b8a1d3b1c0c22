"""HTTP serving: the API's replies, limits with clear errors, batching of concurrent requests, fault isolation."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

import slcvae
from slcvae.serving.app import ServeConfig, create_app
from tests.test_api import run_dir  # noqa: F401 - the module-scoped trained model


@pytest.fixture
def gen(run_dir):  # noqa: F811
    return slcvae.Generator.from_pretrained(run_dir, seed=0)


def test_generate_model_health_page(gen):
    with TestClient(create_app(gen, name="tiny")) as client:
        reply = client.post("/v1/generate", json={"sources": ["hello", ["hi", "ask the time"]], "n": 3})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert [len(row) for row in body["samples"]] == [3, 3]
        # Hugging Face's name for n, and the same samples as the Python API for the same seed
        same = {"sources": ["hello"], "num_return_sequences": 4, "do_sample": True, "top_k": 5, "seed": 3}
        reply = client.post("/v1/generate", json=same)
        assert reply.status_code == 200, reply.text
        assert reply.json()["samples"] == gen.generate(["hello"], num_return_sequences=4, do_sample=True, top_k=5, seed=3)
        assert body["model"] == "tiny" and body["elapsed_ms"] > 0 and body["drawn"] is None
        # distinct outputs: the API's, with the draws per source
        same.update(distinct=True, top_k=2, max_draws=8)
        reply = client.post("/v1/generate", json=same).json()
        api = gen.generate(["hello"], num_return_sequences=4, do_sample=True, top_k=2, distinct=True, max_draws=8, seed=3)
        assert reply["samples"] == api and reply["drawn"] == gen.last_drawn and 4 <= reply["drawn"][0] <= 8
        assert len(set(api[0])) == len(api[0])
        info = client.get("/v1/model").json()
        assert (info["family"], info["limits"]["max_n"], info["config"]["model"]["latent"]) == ("slcvae", 50, 4)
        assert client.get("/health").json()["status"] == "ok"
        page = client.get("/")
        assert page.status_code == 200 and "/v1/generate" in page.text
        assert "/v1/generate" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"sources": ["hi"], "n": 51}, "n", "less than or equal to 50"),
        ({"sources": []}, "sources", "at least 1"),
        ({"sources": ["hi"] * 65}, "sources", "at most 64"),
        ({"sources": ["x" * 2001]}, "sources", "at most 2000 characters"),
        ({"sources": ["hi"], "max_new_tokens": 101}, "max_new_tokens", "less than or equal to 100"),
        ({"sources": ["hi"], "temperature": 0}, "temperature", "greater than 0"),
        ({"sources": ["hi"], "colour": "red"}, "colour", "Extra inputs"),
        ({"sources": ["hi"], "latent": "posterior"}, "targets", "one target per source"),
        ({"sources": ["hi"], "num_return_sequences": 51}, "num_return_sequences", "less than or equal to 50"),
        ({"sources": ["hi"], "noise": 0.5}, "noise", "seq2seq decoding baseline"),  # this model is an SLCVAE
        ({"sources": ["hi"], "num_beam_groups": 2}, "num_beam_groups", "seq2seq decoding baseline"),
        ({"sources": ["hi"], "lm": "/etc"}, "lm", "not one of this server's language models"),
        ({"sources": ["hi"], "batch_size": 3}, "batch_size", "Extra inputs"),
        ({"sources": ["hi"], "num_beams": 21}, "num_beams", "less than or equal to 20"),
    ],
)
def test_limits_answer_422_naming_the_field(gen, body, field, words):
    with TestClient(create_app(gen)) as client:
        reply = client.post("/v1/generate", json=body)
    assert reply.status_code == 422, reply.text
    assert field in reply.text and words in reply.text


def test_body_size_and_malformed_json(gen):
    with TestClient(create_app(gen, ServeConfig(max_body_bytes=200))) as client:
        big = client.post(
            "/v1/generate", content=json.dumps({"sources": ["hi " * 100]}), headers={"content-type": "application/json"}
        )
        assert big.status_code == 413 and "200 bytes" in big.json()["detail"]
        streamed = client.post(
            "/v1/generate", content=iter([b'{"sources": ["', b"a" * 300, b'"]}']), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        bad = client.post("/v1/generate", content=b'{"sources": ["hi"', headers={"content-type": "application/json"})
        assert bad.status_code == 422 and "json" in bad.text.lower()


def test_concurrent_requests_share_batches_and_a_failure_stays_local(gen, monkeypatch):
    with TestClient(create_app(gen, ServeConfig(max_wait_ms=100))) as client:
        with ThreadPoolExecutor(16) as pool:
            replies = list(
                pool.map(lambda i: client.post("/v1/generate", json={"sources": [f"ask the time {i}"], "n": 2}), range(16))
            )
        assert [r.status_code for r in replies] == [200] * 16
        batches = client.get("/health").json()["batches"]
        assert batches < 16  # 16 requests, fewer forward passes

        real = gen.generate

        def flaky(sources, **kwargs):
            if "boom" in sources:
                raise RuntimeError("injected fault")
            return real(sources, **kwargs)

        monkeypatch.setattr(gen, "generate", flaky)
        failed = client.post("/v1/generate", json={"sources": ["boom"], "n": 2, "seed": 1})
        assert failed.status_code == 500 and "injected fault" in failed.json()["detail"]
        assert client.post("/v1/generate", json={"sources": ["hello"], "n": 2}).status_code == 200


def test_seeded_requests_repeat(gen):
    with TestClient(create_app(gen)) as client:
        body = {"sources": ["hello", "ask the time"], "n": 4, "do_sample": True, "seed": 5}
        assert (
            client.post("/v1/generate", json=body).json()["samples"] == client.post("/v1/generate", json=body).json()["samples"]
        )
