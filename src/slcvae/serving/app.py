"""HTTP serving: `POST /v1/generate` with dynamic batching, `GET /health`, `GET /v1/model`, a page at `/`.

Concurrent requests are batched: a request waits in a queue; the batcher takes the first one,
collects more for up to `max_wait_ms` or until `max_batch_sources` sources, and runs one
`Generator.generate` call per group of requests with the same decoding options (a request with a
`seed` runs alone, so its samples repeat exactly). Generation runs in one worker thread, so the
event loop keeps accepting requests while a batch decodes; the next batch is whatever queued
meanwhile. Limits answer 413 (body size) or 422 (naming the field and the limit); an error inside
one batch fails its requests with 500 and the server goes on.

No `from __future__ import annotations` here: FastAPI reads the request model defined inside
`create_app` from the endpoint's live annotations.
"""

import asyncio
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from functools import partial
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model

from slcvae.errors import InputError
from slcvae.generation.config import FIELDS, TYPES
from slcvae.generator import Generator


@dataclass
class ServeConfig:
    max_body_bytes: int = 1_000_000  # 413 above this: 1 MB holds hundreds of long dialogues
    max_sources: int = 64  # sources per request (422 above)
    max_n: int = 50  # outputs per source (422 above): the paper's protocol needs 10
    max_source_chars: int = 2000  # characters per source turn (422 above)
    max_new_tokens: int = 100  # the most tokens a request may ask for per output
    max_batch_sources: int = 256  # sources decoded in one forward pass (across requests)
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company: latency for throughput
    timeout_s: float = 60.0  # a request not answered by then gets 503; the server goes on
    lms: tuple[str, ...] = ()  # language-model folders a request may name as `lm` (MMI); no others are read
    max_beams: int = 20  # num_beams and num_beam_groups at most: a beam's cost grows with its width


# Generation options a request may not set: the server decides how many sources share a forward pass.
SERVER_SIDE = ("batch_size",)


def request_fields(cfg: ServeConfig) -> dict[str, Any]:
    """The request's decoding fields, derived from GenerationConfig: its names, aliases, ranges and help; None
    means the model's default (its generation_config.json). The server's limits tighten some ranges."""
    limits = {"num_return_sequences": cfg.max_n, "max_new_tokens": cfg.max_new_tokens,
              "min_new_tokens": cfg.max_new_tokens, "num_beams": cfg.max_beams, "num_beam_groups": cfg.max_beams,
              "max_draws": 10 * cfg.max_n}  # fmt: skip
    fields: dict[str, Any] = {}
    for name, f in FIELDS.items():
        if name in SERVER_SIDE:
            continue
        m = f.metadata
        kind = TYPES[name]
        if m["choices"]:
            kind = Literal[m["choices"]]
        le = min(v for v in (m["le"], limits.get(name)) if v is not None) if m["le"] or name in limits else None
        names = AliasChoices(name, *m["aliases"]) if m["aliases"] else None
        fields[name] = (kind | None, Field(None, ge=m["ge"], gt=m["gt"], le=le, validation_alias=names,
                                           description=f"{m['help']} (default {f.default})"))  # fmt: skip
    return fields


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes, whether announced by Content-Length or streamed.

    A body without Content-Length (chunked) is read here up to the limit, then replayed to the app.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = JSONResponse({"detail": f"request body over the limit of {self.limit} bytes"}, status_code=413)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                return await too_large(scope, receive, send)
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await too_large(scope, receive, send)
            more = message.get("more_body", False)
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


class Batcher:
    """Collects queued requests into batches and runs them on one worker thread."""

    def __init__(self, generator: Generator, cfg: ServeConfig):
        self.generator, self.cfg = generator, cfg
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slcvae-generate")
        self.batches = 0  # batches run so far (GET /health), to see batching at work

    async def submit(self, sources: list, options: dict[str, Any]) -> list[list[str]]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((sources, options, future))
        return await future

    async def collect(self) -> list[tuple]:
        """The first waiting request and whatever joins it within max_wait_ms, up to max_batch_sources."""
        loop = asyncio.get_running_loop()
        items = [await self.queue.get()]
        count, deadline = len(items[0][0]), loop.time() + self.cfg.max_wait_ms / 1000
        while count < self.cfg.max_batch_sources:
            try:
                item = (
                    self.queue.get_nowait()
                    if self.queue.qsize()
                    else await asyncio.wait_for(self.queue.get(), deadline - loop.time())
                )
            except TimeoutError:
                break
            items.append(item)
            count += len(item[0])
        return items

    async def run(self) -> None:
        while True:
            items = await self.collect()
            groups: dict[Any, list[tuple]] = defaultdict(list)
            for item in items:  # one generate call per decoding setting; a seeded request alone
                options = item[1]
                setting = tuple(sorted((k, v) for k, v in options.items() if k != "targets"))
                key = (id(item) if options.get("seed") is not None else None, setting)
                groups[key].append(item)
            for group in groups.values():
                await self.answer(group)

    def generate(self, sources: list, options: dict[str, Any]) -> tuple[list[list[str]], list[int]]:
        """One generate call on the worker thread, with the draws per source it made (read before the next call)."""
        samples = self.generator.generate(sources, **options)
        return samples, self.generator.last_drawn

    async def answer(self, group: list[tuple]) -> None:
        """One generate call for a group of requests with the same options; any error fails only this group."""
        try:
            sources = [s for item in group for s in item[0]]
            options = {k: v for k, v in group[0][1].items() if k != "targets"}
            if "targets" in group[0][1]:
                options["targets"] = [t for item in group for t in item[1]["targets"]]
            call = partial(self.generate, sources, options)
            samples, drawn = await asyncio.get_running_loop().run_in_executor(self.executor, call)
        except Exception as err:  # noqa: BLE001 - a failing batch answers its own requests and the server goes on
            for *_, future in group:
                if not future.done():
                    future.set_exception(err)
            return
        finally:
            self.batches += 1
        at = 0
        for item_sources, _, future in group:
            if not future.done():  # a request that timed out is gone
                future.set_result((samples[at : at + len(item_sources)], drawn[at : at + len(item_sources)]))
            at += len(item_sources)


def create_app(generator: Generator, cfg: ServeConfig | None = None, name: str = "") -> FastAPI:
    """The FastAPI app serving `generator`; `name` is what replies call the model (default: its family)."""
    cfg = cfg or ServeConfig()
    name = name or generator.config.model_name
    Turn = Annotated[str, Field(min_length=1, max_length=cfg.max_source_chars)]

    GenerateRequest = create_model(
        "GenerateRequest",
        __config__=ConfigDict(extra="forbid"),
        sources=(list[Turn | list[Turn]], Field(min_length=1, max_length=cfg.max_sources,
                                                description="strings (turns split at ` __eou__ `) or lists of turns")),
        targets=(list[Turn] | None, Field(None, description="latent=posterior: one target per source")),
        **request_fields(cfg),
    )  # fmt: skip

    class GenerateReply(BaseModel):
        samples: list[list[str]]
        model: str
        elapsed_ms: float
        drawn: list[int] | None = Field(None, description="distinct: outputs each source drew")

    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["batcher"] = batcher = Batcher(generator, cfg)
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="slcvae",
        version=__import__("slcvae").__version__,
        lifespan=lifespan,
        description="Diverse conditional text generation: N different outputs per source.",
    )
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)

    @app.post("/v1/generate", response_model=GenerateReply)
    async def generate(request: GenerateRequest) -> GenerateReply:  # type: ignore[valid-type]
        start = time.perf_counter()
        targets = len(request.targets or [])
        latent = request.latent or generator.generation_config.latent
        if latent == "posterior" and targets != len(request.sources):
            raise HTTPException(
                422, f"targets: latent=posterior needs one target per source ({len(request.sources)}), got {targets}"
            )
        if request.lm is not None and request.lm not in cfg.lms:
            raise HTTPException(422, f"lm: {request.lm!r} is not one of this server's language models (serve --lm)")
        options = request.model_dump(exclude={"sources"}, exclude_none=True)
        try:
            samples, drawn = await asyncio.wait_for(state["batcher"].submit(request.sources, options), cfg.timeout_s)
        except TimeoutError:
            raise HTTPException(503, f"not answered within {cfg.timeout_s} s; try again or send fewer sources") from None
        except InputError as err:
            raise HTTPException(422, str(err)) from None
        except Exception as err:  # noqa: BLE001 - answered as 500; the server itself goes on
            raise HTTPException(500, f"generation failed: {type(err).__name__}: {err}") from None
        elapsed = round(1000 * (time.perf_counter() - start), 2)
        distinct = request.distinct if request.distinct is not None else generator.generation_config.distinct
        return GenerateReply(samples=samples, model=name, elapsed_ms=elapsed, drawn=drawn if distinct else None)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        batcher = state.get("batcher")
        return {"status": "ok", "queued": batcher.queue.qsize() if batcher else 0, "batches": batcher.batches if batcher else 0}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        return {
            "model": name,
            "family": generator.config.model_name,
            "device": str(generator.device),
            "config": generator.config.to_dict(),
            "summary": generator.summary,
            "limits": asdict(cfg),
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return resources.files("slcvae.serving").joinpath("page.html").read_text(encoding="utf-8")

    return app
