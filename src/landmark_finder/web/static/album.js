// Album page: upload several photos to /api/album/photos, show a table of answers and the map.
// Text from the server is only ever set with textContent.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let map = null;
  let outline = null;

  async function loadOutline() {
    if (outline) return outline;
    try {
      outline = await (await fetch("vendor/world-atlas/countries-110m.json")).json();
    } catch (e) {
      outline = null;
    }
    return outline;
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
  }

  async function upload(files) {
    if (!files.length) return;
    $("status").textContent = window.i18n.ngettext("Recognizing {n} photo…", "Recognizing {n} photos…", files.length);
    const form = new FormData();
    for (const f of files) form.append("photos", f, f.name);
    let body;
    try {
      const resp = await fetch("../api/album/photos", { method: "POST", body: form });
      body = await resp.json();
      if (!resp.ok) throw new Error(body.detail || resp.statusText);
    } catch (e) {
      $("status").textContent = window.i18n._("Error: {reason}", { reason: e.message });
      return;
    }
    const rows = body.rows;
    const tbody = document.querySelector("#answers tbody");
    tbody.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.className = r.gps_mismatch ? "mismatch" : r.status;
      cell(tr, r.name);
      cell(tr, r.status === "recognized" ? r.landmark_name : r.status === "unknown" ? window.i18n._("not a landmark I know") : r.error || window.i18n._("unreadable"));
      cell(tr, r.status === "error" ? "" : `${Math.round(r.confidence * 100)} %`);
      cell(tr, r.gps_latitude == null ? window.i18n._("none") : `${r.gps_latitude.toFixed(5)}, ${r.gps_longitude.toFixed(5)}`);
      cell(tr, r.distance_km == null ? "" : `${r.distance_km.toFixed(1)} km${r.gps_mismatch ? window.i18n._(": GPS tag looks wrong") : ""}`, r.gps_mismatch ? "bad" : null);
      tbody.append(tr);
    }
    $("answers").hidden = false;
    const n = rows.filter((r) => r.status === "recognized").length;
    const bad = rows.filter((r) => r.gps_mismatch).length;
    $("status").textContent = window.i18n.ngettext(
      "{n} photo: {recognized} recognized, {bad} with a GPS tag more than {km} km from the landmark.",
      "{n} photos: {recognized} recognized, {bad} with a GPS tag more than {km} km from the landmark.",
      rows.length, { recognized: n, bad: bad, km: body.max_km });
    $("album-map").hidden = false;
    if (map) map.remove();
    map = drawAlbumMap("album-map", rows, await loadOutline());
    window.albumMap = map;
  }

  $("files").addEventListener("change", (e) => upload([...e.target.files]));
})();
