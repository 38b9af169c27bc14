"""One run of one feed: lease, plan, fetch and stage, reconcile, merge, finish.

The producer yields pages; a small pool of workers reads and prepares each page
in the thread pool (records, geometry and hashing never run on the event loop)
and stages it by COPY, a bounded queue between them keeping memory flat. After
the fetch the run reconciles its count with the server's, sets aside duplicate
keys, decides what vanished upstream and merges the chunks whose hash changed.

A run that stops early (killed, cancelled, or failed on a fault that may pass)
keeps its staging: the next sync of the feed resumes it, fetching only the pages
missing from its ledger and redoing only the chunks whose checkpoint is stale,
unless the feed's row-shaping settings changed since (its fingerprint): then a
fresh full run replaces it. Every attempt has its `runs` row from before the plan,
and any failure ends in that row. A run that would retire more than the feed's
`max_retire_fraction` is held before merging, writing nothing.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from zoningsync.config import FeedConfig
from zoningsync.errors import (
    FetchError,
    SourceConfigError,
)
from zoningsync.feed_run import FeedRun
from zoningsync.http import Fetcher
from zoningsync.producers.arcgis.changes import ChangeSet, ChangeTracking, GenerationExpired
from zoningsync.producers.arcgis.layer import LayerInfo
from zoningsync.producers.arcgis.plan import FetchPlan
from zoningsync.producers.arcgis.producer import ArcgisProducer
from zoningsync.progress import Reporter
from zoningsync.records import FetchedPage, Kind, PreparedPage
from zoningsync.retire_guard import retire_guard
from zoningsync.store import bulk, changes, deletions, feeds, merge, runs, staging
from zoningsync.store.connect import Conn
from zoningsync.taskgroup import task_group

log = structlog.get_logger(__name__)

# Edits are re-read this far before the high-water mark: upstream edit dates are
# stamped when an edit starts, and a long edit session commits after later ones.
OVERLAP = timedelta(hours=1)
PREPARE_WORKERS = 2
QUEUE_PAGES = 4
MERGE_WORKERS = 2  # PostgreSQL does the merge work; two sessions use both cores
INDEX_BUILDERS = 2  # a first load's deferred indexes, built on both cores at its end
PREPARE_MODULE = "zoningsync.prepare"
# The page id of the features an extractChanges answer holds inline.
EXTRACT_PAGE = "x"
# Ids whose keys are asked of the server to check the stored id map: one request.
OID_MAP_SAMPLE = 16


@dataclass
class RunCursor:
    """What a run decided before fetching, saved so a resumed run continues alike."""

    mode: str
    plan: dict[str, Any]
    retirement: str
    layer_count: int
    oid_set_hash: str
    previous_mark: str | None
    notes: list[str] = field(default_factory=list)
    premerge: bool = False  # a first load: pages are stored as they are staged
    # --allow-mass-retire let this run's retirements through: a resume keeps that.
    mass_retire_allowed: bool = False
    # A change-tracking layer: the server generation this run brings the feed to
    # (a full read: the one seen before reading), and for a change read the
    # extract it applies: {"service_url", "layer_id", "since", "deleted_oids", "inline"}.
    server_gen: int | None = None
    changes: dict[str, Any] | None = None
    # An edit-date read whose deletions the stored id map found: the mapped ids
    # the layer lists no more (retirement "oids").
    vanished_oids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "plan": self.plan, "retirement": self.retirement,
            "layer_count": self.layer_count, "oid_set_hash": self.oid_set_hash,
            "previous_mark": self.previous_mark, "notes": self.notes,
            "premerge": self.premerge, "mass_retire_allowed": self.mass_retire_allowed,
            "server_gen": self.server_gen, "changes": self.changes,
            "vanished_oids": self.vanished_oids,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunCursor:
        return cls(
            mode=data["mode"], plan=data["plan"], retirement=data["retirement"],
            layer_count=int(data["layer_count"]), oid_set_hash=data["oid_set_hash"],
            previous_mark=data.get("previous_mark"), notes=list(data.get("notes", [])),
            premerge=bool(data.get("premerge", False)),
            mass_retire_allowed=bool(data.get("mass_retire_allowed", False)),
            server_gen=data.get("server_gen"), changes=data.get("changes"),
            vanished_oids=[int(oid) for oid in data.get("vanished_oids", [])],
        )


def oid_set_hash(oids: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, sorted(oids))).encode()).hexdigest()


class ArcgisRun(FeedRun[RunCursor]):
    """A run of an ArcGIS layer feed: pages of features, chunked merge."""

    def __init__(self, *, db_url: str, pool: asyncpg.Pool[Any], feed: FeedConfig,
                 fetcher: Fetcher, executor: Executor, reporter: Reporter) -> None:
        super().__init__(db_url=db_url, pool=pool, feed=feed, fetcher=fetcher,
                         executor=executor, reporter=reporter)
        self.producer = ArcgisProducer(feed, fetcher, self.stats)
        self.indexing: asyncio.Task[None] | None = None
        # A change read's extract, from planning to staging (a resumed run asks again).
        self.extracted: ChangeSet | None = None
        # A run recording a server generation merges its last batch of chunks in
        # the transaction that records it.
        self.final_batch: list[merge.ChunkState] = []
        # The preparing stage's imports (numpy, shapely, h3, pyproj), run in the
        # pool while the run connects and its deciding requests are out.
        self.preparing: asyncio.Future[Any] | None = None

    def _cursor_from_json(self, data: dict[str, Any]) -> RunCursor:
        return RunCursor.from_json(data)

    async def _prepare(self, conn: Conn) -> None:
        await bulk.ensure_secondary_indexes(conn)  # a load that died may have left none

    async def _settle(self) -> None:
        if self.indexing is not None:
            await self.indexing

    async def _abandon(self) -> None:
        if self.indexing is not None and not self.indexing.done():
            self.indexing.cancel()
            await asyncio.gather(self.indexing, return_exceptions=True)

    # -- planning ---------------------------------------------------------------

    async def _plan(self, conn: Conn, run_id: int, *, force_full: bool) -> RunCursor:
        self._import_preparing()
        cursor = await self._decide(conn, force_full=force_full or self.settings_changed)
        if cursor.premerge and await bulk.defer_secondary_indexes(conn):
            log.info("first load into an empty table: secondary indexes are built after it",
                     run=run_id)
        plan = FetchPlan.from_json(cursor.plan)
        await runs.save_plan(conn, run_id, mode=cursor.mode, cursor=cursor.to_json(),
                             expected=plan.expected, layer_count=cursor.layer_count)
        self.phase = "fetch"
        log.info("run planned", feed=self.feed.full_id, run=run_id, mode=cursor.mode)
        return cursor

    async def _decide(self, conn: Conn, *, force_full: bool) -> RunCursor:
        """Full or incremental, and which read: the run's whole plan, before any row.

        The requests that decide go out together: the layer's metadata and service
        root, its id list and the edit-date counts, each asked once. Only a feed
        whose last success recorded a server generation asks the service root
        first, since a change read then needs none of the others.
        """
        feed = self.feed
        last = await runs.last_success(conn, feed.full_id)
        since_full = await runs.runs_since_full(conn, feed.full_id)
        since_gen = (await changes.last_server_gen(conn, feed.full_id)
                     if feed.incremental in ("auto", "changes") else None)
        previous_mark = last.high_water_mark if last else None
        notes: list[str] = []
        same_settings = last is not None and last.fingerprint == self.fingerprint
        if last is not None and not same_settings:
            notes.append(f"the feed's settings that shape its rows changed since run {last.id}: "
                         "a full read")
            log.warning("the feed's settings changed since its last success; reading it all",
                        feed=feed.full_id, last_success=last.id)
        may_read_changes = (last is not None and same_settings and not force_full
                            and since_full < feed.full_refresh_every)
        mark = (previous_mark if may_read_changes and feed.incremental != "off" else None)
        if may_read_changes and since_gen is not None:
            assert last is not None
            tracking = await self._change_tracking()
            if tracking is not None:
                read = await self._change_read(conn, tracking, last, since_gen, notes)
                if read is not None:
                    return read
            listing = await self._listing(mark if tracking is None else None)
        else:
            async with task_group() as group:
                asked = group.create_task(self._change_tracking(), name="change-tracking")
                listed = group.create_task(self._listing(mark), name="layer-listing")
            tracking, listing = asked.result(), listed.result()
        layer, oids, edits = listing
        if feed.incremental == "edit_date" and layer.edit_date_field is None:
            raise SourceConfigError(
                f"{feed.source_file}: feeds.{feed.id}.incremental: 'edit_date' but the layer "
                "has no edit date field (editFieldsInfo.editDateField); use 'auto' or 'off'"
            )
        oid_hash = oid_set_hash(oids)
        layer_count = await self.producer.count(feed.where)  # the id list's length
        if (tracking is None and mark is not None and last is not None
                and layer.edit_date_field is not None):
            edited, strictly_new = edits
            if edited is None or strictly_new is None:
                notes.append("server refused edit-date queries; fell back to a full read")
            else:
                where, _ = edited
                deletions_possible = (
                    layer_count != last.layer_count
                    or oid_hash != last.oid_set_hash
                    or strictly_new[1] > 0
                )
                plan = await self.producer.plan(where)
                return RunCursor(
                    mode="incremental", plan=plan.to_json(),
                    retirement=(merge.Retirement.ABSENT_FROM_KEYS.value if deletions_possible
                                else merge.Retirement.QUARANTINED_ONLY.value),
                    layer_count=layer_count, oid_set_hash=oid_hash,
                    previous_mark=mark.isoformat(), notes=notes,
                )
        plan = await self.producer.plan(feed.where)
        return RunCursor(
            mode="full", plan=plan.to_json(),
            retirement=merge.Retirement.ABSENT_FROM_STAGING.value,
            layer_count=layer_count, oid_set_hash=oid_hash,
            previous_mark=previous_mark.isoformat() if previous_mark else None, notes=notes,
            premerge=not await merge.feed_has_features(conn, feed.full_id),
            server_gen=tracking.server_gen if tracking else None,
        )

    async def _listing(self, mark: datetime | None) -> tuple[
            LayerInfo, list[int], tuple[tuple[str, int] | None, tuple[str, int] | None]]:
        """The layer, its object ids and, from `mark` on, its edits: asked all at once.

        The edits since the mark minus the overlap are listed as ids (the read plans
        and reconciles from that list); those strictly after it are only counted.
        Whole seconds: a TIMESTAMP literal drops milliseconds, and the edit at the
        mark itself must not count as a new one.
        """
        producer = self.producer
        async with task_group() as group:
            layer = group.create_task(producer.layer(), name="layer")
            oids = group.create_task(producer.object_ids(self.feed.where), name="object-ids")
            if mark is not None:
                overlap = group.create_task(
                    producer.edited_since(mark - OVERLAP, list_ids=True), name="edited")
                strict = group.create_task(
                    producer.edited_since(mark.replace(microsecond=0) + timedelta(seconds=1)),
                    name="edited-after-mark")
        edits = (overlap.result(), strict.result()) if mark is not None else (None, None)
        return layer.result(), oids.result(), edits

    async def _change_tracking(self) -> ChangeTracking | None:
        """The layer's change tracking when the feed may use it (`auto`, `changes`)."""
        feed = self.feed
        if feed.incremental not in ("auto", "changes"):
            return None
        tracking = await self.producer.change_tracking()
        if tracking is None and feed.incremental == "changes" and self.producer.service_read:
            raise SourceConfigError(
                f"{feed.source_file}: feeds.{feed.id}.incremental: 'changes' but the service "
                "root has no ChangeTracking capability with server generations for this "
                "layer; use 'auto' or 'edit_date'")
        return tracking

    async def _change_read(self, conn: Conn, tracking: ChangeTracking,
                           last: runs.LastSuccess, since: int, notes: list[str]
                           ) -> RunCursor | None:
        """A read of what changed since the last success's generation `since`.

        None when the server keeps no changes that old: then a warning names it,
        and the run reads it all.
        """
        if not tracking.expired(since):
            try:
                found = await self.producer.extract_changes(tracking, since)
            except GenerationExpired:
                pass
            else:
                self.extracted = found
                cursor = RunCursor(
                    mode="incremental", plan={}, retirement="", notes=notes,
                    layer_count=last.layer_count or 0, oid_set_hash=last.oid_set_hash or "",
                    previous_mark=(last.high_water_mark.isoformat() if last.high_water_mark
                                   else None),
                    changes={"service_url": tracking.service_url,
                             "layer_id": tracking.layer_id, "since": since})
                self._apply_extract(cursor, found)
                return cursor
        self._note_expired(notes, since, tracking)
        return None

    def _note_expired(self, notes: list[str], since: int, tracking: ChangeTracking) -> None:
        oldest = (f"from generation {tracking.min_server_gen} on"
                  if tracking.min_server_gen is not None else "only newer ones")
        notes.append(f"server generation {since} expired (the layer keeps changes {oldest}): "
                     "a full read")
        log.warning("the stored server generation expired; reading the layer in full",
                    feed=self.feed.full_id, generation=since, oldest=tracking.min_server_gen)

    def _apply_extract(self, cursor: RunCursor, found: ChangeSet) -> None:
        """Make the cursor apply one extract answer: its pages, deletes and generation."""
        assert cursor.changes is not None
        inline = found.features is not None
        plan = self.producer.plan_for_oids(found.changed_oids, prefix="c")
        if inline:
            plan = replace(plan, expected=len(found.features or ()))
        cursor.plan = plan.to_json()
        cursor.server_gen = found.server_gen
        cursor.changes.update(inline=inline, deleted_oids=found.deleted_oids)
        cursor.retirement = merge.Retirement.DELETED_UPSTREAM.value
        if found.deleted_global_ids:
            # No map of global ids is kept: the key set finds what they deleted.
            cursor.retirement = merge.Retirement.ABSENT_FROM_KEYS.value
            cursor.notes.append(f"{len(found.deleted_global_ids)} deletes came as global ids: "
                                "the layer's keys were read to find them")

    # -- fetch ------------------------------------------------------------------

    async def _fetch(self, conn: Conn, run_id: int, cursor: RunCursor
                     ) -> None:
        done = await staging.staged_page_ids(conn, run_id)
        if (cursor.changes is not None and cursor.changes["inline"]
                and EXTRACT_PAGE not in done and self.extracted is None):
            await self._extract_again(conn, run_id, cursor)
        plan = FetchPlan.from_json(cursor.plan)
        self.reporter.phase("fetch", len(plan.pages))
        self.reporter.advance(len(done & {p.page_id for p in plan.pages}))
        backlog = await staging.pages_to_premerge(conn, run_id) if cursor.premerge else []
        pages = self.producer.pages(plan, done)
        if cursor.changes is not None and cursor.changes["inline"]:
            pages = self._extracted_pages(done)
        await self._stage_pages(run_id, pages, premerge=cursor.premerge, backlog=backlog)
        if cursor.premerge:
            # Built on a session of its own while the run reconciles, dedupes and
            # checkpoints; writes to features (a reconcile's refetched pages, the
            # merge) simply wait for it.
            self.indexing = asyncio.create_task(self._index_first_load(),
                                                name="index-first-load")
        if cursor.changes is None:  # a change read lists no object ids of the layer
            await self._reconcile(conn, run_id, plan, premerge=cursor.premerge)
        if cursor.retirement == merge.Retirement.ABSENT_FROM_KEYS.value:
            vanished = (await self._vanished_oids(conn, run_id) if cursor.changes is None
                        else None)
            if vanished is None:
                await self._stage_keys(conn, run_id)
            else:
                cursor.retirement = merge.Retirement.ABSENT_FROM_OIDS.value
                cursor.vanished_oids = vanished
                await runs.save_cursor(conn, run_id, cursor.to_json())
        await staging.analyze_staging(conn)
        async with conn.transaction():
            await merge.set_aside_duplicates(conn, run_id, self.feed.full_id,
                                             first_load=cursor.premerge)
            await runs.set_phase(conn, run_id, "merge")
        self.phase = "merge"

    async def _extracted_pages(self, done: set[str]) -> AsyncIterator[FetchedPage]:
        if EXTRACT_PAGE not in done and self.extracted is not None:
            yield self.producer.changed_page(self.extracted, EXTRACT_PAGE)

    async def _extract_again(self, conn: Conn, run_id: int, cursor: RunCursor) -> None:
        """A change read resumed before its extract's features were staged asks again.

        The answer may have grown since (and its generation with it); it replaces
        the one in the cursor. A generation that expired meanwhile means a full read.
        """
        assert cursor.changes is not None
        tracking = await self.producer.change_tracking()
        since = int(cursor.changes["since"])
        if tracking is not None and not tracking.expired(since):
            try:
                self.extracted = await self.producer.extract_changes(tracking, since)
            except GenerationExpired:
                pass
            else:
                self._apply_extract(cursor, self.extracted)
                await runs.save_cursor(conn, run_id, cursor.to_json())
                return
        if tracking is not None:
            self._note_expired(cursor.notes, since, tracking)
        plan = await self.producer.plan(self.feed.where)
        cursor.mode, cursor.plan, cursor.changes = "full", plan.to_json(), None
        cursor.retirement = merge.Retirement.ABSENT_FROM_STAGING.value
        cursor.server_gen = tracking.server_gen if tracking else None
        await runs.save_plan(conn, run_id, mode=cursor.mode, cursor=cursor.to_json(),
                             expected=plan.expected, layer_count=cursor.layer_count)

    async def _index_first_load(self) -> None:
        """Build the indexes a first load deferred, then give the planner statistics."""
        await bulk.build_secondary_indexes(self.pool, sessions=INDEX_BUILDERS)
        async with self.pool.acquire() as conn:
            await bulk.analyze_features(conn)

    def _import_preparing(self) -> None:
        """Start importing the preparing stage in the pool (once; the runtime may have)."""
        if self.preparing is None:
            self.preparing = asyncio.get_running_loop().run_in_executor(
                self.executor, importlib.import_module, PREPARE_MODULE)

    async def _prepare_fetched(self) -> Callable[..., PreparedPage]:
        """`prepare.prepare_fetched`, once the pool has imported it (never on the loop)."""
        self._import_preparing()
        assert self.preparing is not None
        module = await self.preparing
        prepare: Callable[..., PreparedPage] = module.prepare_fetched
        return prepare

    async def _stage_pages(self, run_id: int, pages: AsyncIterator[FetchedPage], *,
                           premerge: bool, backlog: Sequence[str] = ()) -> None:
        """Fetch → prepare (thread pool) → COPY, with a bounded queue in between.

        With `premerge` (a first load), each page is stored as it is staged; a page
        that could not be (a key stored twice) goes to a further session that
        stores it row by row while the next ones are fetched: `merge.premerge_page`.
        """
        queue: asyncio.Queue[FetchedPage | None] = asyncio.Queue(maxsize=QUEUE_PAGES)
        staged: asyncio.Queue[str | None] = asyncio.Queue()
        for page_id in backlog:
            staged.put_nowait(page_id)
        loop = asyncio.get_running_loop()
        prepare = functools.partial(await self._prepare_fetched(),
                                    h3_resolution=self.feed.h3_resolution)

        async def produce() -> None:
            async for page in self.until_paused(pages):
                await queue.put(page)
            for _ in range(PREPARE_WORKERS):
                await queue.put(None)

        async def consume() -> None:
            async with self.pool.acquire() as conn:
                if premerge:
                    await staging.enable_features_copy(conn)
                while (page := await queue.get()) is not None:
                    prepared = await loop.run_in_executor(self.executor, prepare, page)
                    stored = await staging.stage_page(
                        conn, feed=self.feed, run_id=run_id, page=prepared,
                        records=len(page.features), stats=self.delta, store=premerge,
                    )
                    if premerge and not stored:
                        staged.put_nowait(page.page_id)
                    self.reporter.advance(1, len(page.features))

        async def store() -> None:
            async with self.pool.acquire() as conn:
                while (page_id := await staged.get()) is not None:
                    await merge.premerge_page(conn, run_id, self.feed, page_id)

        async with task_group() as outer:
            if premerge:
                outer.create_task(store(), name="premerge-pages")
            async with task_group() as group:
                group.create_task(produce(), name="fetch-pages")
                for index in range(PREPARE_WORKERS):
                    group.create_task(consume(), name=f"stage-pages-{index}")
            staged.put_nowait(None)
        self.pause_point()  # the pages fetched before a pause are staged: stop now

    async def _reconcile(self, conn: Conn, run_id: int, plan: FetchPlan, *,
                         premerge: bool) -> None:
        """Every object the server lists must be staged or quarantined; fetch the gaps once."""
        listed = await self.producer.object_ids(plan.where)
        missing = await staging.staged_oids_missing(conn, run_id, listed)
        if not missing:
            return
        log.warning("count shortfall; fetching the missing objects by id", run=run_id,
                    missing=len(missing))
        fill = self.producer.plan_for_oids(missing, prefix=f"fill{len(missing)}")
        done = await staging.staged_page_ids(conn, run_id)
        await self._stage_pages(run_id, self.producer.pages(fill, done), premerge=premerge)
        still = await staging.staged_oids_missing(conn, run_id, listed)
        if still:
            sample = ", ".join(str(oid) for oid in still[:10])
            raise FetchError(
                f"the server lists {len(listed)} objects but {len(still)} never arrived "
                f"after a retry by id (object ids {sample}...)"
            )

    async def _vanished_oids(self, conn: Conn, run_id: int) -> list[int] | None:
        """The stored features' ids the layer lists no more; None: read its keys instead.

        After the run's pages are staged. The stored id map must lack no listed id
        but those the run read itself and records the feed quarantined, never
        stored (else ids were renumbered, or the map is stale), hold one id per
        stored feature, be untouched by rollbacks since the last full read, and
        give a sample of ids spread over the list the keys the server gives them
        (a renumbering within the same ids). One join of the list with the map,
        and one small request.
        """
        feed_id = self.feed.full_id
        listed = await self.producer.object_ids(self.feed.where)
        unknown, vanished = await deletions.unmatched_oids(conn, feed_id, listed)
        unread = await staging.staged_oids_missing(conn, run_id, unknown)
        map_rows = len(listed) - len(unknown) + len(vanished)
        held = (not await deletions.never_quarantined(conn, feed_id, unread)
                and await deletions.map_may_stand(conn, feed_id, map_rows))
        if held and listed:
            step = max(1, len(listed) // OID_MAP_SAMPLE)
            mapped = await deletions.mapped_keys(conn, run_id, feed_id, listed[::step])
            upstream = await self.producer.keys_of(list(mapped)) if mapped else {}
            held = all(upstream.get(oid) == key for oid, key in mapped.items())
        if not held:
            log.info("the stored object ids do not match the layer's (renumbered?): "
                     "reading its keys to find deletions", feed=feed_id, run=run_id)
            return None
        return vanished

    async def _stage_keys(self, conn: Conn, run_id: int) -> None:
        """The layer's whole key set, for the deletion diff of an incremental run."""
        await staging.clear_staged_keys(conn, run_id)
        self.reporter.phase("keys", None)
        async for keys in self.until_paused(self.producer.keys(self.feed.where)):
            present = [k for k in keys if k is not None]
            await staging.stage_keys(conn, run_id, present)
            self.reporter.advance(1, len(keys))
        self.pause_point()

    # -- merge and finish --------------------------------------------------------

    async def _merge(self, conn: Conn, run_id: int, cursor: RunCursor, *,
                     allow_mass_retire: bool) -> str | None:
        """Merge the changed chunks; or, writing nothing, say why the run is held."""
        if cursor.premerge and await merge.checkpoint_stored_first_load(
                conn, run_id, self.feed.full_id):
            self.reporter.phase("merge", 0)
            return None
        how = merge.Retirement(cursor.retirement)
        deleted = (cursor.changes["deleted_oids"] if cursor.changes is not None
                   else cursor.vanished_oids)
        await merge.plan_retirements(conn, run_id, self.feed.full_id, how, deleted)
        if not cursor.premerge:  # a first load retires nothing the feed stored before
            held = await self._guard_retirements(conn, run_id, cursor,
                                                 allow=allow_mass_retire)
            if held is not None:
                return held
        states = await merge.chunk_states(conn, run_id, self.feed.full_id,
                                          full_read=cursor.mode == "full",
                                          compare_stored=cursor.premerge)
        changed = [s for s in states if s.changed and not s.settled]
        await merge.set_chunks_total(conn, run_id, len(states))
        await merge.settle_chunks(conn, run_id, self.feed.full_id,
                                  [s for s in states if s.changed and s.settled])
        self.reporter.phase("merge", len(changed))
        batches = list(merge.batches(changed))
        if cursor.server_gen is not None and batches:
            self.final_batch = batches.pop()
        pending = iter(batches)

        async def merge_worker() -> None:
            # Batches hold disjoint chunks, so two transactions never touch one row.
            async with self.pool.acquire() as worker_conn:
                for batch in pending:
                    if self.paused:  # a chunk boundary: the batches merged stay merged
                        break
                    await merge.merge_batch(worker_conn, run_id, self.feed, batch)
                    self.reporter.advance(len(batch), sum(s.row_count for s in batch))

        async with task_group() as group:
            for index in range(MERGE_WORKERS):
                group.create_task(merge_worker(), name=f"merge-{index}")
        self.pause_point()
        return None

    async def _guard_retirements(self, conn: Conn, run_id: int, cursor: RunCursor, *,
                                 allow: bool) -> str | None:
        """Hold a run that would retire too much of the feed (a half-finished publish)."""
        retiring = await merge.count_retiring(conn, run_id)
        if not retiring or cursor.mass_retire_allowed:
            return None
        current = await merge.count_stored(conn, self.feed.full_id)
        problem = retire_guard(current, retiring, self.feed.max_retire_fraction)
        if problem is None:
            return None
        if allow:
            log.warning("retiring many features, as --allow-mass-retire asks",
                        feed=self.feed.full_id, run=run_id, retiring=retiring, stored=current)
            cursor.mass_retire_allowed = True
            cursor.notes.append(f"--allow-mass-retire let this run through: {problem}")
            await runs.save_cursor(conn, run_id, cursor.to_json())
            return None
        return (f"held, nothing written: {problem}. If the county is still publishing, wait: "
                "the next sync reads the layer again. If the deletions are real, run "
                f"`zoningsync sync {self.feed.full_id} --allow-mass-retire`")

    async def _finish(self, conn: Conn, run_id: int, cursor: RunCursor
                      ) -> None:
        staged_mark = await staging.staged_high_water_mark(conn, run_id)
        previous = (datetime.fromisoformat(cursor.previous_mark)
                    if cursor.previous_mark else None)
        marks = [m for m in (staged_mark, previous) if m is not None]
        staged = await staging.count_staged(conn, run_id)
        requests, retries, received = self.delta.take()
        async with conn.transaction():
            if self.final_batch:
                await merge.merge_batch(conn, run_id, self.feed, self.final_batch)
                self.reporter.advance(len(self.final_batch),
                                      sum(s.row_count for s in self.final_batch))
            await self._record_oids(conn, run_id, cursor)
            if cursor.server_gen is not None:
                await changes.save_server_gen(conn, run_id, cursor.server_gen)
            await runs.add_fetch_stats(conn, run_id, requests, retries, received)
            await runs.finish_run(
                conn, run_id, high_water_mark=max(marks) if marks else None,
                oid_set_hash=cursor.oid_set_hash, seconds=self._elapsed(), staged=staged,
                warnings=cursor.notes,
            )
            await feeds.mark_success(conn, self.feed.full_id, run_id)
            await staging.clear_run_staging(conn, run_id)

    async def _record_oids(self, conn: Conn, run_id: int, cursor: RunCursor) -> None:
        """The feed's map of object ids to keys now stands for its stored features."""
        if cursor.mode == "full":
            await changes.record_full_read(conn, run_id, self.feed.full_id)
        else:
            deleted = (cursor.changes["deleted_oids"] if cursor.changes is not None
                       else cursor.vanished_oids)
            await changes.record_incremental_read(conn, run_id, self.feed.full_id, deleted)


async def sync_feed(*, db_url: str, pool: asyncpg.Pool[Any], feed: FeedConfig,
                    fetcher: Fetcher, executor: Executor, reporter: Reporter,
                    force_full: bool = False, allow_mass_retire: bool = False,
                    ignore_pause: bool = False) -> dict[str, Any]:
    """Run one feed to completion and return its `runs` row as a dict.

    A run held by the retirement guard returns its row (status `held`), and so
    does a run stopped by a pause (status `cancelled`); a run that fails raises
    RunFailed, its row marked failed. A paused feed raises FeedPaused unless
    `ignore_pause`.
    """
    kind: type[FeedRun[Any]] = ArcgisRun
    if feed.kind is Kind.CASES:
        # Case feeds read HTML and PDF (bs4, soupsieve: 0.15 s to import): only they pay.
        from zoningsync.case_run import CaseRun

        kind = CaseRun
    run = kind(db_url=db_url, pool=pool, feed=feed, fetcher=fetcher, executor=executor,
               reporter=reporter)
    try:
        return await run.run(force_full=force_full, allow_mass_retire=allow_mass_retire,
                             ignore_pause=ignore_pause)
    finally:
        reporter.close()
