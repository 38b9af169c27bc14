"""Start and stop the simulated county portal, in-process or from the command line.

In-process (tests, the demo)::

    async with run_portal(County(5000, seed=1), Behaviours(silent_cap=70)) as portal:
        portal.base_url          # "http://127.0.0.1:PORT"
        portal.layer_url(0)      # ".../arcgis/rest/services/Wake/FeatureServer/0"
        portal.county            # the County being served (publish/republish it)
        portal.behaviours        # mutable; read on every request
        portal.app.stats         # Stats: requests per kind, arrival times
        portal.cases             # the rezoning cases (publish them, read expected())
        portal.cases_url         # ".../planning/cases", the paginated case list
        portal.agendas_url       # ".../planning/agendas", the index of agenda PDFs
        portal.legistar_url      # ".../legistar/v1", the Legistar web API root

Command line: `python -m zoningsync.portal --host 127.0.0.1 --port 0 --parcels N
--seed S --crs {4326,2264,102100} --shape {wide,thin} --answer-cache-mb MB
--cases N --cases-seed S --legistar-client NAME
--behaviour key=value ...` prints the base URL
on stdout (one flushed line) once listening, logs to stderr, and serves until
SIGTERM or SIGINT.

Admin routes (JSON), for tests and the benchmark: POST `/_portal/publish`
{"fraction": 0.01, "seed": 1} answers the publish summary (counts, PINs; with
"warm": true, the answer cache first rebuilds what it held, see `answers`);
POST `/_portal/republish`; POST `/_portal/cases/publish` moves the rezoning cases
one meeting on (apart from the county: a county publish leaves the cases alone)
and answers what changed; GET `/_portal/cases` answers `Cases.expected()`;
POST `/_portal/behaviour` {key: value} answers all
behaviours; GET `/_portal/stats` {"requests": {kind: n}, "arrivals": [s, ...]};
POST `/_portal/stats/reset`; GET `/_portal/answers` the answer cache's counts;
POST `/_portal/hooks/send` {"url": receiver URL, "secret": "...", "count": n,
"layer": 0} sends n feature-service hooks at once, signed with the secret (unsigned
without one), and answers {"sent": n, "statuses": {"202": n}}.

In-process the answer cache is off (`answer_cache_mb=0`): tests edit a county's
columns in place. The command line serves with a 512 MB cache by default, as the
benchmark wants a server that costs no more per page than a static one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web

from zoningsync.portal.answers import AnswerCache
from zoningsync.portal.arcgis import SERVICE_PATH, FeatureService, Stats
from zoningsync.portal.behaviours import BehaviourError, Behaviours
from zoningsync.portal.cases import AGENDAS_PATH, CASES_PATH, Cases
from zoningsync.portal.changes import hook_payload, send_hook, server_gen
from zoningsync.portal.county import SHAPES, SUPPORTED_CRS, County
from zoningsync.portal.legistar import API_PATH, DEFAULT_CLIENT, LegistarApi
from zoningsync.portal.planning import PlanningSite

__all__ = ["Behaviours", "PortalApp", "RunningPortal", "main", "run_portal"]

log = logging.getLogger("zoningsync.portal")

CLI_ANSWER_CACHE_MB = 512
# Enough for any burst a test or the benchmark sends; a bound for a typo.
MAX_HOOKS_PER_SEND = 1000
HOOK_TIMEOUT_S = 30.0


class PortalApp:
    """The aiohttp application: ArcGIS, planning site, Legistar and admin routes, one
    worker thread."""

    def __init__(self, county: County, behaviours: Behaviours | None = None,
                 cases: Cases | None = None, legistar_client: str = DEFAULT_CLIENT,
                 answer_cache_mb: int = 0) -> None:
        self.county = county
        self.behaviours = behaviours if behaviours is not None else Behaviours()
        self.cases = cases if cases is not None else Cases(county)
        self.stats = Stats()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="portal")
        self.answers = AnswerCache(county, self.behaviours, answer_cache_mb << 20) \
            if answer_cache_mb > 0 else None
        self.service = FeatureService(county, self.behaviours, self.stats, self.worker,
                                      self.answers)
        self.planning = PlanningSite(self.cases, self.behaviours, self.stats, self.worker)
        self.legistar = LegistarApi(self.cases, self.stats, self.worker, legistar_client)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(self.service.routes())
        app.add_routes(self.planning.routes())
        app.add_routes(self.legistar.routes())
        app.add_routes([
            web.post("/_portal/publish", self.publish),
            web.post("/_portal/republish", self.republish),
            web.post("/_portal/cases/publish", self.publish_cases),
            web.get("/_portal/cases", self.expected_cases),
            web.post("/_portal/behaviour", self.set_behaviour),
            web.get("/_portal/stats", self.get_stats),
            web.post("/_portal/stats/reset", self.reset_stats),
            web.get("/_portal/answers", self.answer_stats),
            web.post("/_portal/hooks/send", self.send_hooks),
        ])
        return app

    async def _in_worker(self, work: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.worker, work, *args)

    async def publish(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            fraction, seed = float(body.get("fraction", 0.01)), int(body.get("seed", 1))
            summary = await self._in_worker(self.county.publish, fraction, seed)
        except (TypeError, ValueError) as exc:
            return _admin_error(str(exc))
        if body.get("warm") is True and self.answers is not None:
            summary["rewarmed"] = await self._in_worker(self.answers.refresh)
        log.info("published version %s: %s changed, %s deleted, %s added", summary["version"],
                 summary["changed"], summary["deleted"], summary["added"])
        return _answer(summary)

    async def republish(self, request: web.Request) -> web.Response:
        return _answer(await self._in_worker(self.county.republish))

    async def publish_cases(self, request: web.Request) -> web.Response:
        summary = await self._in_worker(self.cases.publish)
        log.info("published cases version %s: %s changed", summary["version"],
                 len(summary["changed"]))
        return _answer(summary)

    async def expected_cases(self, request: web.Request) -> web.Response:
        return _answer(await self._in_worker(self.cases.expected))

    async def set_behaviour(self, request: web.Request) -> web.Response:
        try:
            self.behaviours.update(await _json_body(request))
        except BehaviourError as exc:
            return _admin_error(str(exc))
        return _answer(self.behaviours.as_dict())

    async def get_stats(self, request: web.Request) -> web.Response:
        return _answer({"requests": self.stats.requests, "arrivals": self.stats.arrivals})

    async def reset_stats(self, request: web.Request) -> web.Response:
        self.stats.reset()
        return _answer({"reset": True})

    async def answer_stats(self, request: web.Request) -> web.Response:
        return _answer(None if self.answers is None else self.answers.stats())

    async def send_hooks(self, request: web.Request) -> web.Response:
        """Signed hooks for a receiver, as a county's ArcGIS would send them on edits."""
        body = await _json_body(request)
        url, secret, count, layer = (body.get("url"), body.get("secret"),
                                     body.get("count", 1), body.get("layer", 0))
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            return _admin_error("url must be the receiver's http(s) URL")
        if secret is not None and not isinstance(secret, str):
            return _admin_error("secret must be a string (or absent: unsigned hooks)")
        if (isinstance(count, bool) or not isinstance(count, int)
                or not 1 <= count <= MAX_HOOKS_PER_SEND):
            return _admin_error(f"count must be an integer from 1 to {MAX_HOOKS_PER_SEND}")
        if not isinstance(layer, int) or layer < 0:
            return _admin_error("layer must be a layer id")
        generation = await self._in_worker(server_gen, self.county)
        payload = hook_payload(f"{request.url.origin()}{SERVICE_PATH}", layer, [generation])
        timeout = aiohttp.ClientTimeout(total=HOOK_TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                codes = await asyncio.gather(*(send_hook(session, url, payload, secret)
                                               for _ in range(count)))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _admin_error(f"sending hooks failed: {type(exc).__name__}")
        log.info("sent %s hooks: %s", count, sorted(set(codes)))
        return _answer({"sent": count, "statuses": {str(c): codes.count(c) for c in set(codes)}})


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


def _answer(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _admin_error(message: str) -> web.Response:
    return web.Response(status=400, body=orjson.dumps({"error": message}),
                        content_type="application/json")


@dataclass
class RunningPortal:
    base_url: str
    county: County
    behaviours: Behaviours
    app: PortalApp

    def layer_url(self, layer: int) -> str:
        return f"{self.base_url}{SERVICE_PATH}/{layer}"

    @property
    def service_url(self) -> str:
        return self.base_url + SERVICE_PATH

    @property
    def cases(self) -> Cases:
        return self.app.cases

    @property
    def cases_url(self) -> str:
        return self.base_url + CASES_PATH

    @property
    def agendas_url(self) -> str:
        return self.base_url + AGENDAS_PATH

    @property
    def legistar_url(self) -> str:
        """The web API root; matters are under `{legistar_url}/{client}/matters`."""
        return self.base_url + API_PATH


@asynccontextmanager
async def run_portal(county: County, behaviours: Behaviours | None = None,
                     host: str = "127.0.0.1", port: int = 0, *, cases: Cases | None = None,
                     legistar_client: str = DEFAULT_CLIENT, answer_cache_mb: int = 0
                     ) -> AsyncIterator[RunningPortal]:
    """Serve the county (and its cases, by default `Cases(county)`) until the block
    ends; port 0 picks a free port."""
    portal = PortalApp(county, behaviours, cases, legistar_client, answer_cache_mb)
    runner = web.AppRunner(portal.application(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield RunningPortal(f"http://{host}:{bound}", county, portal.behaviours, portal)
    finally:
        await runner.cleanup()
        portal.worker.shutdown(wait=True, cancel_futures=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m zoningsync.portal`: serve a simulated county until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m zoningsync.portal",
                                     description="Serve a simulated county ArcGIS portal.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parcels", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crs", type=int, default=4326, choices=SUPPORTED_CRS)
    parser.add_argument("--shape", default="wide", choices=SHAPES,
                        help="wide: 14 fields, 5-13 vertices; thin: 8 fields, 5 vertices")
    parser.add_argument("--answer-cache-mb", type=int, default=CLI_ANSWER_CACHE_MB,
                        help="encoded answers kept per published version (0: none)")
    parser.add_argument("--cases", type=int, default=60, help="rezoning cases to generate")
    parser.add_argument("--cases-seed", type=int, default=1)
    parser.add_argument("--legistar-client", default=DEFAULT_CLIENT)
    parser.add_argument("--behaviour", action="append", default=[], metavar="KEY=VALUE",
                        help="e.g. pagination=false, silent_cap=70, http_429_rate=0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    behaviours = Behaviours()
    try:
        pairs = [item.split("=", 1) for item in args.behaviour]
        if any(len(pair) != 2 for pair in pairs):
            raise BehaviourError("--behaviour wants KEY=VALUE")
        behaviours.update(dict(pairs))
        if args.parcels < 1:
            raise BehaviourError("--parcels must be at least 1")
        if args.cases < 1:
            raise BehaviourError("--cases must be at least 1")
        if args.answer_cache_mb < 0:
            raise BehaviourError("--answer-cache-mb cannot be negative")
    except BehaviourError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve(args, behaviours))
    except OSError as exc:
        log.error("cannot serve on %s:%s: %s", args.host, args.port, exc)
        return 1
    return 0


async def _serve(args: argparse.Namespace, behaviours: Behaviours) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("generating %s %s parcels (seed %s, EPSG %s)", args.parcels, args.shape,
             args.seed, args.crs)
    county = await loop.run_in_executor(None, County, args.parcels, args.seed, args.crs,
                                        args.shape)
    cases = await loop.run_in_executor(None, Cases, county, args.cases, args.cases_seed)
    async with run_portal(county, behaviours, args.host, args.port, cases=cases,
                          legistar_client=args.legistar_client,
                          answer_cache_mb=args.answer_cache_mb) as portal:
        print(portal.base_url, flush=True)
        log.info("serving %s", portal.service_url)
        await stop.wait()
    log.info("stopped")
