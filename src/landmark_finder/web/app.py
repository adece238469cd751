"""The web service: ``create_app(index)`` returns a FastAPI app serving the API and the browser app.

A thin shell over the library: recognition is ``Recognizer.recognize`` (its JSON is the CLI's
``recognize --json``), photos are decoded only by ``images.load_image``, the EXIF position and
distance come from ``geo``, and index changes go through ``indexing``. Recognition is CPU-bound:
uploads go to a ``RecognitionPool`` (one worker per core, a bounded queue, 503 with
``Retry-After`` when full) and every decode goes through one ``DecodeBudget``, so load and
hostile images cost bounded time, threads and memory (see ``pool``). Other endpoints are plain
``def`` functions, run in a small thread pool off the event loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from landmark_finder import defaults
from landmark_finder.core.cores import usable_cores
from landmark_finder.core.geo import GeoPoint, distance_km, exif_gps
from landmark_finder.core.images import ImageLoadError, load_image
from landmark_finder.core.places import place_of
from landmark_finder.recognition.recognizer import Recognition, Recognizer
from landmark_finder.web.admin import MAX_PHOTOS_PER_REQUEST, admin_router, landmark_id_problem
from landmark_finder.web.album import album_router
from landmark_finder.web.guards import AdminGate, ErrorBoundary
from landmark_finder.web.heatmaps import HeatmapStore
from landmark_finder.web.language import LANG_QUERY, language_router, reader_language
from landmark_finder.web.limits import BodySizeLimit
from landmark_finder.web.pool import (
    Busy,
    DecodeBudget,
    RecognitionPool,
    return_big_frees_to_the_os,
)
from landmark_finder.web.schemas import (
    ErrorOut,
    Health,
    LandmarkDetail,
    LandmarkOut,
    RecognizeResponse,
)
from landmark_finder.web.state import IndexHolder, Served
from landmark_finder.web.uploads import read_upload_async

log = logging.getLogger("landmark_finder.web")

STATIC_DIR = Path(__file__).with_name("static")
DEFAULT_MAX_UPLOAD_BYTES = 20_000_000  # 20 MB: a 50 Mpx phone JPEG or HEIC fits
#: Room for multipart boundaries and part headers on top of the photo bytes.
_MULTIPART_OVERHEAD = 64 * 1024
#: Body limit of every request that uploads no photo.
_SMALL_BODY = 64 * 1024
#: Long side of reference photos as served (what a browser shows; HEIC becomes JPEG).
REFERENCE_MAX_SIDE = 1024
HEATMAP_MAX_SIDE = 1024

ERRORS = {
    400: {"model": ErrorOut, "description": "Empty upload"},
    413: {"model": ErrorOut, "description": "Upload over the size limit"},
    422: {"model": ErrorOut, "description": "Not a readable image, or invalid fields"},
}
BUSY = {
    503: {
        "model": ErrorOut,
        "description": "Queue full: retry after the `Retry-After` header's seconds",
    }
}
#: Threads for the plain ``def`` endpoints (catalog, reference photos, admin): few are needed,
#: and FastAPI's default of 40 would let a burst of them crowd out recognition.
_ENDPOINT_THREADS = 8


def _recognize_job(
    s: Served, data: bytes, name: str, top_k: int, decodes: DecodeBudget, every: bool = False
) -> tuple[Recognition, object, object, dict | None]:
    """Runs on a pool worker: decode within the budget, recognize, read the EXIF position and
    its place. Anything that goes wrong with this photo is its error line, never an exception.
    ``every``: also find every landmark of the photo (last item: the landmarks found and the
    size of the photo their boxes are in)."""
    every_found: dict | None = None
    t0 = time.perf_counter()
    try:
        image = decodes.run(
            data, lambda: load_image(data, max_side=s.recognizer.load_side, name=name)
        )
        if every:
            # torch: only when asked
            from landmark_finder.explain.locate import larger_side, recognize_all

            side = larger_side(s.recognizer, image)  # regions are cut from a larger copy
            big = None
            if side is not None:
                big = decodes.run(data, lambda: load_image(data, max_side=side, name=name))
            r, found = recognize_all(s.recognizer, image, top_k=top_k, name=name, larger=big)
            every_found = {"landmarks": found.landmarks, "image_size": list(found.size)}
        else:
            r = s.recognizer.recognize(image, top_k=top_k, name=name)
    except ImageLoadError as e:
        return Recognition(name, "error", error=str(e)), None, None, None
    except Exception as e:  # a stage failed on an image the loader accepted: report, go on
        log.exception("recognition of upload %r failed", name)
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        return (
            Recognition(name, "error", error=f"{name}: cannot analyse this image ({why})"),
            None,
            None,
            None,
        )
    r.elapsed_ms = (time.perf_counter() - t0) * 1000
    try:
        gps = exif_gps(data)
        place = place_of(gps) if gps else None
    except Exception:  # malformed EXIF: the position is optional
        gps = place = None
    return r, gps, place, every_found


def create_app(
    recognizer_or_index_path: Recognizer | str | Path,
    admin_token: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    *,
    index_path: str | Path | None = None,
    uploads_dir: str | Path | None = None,
    workers: int | None = None,
    max_queue: int | None = None,
) -> FastAPI:
    """The app for one index.

    ``recognizer_or_index_path``: an index directory, or an open Recognizer (then pass
    ``index_path`` too if admin endpoints should work: they rewrite the index on disk).
    ``admin_token``: enables the admin endpoints (Bearer token); None disables them (403).
    ``uploads_dir``: where photos added over the API are kept, one folder per landmark
    (default ``<index>/../uploads``).
    ``workers`` (default: usable cores) recognize at once; ``max_queue`` (default 4 per
    worker) more wait; beyond that uploads get 503 with ``Retry-After``.
    """
    workers = workers or usable_cores()
    # One worker per core, each running the network single-threaded: measured 48 ms of CPU per
    # photo against 85 ms with 2 threads per run (ONNX Runtime's threads spin while waiting).
    threads = max(1, usable_cores() // workers)
    if isinstance(recognizer_or_index_path, Recognizer):
        recognizer = recognizer_or_index_path
    else:
        index_path = index_path or recognizer_or_index_path
        recognizer = Recognizer.open(recognizer_or_index_path, threads=threads)
    index_path = Path(index_path).resolve() if index_path is not None else None
    if admin_token is not None and not admin_token.strip():
        raise ValueError("the admin token must not be empty")
    if admin_token is not None and index_path is None:
        raise ValueError("admin endpoints rewrite the index: pass index_path with a Recognizer")
    if max_upload_bytes < 1:
        raise ValueError("max_upload_bytes must be positive")
    uploads = (
        Path(uploads_dir)
        if uploads_dir
        else (index_path.parent / "uploads" if index_path else None)
    )

    holder = IndexHolder(recognizer, index_path, threads)
    pool = RecognitionPool(workers, max_queue)
    decodes = DecodeBudget(pool.workers)

    def decode_for_heatmap(data: bytes, name: str):
        return decodes.run(data, lambda: load_image(data, max_side=HEATMAP_MAX_SIDE, name=name))

    from landmark_finder import explain

    heatmaps: HeatmapStore | None = HeatmapStore(explain.heatmap, decode_for_heatmap)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        anyio.to_thread.current_default_thread_limiter().total_tokens = _ENDPOINT_THREADS
        return_big_frees_to_the_os()
        yield
        pool.shutdown()

    app = FastAPI(
        lifespan=lifespan,
        title="landmark-finder",
        summary="Name the landmark in a photo, or say honestly that it is unknown.",
        description="Upload a photo to `POST /api/recognize`. The browser app is at `/`.",
        docs_url=None,
        redoc_url=None,  # /docs below uses the vendored Swagger UI (no CDN)
    )
    app.state.holder = holder
    app.state.heatmaps = heatmaps
    app.state.pool = pool
    app.state.decodes = decodes

    def limit_for(scope: Scope) -> tuple[int, int] | None:
        """(body limit, limit named in the error): photo bytes plus room for multipart framing."""
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return None
        if scope["method"] == "POST" and scope["path"].endswith("/api/recognize"):
            return max_upload_bytes + _MULTIPART_OVERHEAD, max_upload_bytes
        if scope["method"] == "POST" and scope["path"].endswith("/photos"):  # admin upload
            n = MAX_PHOTOS_PER_REQUEST
            return (max_upload_bytes + _MULTIPART_OVERHEAD) * n, max_upload_bytes * n
        return _SMALL_BODY, _SMALL_BODY

    app.add_middleware(BodySizeLimit, limit_for=limit_for)
    app.add_middleware(AdminGate, token=admin_token, id_problem=landmark_id_problem)
    app.add_middleware(ErrorBoundary)  # last added: outermost

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """One line, like every other error of this API: `photo: Field required`."""
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: "
            f"{e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    # -- pages -----------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        vendor = f"{root}/static/vendor/swagger-ui"
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title="landmark-finder API",
            swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
            swagger_css_url=f"{vendor}/swagger-ui.css",
            swagger_favicon_url=f"{vendor}/favicon-32x32.png",
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # -- read-only API -----------------------------------------------------------------------

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        s = holder.current
        return Health(
            backbone=s.index.backbone,
            landmarks=len(s.photo_counts),
            catalog_rows=len(s.index.catalog),
            photos=len(s.index.records),
            index_created=s.index.created,
            admin_enabled=admin_token is not None,
            heatmaps=heatmaps is not None,
            max_upload_bytes=max_upload_bytes,
        )

    @app.get("/api/landmarks", response_model=list[LandmarkOut], tags=["landmarks"])
    def landmarks(request: Request, lang: str | None = LANG_QUERY) -> list[LandmarkOut]:
        """Every catalog row, with its number of reference photos (0: listed, never predicted);
        ``name``/``address`` in the reader's language when the catalog has it."""
        s, lang = holder.current, reader_language(request, lang)
        return [s.landmark_out(lm.localized(lang)) for lm in s.index.catalog]

    @app.get(
        "/api/landmarks/{landmark_id}",
        response_model=LandmarkDetail,
        tags=["landmarks"],
        responses={404: {"model": ErrorOut}},
    )
    def landmark(
        landmark_id: str, request: Request, lang: str | None = LANG_QUERY
    ) -> LandmarkDetail:
        s = holder.current
        lm = s.index.catalog.get(landmark_id)
        if lm is None:
            raise HTTPException(404, f"no landmark {landmark_id!r}")
        lm = lm.localized(reader_language(request, lang))
        urls = [
            str(request.url_for("reference_photo", landmark_id=lm.id, row=str(i)))
            for i, r in enumerate(s.index.records)
            if r.landmark_id == lm.id
        ]
        return LandmarkDetail(**s.landmark_out(lm).model_dump(), photo_urls=urls)

    def image_route(path: str, name: str, media_type: str, tag: str):
        """GET route answering an image (or 404 with the usual error body)."""
        return app.get(
            path,
            name=name,
            tags=[tag],
            response_class=Response,
            responses={200: {"content": {media_type: {}}}, 404: {"model": ErrorOut}},
        )

    @image_route(
        "/api/landmarks/{landmark_id}/photos/{row}", "reference_photo", "image/jpeg", "landmarks"
    )
    def reference_photo(landmark_id: str, row: int) -> Response:
        """A reference photo of the index (JPEG, long side at most 1024 px).

        Only photos registered in the index are served, by landmark id and row number."""
        records = holder.current.index.records
        if not 0 <= row < len(records) or records[row].landmark_id != landmark_id:
            raise HTTPException(404, f"landmark {landmark_id!r} has no reference photo {row}")
        path = records[row].path
        try:
            image = decodes.run(path, lambda: load_image(path, max_side=REFERENCE_MAX_SIDE))
        except ImageLoadError as e:
            raise HTTPException(404, f"reference photo unreadable: {e.reason}") from None
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=88)
        return Response(
            buf.getvalue(),
            media_type="image/jpeg",
            headers={"Cache-Control": "private, max-age=300"},
        )

    # -- recognition -------------------------------------------------------------------------

    @app.post(
        "/api/recognize",
        response_model=RecognizeResponse,
        tags=["recognition"],
        responses=ERRORS | BUSY,
    )
    async def recognize(
        request: Request,
        photo: UploadFile = File(..., description="The photo (JPEG, PNG, WebP, HEIC, ...)"),
        top_k: int = Query(defaults.TOP_K, ge=1, le=50, description="Candidates to list"),
        lang: str | None = LANG_QUERY,
        every: bool = Query(
            False,
            alias="all",
            description="Every landmark in the photo: adds `landmarks` (each with its box and "
            "polygon in pixels of the photo at `image_size`)",
        ),
    ) -> RecognizeResponse:
        """Name the landmark in a photo: the `recognize --json` object plus evidence URLs, the
        photo's EXIF position and its distance to the landmark."""
        data, name = await read_upload_async(photo, max_upload_bytes)
        s = holder.current
        try:
            job = pool.submit(_recognize_job, s, data, name, top_k, decodes, every)
        except Busy as e:
            raise HTTPException(503, str(e), headers={"Retry-After": str(e.retry_after)}) from None
        r, gps, place, every_found = await asyncio.wrap_future(job)
        if r.status == "error":
            raise HTTPException(422, r.error or f"{name}: not a readable image")
        reader = reader_language(request, lang)
        out = r.to_dict(reader)
        if every:
            found = every_found or {"landmarks": [], "image_size": None}
            out["landmarks"] = [f.to_dict(reader) for f in found["landmarks"]]
            out["image_size"] = found["image_size"]
        top = r.candidates[0] if r.candidates else None
        row = s.rows_by_path.get(top.reference) if top else None
        out["reference_image_url"] = (
            None
            if row is None
            else str(request.url_for("reference_photo", landmark_id=top.landmark.id, row=str(row)))
        )
        if out["evidence"] is not None:  # a URL, never a path on the server's disk
            out["evidence"]["reference_image"] = out["reference_image_url"]
        out["exif_gps"] = gps.to_dict() if gps else None
        out["exif_place"] = place.to_dict() if place else None
        lm = r.landmark
        out["distance_km"] = None
        if gps and lm is not None and lm.latitude is not None and lm.longitude is not None:
            out["distance_km"] = round(distance_km(gps, GeoPoint(lm.latitude, lm.longitude)), 3)
        out["heatmap_url"] = None
        if heatmaps is not None and top is not None:
            key = heatmaps.put(s.recognizer, data, name, top.landmark.id)
            out["heatmap_url"] = str(request.url_for("heatmap", key=key))
        return RecognizeResponse(**out)

    @image_route("/api/heatmaps/{key}.png", "heatmap", "image/png", "recognition")
    def heatmap(key: str) -> Response:
        """Overlay of the regions that drove a recent recognition (kept for 10 minutes)."""
        try:
            png = heatmaps.png(key) if heatmaps is not None else None
        except Exception as e:  # the explainer is optional code: report, keep serving
            raise HTTPException(
                500, f"heatmap could not be made: {type(e).__name__}: {e}"
            ) from None
        if png is None:
            raise HTTPException(404, "no such heatmap (they expire after 10 minutes)")
        return Response(
            png, media_type="image/png", headers={"Cache-Control": "private, max-age=600"}
        )

    app.include_router(admin_router(holder, admin_token, max_upload_bytes, uploads, decodes))
    app.include_router(album_router(holder, max_upload_bytes, pool, decodes))
    app.include_router(language_router())
    return app
