"""The desktop app, driven like a person would: real window under Xvfb, real photos, real index.

The session starts its own Xvfb (24-bit, so screenshots look like a desktop) and falls back to
Qt's offscreen platform when Xvfb is not installed (`apt-get install xvfb`). The screenshot of
the main test is saved in its tmp dir (and in $LANDMARK_FINDER_SCREENSHOTS when set).
"""

from __future__ import annotations

import atexit
import csv
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtWidgets")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QColor, QDropEvent, QFont, QGuiApplication, QImage, QPainter, QTextLayout  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from conftest import INDIAN, need_shared  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Set LANDMARK_FINDER_SCREENSHOTS=docs/screenshots to refresh the copy kept in the repository.
SCREENSHOTS = os.environ.get("LANDMARK_FINDER_SCREENSHOTS")
TAJ = (27.1751, 78.0421)  # catalog coordinates of taj_mahal
KOREAN = {"taj_mahal": "타지마할", "charminar": "차르미나르", "india_gate": "인디아 게이트"}

_xvfb: subprocess.Popen | None = None


def _start_xvfb() -> str | None:
    """Start Xvfb on a free display; returns ":N" or None when Xvfb is not installed."""
    global _xvfb
    exe = shutil.which("Xvfb")
    if exe is None:
        return None
    r, w = os.pipe()
    _xvfb = subprocess.Popen(
        [exe, "-displayfd", str(w), "-screen", "0", "1400x1000x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    if not number:
        _xvfb.kill()
        return None
    # Stop it at interpreter exit (not at fixture teardown): the QApplication lives until then.
    atexit.register(_xvfb.terminate)
    return f":{number}"


def _xcb_works(display: str) -> bool:
    """Qt aborts the process when its X11 plugin cannot load (e.g. libxcb-cursor0 missing), so
    try it in a child process first."""
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    probe = "from PySide6.QtWidgets import QApplication; QApplication(['probe'])"
    return (
        subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, timeout=60
        ).returncode
        == 0
    )


@pytest.fixture(scope="session")
def qt_display():
    display = _start_xvfb()
    if display is not None and not _xcb_works(display):
        warnings.warn(
            "Qt cannot use X11 here (apt-get install libxcb-cursor0 libxcb-icccm4 "
            "libxcb-keysyms1): GUI tests use QT_QPA_PLATFORM=offscreen",
            stacklevel=2,
        )
        display = None
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif display is not None:
        os.environ["DISPLAY"] = display
        os.environ.pop("WAYLAND_DISPLAY", None)
        os.environ["QT_QPA_PLATFORM"] = "xcb"
    elif os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        warnings.warn(
            "Xvfb not found (apt-get install xvfb): GUI tests use QT_QPA_PLATFORM=offscreen",
            stacklevel=2,
        )
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    return display


_app = None


@pytest.fixture(scope="session")
def qapp(qt_display, qapp_args):
    """pytest-qt's QApplication, created only after the display above exists."""
    from landmark_finder.gui.look import configure_fonts

    global _app
    _app = QApplication.instance() or QApplication(qapp_args)
    configure_fonts(_app)
    return _app


@pytest.fixture
def english_after():
    """A test that switches the interface language leaves it English for the next one."""
    yield
    from landmark_finder.i18n import set_language

    set_language("en")


def save_screenshot(pixmap, tmp_path: Path, name: str) -> Path:
    """The screenshot in the test's tmp dir (and in $LANDMARK_FINDER_SCREENSHOTS when set)."""
    path = tmp_path / name
    assert pixmap.save(str(path))
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        assert pixmap.save(str(Path(SCREENSHOTS) / name))
    return path


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, small_index, settings):
    from landmark_finder.gui.app import MainWindow

    w = MainWindow(small_index, settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.recognizer is not None or w.last_error is not None, timeout=90_000)
    assert w.recognizer is not None, w.last_error
    return w


def _query(lid: str) -> Path:
    return sorted((need_shared() / "queries" / lid).glob("*.jpg"))[0]


def _wait_answer(qtbot, w, timeout: int = 30_000) -> None:
    qtbot.waitUntil(lambda: w.answer is not None or w.last_error is not None, timeout=timeout)
    assert w.last_error is None, w.last_error


def _ink(img: QImage) -> set[tuple[int, int]]:
    """Dark pixels of a rendering (text is drawn black on white)."""
    return {
        (x, y)
        for y in range(img.height())
        for x in range(img.width())
        if QColor(img.pixel(x, y)).lightness() < 128
    }


def _render(text: str, font: QFont) -> QImage:
    img = QImage(64, 64, QImage.Format.Format_RGB32)
    img.fill(QColor("white"))
    big = QFont(font)  # same families, large enough that a glyph has a clear shape
    big.setPixelSize(40)
    p = QPainter(img)
    p.setFont(big)
    p.setPen(QColor("black"))
    p.drawText(img.rect(), Qt.AlignmentFlag.AlignCenter, text)
    p.end()
    return img


def _assert_renders_hangul(text: str, font: QFont) -> None:
    """Every Hangul character gets a real glyph from some font (index 0 would be tofu), and
    different characters draw differently (tofu boxes all look alike)."""
    layout = QTextLayout(text, font)
    layout.beginLayout()
    layout.createLine().setLineWidth(10_000)
    layout.endLayout()
    runs = layout.glyphRuns()
    assert runs and all(0 not in list(r.glyphIndexes()) for r in runs), [
        (r.rawFont().familyName(), list(r.glyphIndexes())) for r in runs
    ]
    hangul = sorted({c for c in text if "\uac00" <= c <= "\ud7a3"})
    assert len(hangul) >= 2
    inks = [frozenset(_ink(_render(c, font))) for c in hangul]
    assert all(len(i) > 20 for i in inks)
    assert len(set(inks)) == len(inks)


# --- the done-when test ------------------------------------------------------------------


def test_recognizes_a_real_photo_and_shows_everything(window, qtbot, tmp_path):
    from landmark_finder.gui.app import find_heatmap

    w = window
    photo = _query("taj_mahal")
    w.open_photo(photo)
    _wait_answer(qtbot, w)
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=10_000)

    r = w.answer.recognition
    assert r.status == "recognized" and r.landmark.id == "taj_mahal"
    assert w.answer_title.text() == "This place is 'Taj Mahal'"
    assert "Agra" in w.address_label.text()
    assert w.confidence_bar.value() == round(r.confidence * 100) >= 50
    shown = [w.candidates.topLevelItem(i).text(0) for i in range(w.candidates.topLevelItemCount())]
    assert shown == [c.landmark.name for c in r.candidates[1:]] and len(shown) == 4
    assert w.photo_view.has_image() and w.photo_caption.text().startswith(photo.name)
    # the matched reference photo: the top candidate's most similar gallery photo
    ref = Path(r.candidates[0].reference)
    assert ref.parent.name == "taj_mahal" and w.reference_view.has_image()
    assert ref.name in w.reference_name.text()
    assert w.reference_view.pixmap().width() == w.answer.reference.width
    # the map shows the landmark's coordinates
    assert w.map_panel.view.location == TAJ and w.map_panel.browser.isEnabled()
    # the heatmap toggle exists exactly when landmark_finder.explain provides one
    assert w.heatmap_action.isVisible() == (find_heatmap() is not None)

    w.statusBar().clearMessage()  # its "recognized in N ms" would change the PNG every run
    shot = w.grab()
    assert shot.width() >= 1000
    assert shot.save(str(tmp_path / "gui.png"))
    assert QImage(str(tmp_path / "gui.png")).size() == shot.size()
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        assert shot.save(str(Path(SCREENSHOTS) / "gui.png"))


def test_every_landmark_is_outlined_and_marked(window, qtbot, tmp_path):
    """Two landmarks side by side: an outline each over the photo, a marker each on the map."""
    import random

    from conftest import SHARED
    from landmark_finder.core.images import load_image
    from landmark_finder.explain.composites import paste_pair

    a = sorted((INDIAN / "gallery" / "india_gate").glob("*.jpg"))[0]
    b = sorted((INDIAN / "gallery" / "golden_temple").glob("*.jpg"))[0]
    bg = load_image(sorted((SHARED / "distractors").glob("*.jpg"))[20], 512).resize((800, 450))
    c = paste_pair(load_image(a, 512), load_image(b, 512), bg, random.Random(8))
    photo = tmp_path / "two.png"
    c.image.save(photo)
    w = window
    w.open_photo(photo)
    _wait_answer(qtbot, w)
    found = w.answer.found
    assert sorted(f.landmark.id for f in found) == ["golden_temple", "india_gate"]
    view = w.photo_view
    assert len(view.outlines) == 2 and view.outline_size == w.answer.found_size
    # the pixels the photo was analysed in: the photo's own aspect
    assert abs(view.outline_size[0] / view.outline_size[1] - 800 / 450) < 0.01
    img = view.grab().toImage()
    rect = view.image_rect()
    for i in range(2):
        pts = view.outline_points(i)
        assert all(rect.adjusted(-2, -2, 2, 2).contains(p) for p in pts)
        # the outline is painted: its top edge's middle is the outline colour, not the photo
        # (the pixel the edge passes through lies wholly under the 3-px pen; the one below it
        # is only partly covered when the edge falls near a pixel's top, and antialiased)
        top = QPointF((pts[0].x() + pts[1].x()) / 2, (pts[0].y() + pts[1].y()) / 2)
        colour = QColor(img.pixel(int(top.x()), int(top.y())))
        assert colour.red() > 200 and colour.blue() < 90, colour.name()
    # one marker per landmark on the map
    marks = w.map_panel.view.marker_points()
    assert len(marks) == 2 and marks[0] != marks[1]
    save_screenshot(w.grab(), tmp_path, "gui-two-landmarks.png")


# --- errors are messages -----------------------------------------------------------------


def test_broken_images_show_a_message_and_the_app_goes_on(window, qtbot, tmp_path):
    w = window
    garbage = tmp_path / "broken.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG" * 50)
    truncated = tmp_path / "truncated.jpg"
    data = _query("charminar").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    for bad in (garbage, truncated, tmp_path / "missing.jpg", tmp_path):
        w.last_error = None
        w.open_photo(bad)
        qtbot.waitUntil(lambda: w.last_error is not None, timeout=10_000)
        assert str(bad) in w.last_error and w.message_box.isVisible()
        assert w.answer_title.text() == "This photo cannot be read"
        assert w.answer is None and not w.photo_view.has_image()
    w.message_box.close()
    w.last_error = None
    w.open_photo(_query("charminar"))  # still works afterwards
    _wait_answer(qtbot, w)
    assert w.answer.recognition.status in ("recognized", "unknown")


def test_index_problems_show_a_message(qtbot, small_index, settings, tmp_path):
    from landmark_finder.gui.app import MainWindow

    w = MainWindow(None, settings)
    qtbot.addWidget(w)
    w.show()
    assert w.recognizer is None and "index" in w.answer_title.text().lower()
    # a folder that is not an index
    w.open_index(tmp_path)
    qtbot.waitUntil(lambda: w.last_error is not None, timeout=10_000)
    assert "not a landmark-finder index" in w.last_error and w.recognizer is None
    # an index whose descriptors come from other network weights than the installed ones
    other = tmp_path / "other-weights"
    shutil.copytree(small_index, other, symlinks=True)
    meta = other / (other / "CURRENT").read_text().strip()  # the manifest
    m = json.loads(meta.read_text())
    m["weights_hash"] = "0" * 64
    meta.write_text(json.dumps(m))
    w.last_error = None
    w.open_index(other)
    qtbot.waitUntil(lambda: w.last_error is not None, timeout=60_000)
    assert "rebuild the index" in w.last_error and w.recognizer is None
    assert w.index_label.text() == "No index"
    # a photo opened without an index is shown, and recognized once an index is chosen
    w.last_error = None
    w.open_photo(_query("india_gate"))
    qtbot.waitUntil(lambda: w.photo is not None, timeout=10_000)
    assert w.photo_view.has_image() and "index" in w.answer_title.text().lower()
    w.open_index(tmp_path)  # superseded at once: its failure must not show
    w.open_index(small_index)
    _wait_answer(qtbot, w, 90_000)
    assert w.answer.recognition.candidates[0].landmark.id == "india_gate"
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=10_000)
    assert w.last_error is None and w.index_path == small_index


# --- map -----------------------------------------------------------------------------------


def test_map_marker_is_drawn_at_the_coordinates(qtbot):
    from landmark_finder.gui.mapview import LAND, MARKER, OCEAN, MapPanel, world_outline

    panel = MapPanel()
    qtbot.addWidget(panel)
    panel.resize(300, 240)
    panel.show()
    opened = []
    panel.open_url = lambda url: opened.append(url.toString()) or True
    panel.set_location(*TAJ)
    qtbot.waitExposed(panel)
    view = panel.view
    tip = view.marker_point()
    # centred on the landmark, north up, east right, in equirectangular degrees
    assert (round(tip.x()), round(tip.y())) == (view.width() // 2, view.height() // 2)
    north, east = view.project(TAJ[0] + 1, TAJ[1]), view.project(TAJ[0], TAJ[1] + 1)
    assert north.y() < tip.y() and east.x() > tip.x()
    assert abs((tip.y() - north.y()) - (east.x() - tip.x())) < 1e-6
    # the pin is painted there (red just above its tip) and land is drawn around it
    img = view.grab().toImage()
    head = QColor(img.pixel(int(tip.x()), int(tip.y()) - 6))
    assert abs(head.red() - MARKER.red()) < 40 and head.green() < 100, head.name()
    land, sea = view.project(22.0, 78.0), view.project(15.0, 65.0)  # central India, Arabian Sea
    assert QColor(img.pixel(int(land.x()), int(land.y()))) == LAND
    assert QColor(img.pixel(int(sea.x()), int(sea.y()))) == OCEAN
    assert any(c.name == "India" for c in world_outline())
    assert panel.coords.text() == "27.1751° N, 78.0421° E"
    qtbot.mouseClick(panel.browser, Qt.MouseButton.LeftButton)
    assert opened == [
        "https://www.openstreetmap.org/?mlat=27.17510&mlon=78.04210#map=16/27.17510/78.04210"
    ]
    # across the antimeridian (Fiji) the marker still sits in the middle
    panel.set_location(-17.7, 178.0)
    tip = view.marker_point()
    assert view.project(-17.7, -178.0).x() > tip.x()  # 4° east, not 356° west
    panel.set_location(None, None)
    assert view.marker_point() is None and not panel.browser.isEnabled()


# --- Korean names, and building an index from the app --------------------------------------


def test_build_index_in_the_app_and_show_korean_names(
    qtbot, small_gallery, settings, tmp_path, monkeypatch, english_after
):
    from landmark_finder.gui.app import MainWindow, startup_language
    from landmark_finder.gui.indexdialog import BuildIndexDialog, BuildRequest, check_request

    need_shared()
    gallery = tmp_path / "gallery"
    for lid in KOREAN:
        (gallery / lid).mkdir(parents=True)
        for p in sorted((small_gallery / lid).iterdir())[:4]:
            (gallery / lid / p.name).symlink_to(p.resolve())
    with open(INDIAN / "catalog.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["id"] in KOREAN]
    catalog = tmp_path / "catalog-ko.csv"
    with open(catalog, "w", encoding="utf-8", newline="") as f:
        out = csv.DictWriter(f, ["id", "name", "address", "latitude", "longitude", "name_en"])
        out.writeheader()
        for r in rows:
            out.writerow({**r, "name": KOREAN[r["id"]], "name_en": r["name"]})

    # the dialog checks what it is given before anything runs
    dlg = BuildIndexDialog()
    qtbot.addWidget(dlg)
    dlg.gallery.setText(str(tmp_path / "nowhere"))
    dlg.accept()
    assert "not a folder" in dlg.problem.text() and dlg.result() == 0
    dlg.gallery.setText(str(gallery))
    dlg.catalog.setText(str(catalog))
    assert dlg.out.text() == str(tmp_path / "gallery-index")
    req = dlg.request()
    assert req == BuildRequest(
        gallery, catalog, tmp_path / "gallery-index", dlg.backbone.currentText(), 352
    )
    dlg.few_photos.setChecked(True)
    assert dlg.request().config().backbone == f"{dlg.backbone.currentText()}+sscd"

    # a Korean desktop: the language comes from the system locale, as when the app starts
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    assert startup_language(settings) == "ko"
    w = MainWindow(None, settings)
    qtbot.addWidget(w)
    w.show()
    seen = []
    # 4 photos per landmark: built as a few-photo index (crops and SSCD)
    req = BuildRequest(gallery, catalog, tmp_path / "index-ko", "efficientnet-lite0", 224, True)
    w.build_index(req)
    assert w.progress_dialog is not None
    w.progress_dialog.canceled.connect(lambda: seen.append("cancel"))
    w._build_task.signals.progress.connect(lambda d, t, what: seen.append((d, t, what)))
    # a small gallery builds with a warning (a message box), then the index opens
    qtbot.waitUntil(lambda: w.recognizer is not None or w._build_task is None, timeout=90_000)
    qtbot.waitUntil(lambda: w.recognizer is not None, timeout=30_000)
    assert w.recognizer is not None, w.last_error
    w.last_error = None  # that warning was shown; what follows must add none
    assert w.index_path == tmp_path / "index-ko" and (12, 12, "describing photos") in seen
    assert "랜드마크 3곳, 사진 12장" in w.index_label.text()  # plural forms, in Korean

    w.open_photo(_query("taj_mahal"))
    _wait_answer(qtbot, w)
    r = w.answer.recognition
    name = KOREAN[r.candidates[0].landmark.id]
    title = w.answer_title.text()
    # the original's sentence, Korean labels and menus
    assert (r.status == "recognized" and title == f"이곳은 '{name}' 입니다") or (
        r.status == "unknown"
        and title == "알고 있는 랜드마크가 아닙니다"
        and w.candidates.topLevelItem(0).text(0) == name
    )
    assert [a.text() for a in w.menuBar().actions()][:2] == ["파일(&F)", "인덱스(&I)"]
    assert w.candidates.headerItem().text(0) == "랜드마크"
    assert w.map_panel.browser.text() == "브라우저에서 열기"
    if w.map_panel.coords.text():  # a landmark with coordinates: degrees in Korean
        assert w.map_panel.coords.text().startswith(("북위 ", "남위 "))
    dlg = BuildIndexDialog(w)
    assert dlg.windowTitle() == "갤러리 폴더로 인덱스 만들기"
    problem = check_request(BuildRequest(tmp_path / "nowhere", None, tmp_path / "x"))
    assert problem == f"{tmp_path / 'nowhere'}: 폴더가 아닙니다. " + (
        "랜드마크마다 하위 폴더가 하나씩 있는 폴더를 선택하세요"
    )
    dlg.deleteLater()
    assert {
        w.candidates.topLevelItem(i).text(0) for i in range(w.candidates.topLevelItemCount())
    } <= set(KOREAN.values())
    for text in KOREAN.values():
        _assert_renders_hangul(text, w.answer_title.font())
        _assert_renders_hangul(text, w.candidates.font())
    _assert_renders_hangul("경복궁", QGuiApplication.font())
    save_screenshot(w.grab(), tmp_path, "gui-korean.png")

    # the Language menu switches in place: English labels, the catalog's English names
    menu = [a for a in w.menuBar().actions() if a.text() == "언어(&L)"][0].menu()
    assert [a.text() for a in menu.actions()] == ["English", "한국어"]
    menu.actions()[0].trigger()
    english = {
        lid: lm.names["en"] for lid, lm in ((c.landmark.id, c.landmark) for c in r.candidates)
    }
    top = english[r.candidates[0].landmark.id]
    assert w.answer_title.text() == (
        f"This place is '{top}'" if r.status == "recognized" else "Not a landmark I know"
    )
    assert w.menuBar().actions()[0].text() == "&File" and settings.value("language") == "en"
    assert "3 landmarks, 12 photos" in w.index_label.text()
    assert w.candidates.topLevelItemCount() == 0 or (
        w.candidates.topLevelItem(0).text(0) in english.values()
    )
    save_screenshot(w.grab(), tmp_path, "gui-english.png")


# --- paste and drop ------------------------------------------------------------------------


def test_paste_and_drop_open_photos(window, qtbot):
    w = window
    QGuiApplication.clipboard().setImage(QImage(str(_query("hawa_mahal"))))
    w.paste()
    _wait_answer(qtbot, w)
    assert w.photo.label == "pasted image" and isinstance(w.photo.source, bytes)
    # the window shows what the library answers for the same pixels
    expected = w.recognizer.recognize(w.photo.source)
    assert w.answer.recognition.to_dict() | {"image": ""} == expected.to_dict() | {"image": ""}

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(_query("golden_temple")))])
    event = QDropEvent(
        QPointF(200, 200),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    w.answer = None
    w.dropEvent(event)
    _wait_answer(qtbot, w)
    assert w.photo.label == _query("golden_temple").name
    assert (
        w.answer.recognition.to_dict() == w.recognizer.recognize(_query("golden_temple")).to_dict()
    )

    text = QMimeData()
    text.setText(QUrl.fromLocalFile(str(_query("india_gate"))).toString())
    QGuiApplication.clipboard().setMimeData(text)
    w.answer = None
    w.paste()
    _wait_answer(qtbot, w)
    assert w.photo.label == _query("india_gate").name

    QGuiApplication.clipboard().setText("no photo here")
    w.paste()
    assert w.last_error and "not a photo file" in w.last_error


# --- heatmap -------------------------------------------------------------------------------


class _TintHeatmap:
    """Test double for landmark_finder.explain.heatmap while that module is not installed: it
    checks the window's wiring (toggle, worker, cache), not what a heatmap shows."""

    calls: list[tuple[object, tuple[int, int], str | None]] = []

    def __init__(self, recognizer, image, landmark_id):
        self.calls.append((recognizer, image.size, landmark_id))

    def overlay(self, image):
        from PIL import Image

        return Image.blend(image, Image.new("RGB", image.size, (255, 0, 0)), 0.5)


def test_heatmap_toggle(qtbot, small_index, settings, monkeypatch):
    import types

    import landmark_finder
    from landmark_finder.gui.app import MainWindow, find_heatmap

    if find_heatmap() is None:
        fake = types.ModuleType("landmark_finder.explain")
        fake.heatmap = _TintHeatmap
        monkeypatch.setitem(sys.modules, "landmark_finder.explain", fake)
        monkeypatch.setattr(landmark_finder, "explain", fake, raising=False)
    w = MainWindow(small_index, settings)
    qtbot.addWidget(w)
    w.show()
    assert w.heatmap_action.isVisible() and w.heatmap_fn is find_heatmap()
    qtbot.waitUntil(lambda: w.recognizer is not None, timeout=90_000)
    w.open_photo(_query("taj_mahal"))
    _wait_answer(qtbot, w)
    plain = w.photo_view.pixmap().toImage()
    w.heatmap_action.setChecked(True)
    qtbot.waitUntil(lambda: w._generation in w._heatmaps, timeout=120_000)
    assert w.last_error is None, w.last_error
    shown = w.photo_view.pixmap().toImage()
    assert shown.size() == plain.size() and shown != plain
    if w.heatmap_fn is _TintHeatmap:
        assert _TintHeatmap.calls[-1] == (w.recognizer, w.photo.image.size, "taj_mahal")
    w.heatmap_action.setChecked(False)
    assert w.photo_view.pixmap().toImage() == plain


# --- environment ---------------------------------------------------------------------------


def test_pyside_keeps_none_alive():
    """PySide6 6.12.0 on Python 3.11 decrefs None on every void call, which aborts the process
    ('deallocating None') after a few thousand calls; pyproject pins it out."""
    from PySide6.QtCore import QPointF as P

    p, before = P(0, 0), sys.getrefcount(None)
    for _ in range(100):
        p.setX(1)
    assert sys.getrefcount(None) >= before - 5


def test_cli_without_display_fails_clearly(monkeypatch):
    from typer.testing import CliRunner

    from landmark_finder.cli.main import app

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    res = CliRunner().invoke(app, ["gui"])
    assert res.exit_code == 2 and "no display" in res.output


def test_names_with_tags_are_shown_as_text_not_html(window, qtbot):
    """A catalog name is data, not markup: tags in it are shown as typed."""
    import dataclasses

    from PySide6.QtWidgets import QLabel

    from landmark_finder.core.catalog import Catalog

    w = window
    cat = w.recognizer.index.catalog
    name = '<b>Taj</b> <img src="x.png"> <a href="http://evil">Mahal</a>'
    w.recognizer.index.catalog = Catalog(
        dataclasses.replace(lm, name=name) if lm.id == "taj_mahal" else lm for lm in cat
    )
    w.open_photo(_query("taj_mahal"))
    _wait_answer(qtbot, w)
    assert w.answer.recognition.landmark.id == "taj_mahal"
    assert w.answer_title.text() == f"This place is '{name}'"
    labels = w.findChildren(QLabel)
    assert labels and all(lb.textFormat() == Qt.TextFormat.PlainText for lb in labels)
