"""Hostile input end to end: a generated corpus of 226 broken, extreme and strange files
(tests/hostile_corpus.py) through the loader, ``recognize``, ``index build`` and the upload
endpoint. Nothing may crash or print a traceback, and every file gets an answer.

Timing and peak memory are measured by bench/hostile.py, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import INDIAN, need_shared
from hostile_corpus import make_corpus
from landmark_finder.core.images import ImageLoadError, iter_image_files, load_image

REPO = Path(__file__).resolve().parents[1]
DECODABLE = ("valid", "shape", "mode", "animated", "exif", "icc")
STATUSES = {"recognized", "unknown", "error"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("hostile") / "corpus"
    return folder, make_corpus(folder)


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "landmark_finder.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def assert_no_traceback(proc: subprocess.CompletedProcess) -> None:
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback" not in stream, stream


def test_corpus_is_big_and_varied(corpus):
    _, kinds = corpus
    assert len(kinds) >= 200
    assert {
        "truncated",
        "bomb",
        "shape",
        "mode",
        "animated",
        "exif",
        "icc",
        "junk",
        "special",
    } <= set(kinds.values())


def test_loader_answers_every_file(corpus):
    folder, kinds = corpus
    skipped: list[tuple[Path, str]] = []
    files = iter_image_files(folder, skipped=skipped)
    assert {p.name for p in files} | {p.name for p, _ in skipped} == set(kinds)
    assert {p.name for p, _ in skipped} == {n for n, k in kinds.items() if k == "special"}
    for f in files:
        try:
            img = load_image(f, max_side=512)
        except ImageLoadError as e:
            msg = str(e)
            assert msg.startswith(f"{f}: ") and "\n" not in msg
            assert kinds[f.name] not in DECODABLE, msg
        else:
            assert img.mode == "RGB" and 1 <= max(img.size) <= 512
            assert kinds[f.name] not in ("junk", "empty", "bomb", "other-format"), f.name
    for p, _why in skipped:
        with pytest.raises(ImageLoadError):
            load_image(p)  # given by name, a FIFO or /dev/zero is refused, never read


def test_recognize_cli_answers_every_file(corpus, small_index):
    folder, kinds = corpus
    proc = run_cli("recognize", str(small_index), str(folder), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_no_traceback(proc)
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    by_name = {Path(a["image"]).name: a for a in answers}
    assert len(answers) == len(by_name) == len(kinds)
    assert set(by_name) == set(kinds)
    for name, a in by_name.items():
        assert a["status"] in STATUSES
        if a["status"] == "error":
            assert "\n" not in a["error"] and a["error"].startswith(str(folder / name))
            assert kinds[name] not in DECODABLE, a["error"]
        else:
            assert kinds[name] in DECODABLE + ("truncated", "damaged"), name
            # blank, tiny or transparent pictures are answered by the content check, no guesses
            assert a["candidates"] or (a["status"] == "unknown" and a["reason"]), name


def test_index_build_skips_bad_photos_with_a_line_each(corpus, tmp_path):
    folder, kinds = corpus
    gallery = tmp_path / "gallery"
    (gallery / "taj_mahal").mkdir(parents=True)
    for p in sorted((need_shared() / "gallery" / "taj_mahal").glob("*.jpg"))[:3]:
        (gallery / "taj_mahal" / p.name).symlink_to(p)
    # The corpus as a landmark folder of its own: links to its files (specials linked as
    # they are: the FIFO through a link, the other links re-created).
    hostile = gallery / "hostile_photos"
    hostile.mkdir()
    for name in kinds:
        src = folder / name
        os.symlink(os.readlink(src) if src.is_symlink() else src, hostile / name)
    out = tmp_path / "index"
    proc = run_cli(
        "index",
        "build",
        str(gallery),
        "--out",
        str(out),
        "--catalog",
        str(INDIAN / "catalog.csv"),
        "--backbone",
        "efficientnet-lite0",
        "--size",
        "224",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_no_traceback(proc)
    lines = proc.stderr.splitlines()
    shown = [ln for ln in lines if ln.startswith(("skipped: ", "warning: "))]
    more = sum(int(ln.split("and ")[1].split()[0]) for ln in shown if " ... and " in ln)
    problems = [ln for ln in shown if " ... and " not in ln and str(hostile) in ln]
    indexed = int(proc.stdout.split("Indexed ")[1].split()[0])
    assert indexed + len(problems) + more == len(kinds) + 3
    assert all(str(hostile / n) in proc.stderr for n, k in kinds.items() if k == "special")
    info = run_cli("index", "info", str(out))
    assert info.returncode == 0 and str(indexed) in info.stdout


def test_upload_endpoint_answers_every_file(corpus, small_index):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from landmark_finder.recognition.recognizer import Recognizer
    from landmark_finder.web import create_app

    folder, kinds = corpus
    codes: dict[str, int] = {}
    with TestClient(create_app(Recognizer.open(small_index))) as client:
        for name, kind in sorted(kinds.items()):
            if kind == "special":
                continue
            data = (folder / name).read_bytes()
            r = client.post("/api/recognize", files={"photo": (name, data, "image/jpeg")})
            codes[name] = r.status_code
            assert r.status_code == 200 or 400 <= r.status_code < 500, (name, r.text)
            body = r.json()
            if r.status_code == 200:
                assert body["status"] in STATUSES
                assert kinds[name] in DECODABLE + ("truncated", "damaged"), name
            else:
                detail = body["detail"]
                assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
                assert kinds[name] not in DECODABLE, (name, detail)
        # and it keeps serving
        photo = sorted((INDIAN / "queries" / "taj_mahal").glob("*.jpg"))[0]
        r = client.post(
            "/api/recognize", files={"photo": ("q.jpg", photo.read_bytes(), "image/jpeg")}
        )
        assert r.status_code == 200 and r.json()["status"] in STATUSES
    assert len(codes) >= 200
