// Landmark Finder browser app: send a photo to /api/recognize and show the answer on a map.
// Plain script, no build step. Text from the server is only ever set with textContent.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const { _, ngettext } = window.i18n;
  let last = null;  // the answer shown, re-rendered when the reader switches language
  const OUTLINE_URL = "static/vendor/world-atlas/countries-110m.json";
  const TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
  const OFFLINE_ZOOM = 5;  // the bundled outline has no detail past country scale
  const ONLINE_ZOOM = 16;

  let map = null;
  let marks = null;
  let tilesOnline = false;
  let view = null;  // points of the current answer, re-fitted once tiles turn out to load
  let request = 0;  // newest upload wins if several are in flight
  let photoUrl = null;

  // -- map ----------------------------------------------------------------------------------

  function ensureMap() {
    if (map) return map;
    map = L.map("map", { worldCopyJump: true });
    // Bundled world outline in a pane under the tiles: online the tiles cover it, offline
    // (or when tiles are blocked) it is the map.
    map.createPane("outline").style.zIndex = 150;
    fetch(OUTLINE_URL)
      .then((r) => r.json())
      .then((topo) => {
        L.geoJSON(topojson.feature(topo, topo.objects.countries), {
          pane: "outline",
          interactive: false,
          style: { color: "#a39aa8", weight: 0.8, fillColor: "#f2efe9", fillOpacity: 1 },
        }).addTo(map);
      })
      .catch(() => {});
    const tiles = L.tileLayer(TILE_URL, {
      maxZoom: 19,
      attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    });
    tiles.once("tileload", () => {
      tilesOnline = true;
      fitView();
    });
    tiles.addTo(map);
    map.attributionControl.addAttribution("Outline: Natural Earth");
    marks = L.layerGroup().addTo(map);
    map.setView([20, 0], 1);
    return map;
  }

  function label(text, className, direction) {
    const span = document.createElement("span");
    span.textContent = text;
    return [span, { permanent: true, direction: direction, className: className }];
  }

  function fitView() {
    if (!map || !view || !view.length) return;
    const maxZoom = tilesOnline ? ONLINE_ZOOM : OFFLINE_ZOOM;
    // No animation: the new view (and the outline redrawn for it) is there at once.
    if (view.length === 1) map.setView(view[0], maxZoom, { animate: false });
    else map.fitBounds(L.latLngBounds(view), { padding: [40, 40], maxZoom: maxZoom, animate: false });
  }

  // places: the landmarks to mark (every landmark found in the photo, or the answer).
  function showMap(places, gps) {
    const box = $("map-box");
    const points = [];
    box.hidden = !places.length && !gps;
    if (box.hidden) return;
    ensureMap();
    map.invalidateSize();
    marks.clearLayers();
    for (const place of places) {
      const ll = L.latLng(place.latitude, place.longitude);
      const [el, opts] = label(nameOf(place), "place", "top");
      L.marker(ll, { title: nameOf(place), alt: nameOf(place) }).bindTooltip(el, { ...opts, offset: [0, -36] }).addTo(marks);
      points.push(ll);
    }
    if (gps) {
      const ll = L.latLng(gps.latitude, gps.longitude);
      const [el, opts] = label(_("Photo GPS tag"), "photo-gps", "bottom");
      L.circleMarker(ll, { radius: 8, color: "#fff", weight: 2, fillColor: "#d1242f", fillOpacity: 1 })
        .bindTooltip(el, { ...opts, offset: [0, 8] }).addTo(marks);
      if (points.length) L.polyline([points[0], ll], { color: "#d1242f", weight: 2, dashArray: "6 6" }).addTo(marks);
      points.push(ll);
    }
    view = points;
    fitView();
  }

  // -- answer ---------------------------------------------------------------------------------

  const pct = (x) => `${Math.round(x * 100)} %`;
  const fmtKm = (km) => km < 1 ? `${Math.round(km * 1000)} m` : `${km.toLocaleString("en", { maximumFractionDigits: km < 10 ? 1 : 0 })} km`;
  const coords = (p) => `${p.latitude.toFixed(5)}, ${p.longitude.toFixed(5)}`;

  function setLinks(place) {
    const links = $("links");
    links.hidden = !place;
    if (!place) return;
    const { latitude: lat, longitude: lon } = place;
    $("osm").href = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=17/${lat}/${lon}`;
    $("gmaps").href = `https://www.google.com/maps/search/?api=1&query=${lat},${lon}`;
  }

  function setWikidata(lm) {  // the catalog's Wikidata id, when known (catalog.js)
    const row = lm && window.landmarkCatalog && window.landmarkCatalog.get(lm.id);
    const qid = row && row.wikidata;
    $("wikidata-link").hidden = !qid;
    if (qid) $("wikidata").href = `https://www.wikidata.org/wiki/${encodeURIComponent(qid)}`;
  }

  function setFigure(boxId, imgId, url) {
    $(boxId).hidden = !url;
    if (url) $(imgId).src = url;
    else $(imgId).removeAttribute("src");
  }

  // Name and address in the page's language: the catalog row fetched for that language
  // (catalog.js, api/landmarks?lang=), else what the answer came with.
  function nameOf(x) {
    const row = window.landmarkCatalog && window.landmarkCatalog.get(x.id);
    return (row && row.name) || (x.names && x.names[window.i18n.lang]) || x.name;
  }
  function addressOf(lm) {
    const row = window.landmarkCatalog && window.landmarkCatalog.get(lm.id);
    return (row && row.id === lm.id && row.address) || lm.address || "";
  }

  function render(r) {
    last = r;
    const lm = r.landmark;
    const known = r.status === "recognized" && lm;
    const verdict = $("verdict");
    verdict.textContent = known ? _("This is {name}", { name: nameOf(lm) }) : _("Not a landmark I know");
    verdict.className = known ? "" : "unknown";
    $("address").textContent = known ? addressOf(lm) : r.reason || "";

    const conf = document.querySelector(".confidence");
    conf.classList.toggle("low", !known);
    $("confidence").textContent = pct(r.confidence);
    $("confidence-bar").style.width = pct(r.confidence).replace(" ", "");
    conf.title = known ? _("Calibrated probability that this answer is right")
      : _("Probability that the best guess is right: too low to name it");

    const place = known && lm.latitude != null && lm.longitude != null ? lm : null;
    setLinks(place);
    setWikidata(known ? lm : null);

    const gps = $("gps");
    gps.hidden = !r.exif_gps;
    gps.textContent = "";
    if (r.exif_gps) {
      const where = r.exif_place ? [r.exif_place.city, r.exif_place.country].filter(Boolean).join(", ") : "";
      const text = r.distance_km != null
        ? (where ? _("The photo's GPS tag ({place}) is {distance} from {name}.", { place: where, distance: fmtKm(r.distance_km), name: nameOf(lm) })
          : _("The photo's GPS tag is {distance} from {name}.", { distance: fmtKm(r.distance_km), name: nameOf(lm) }))
        : (where ? _("The photo carries a GPS tag ({place}).", { place: where }) : _("The photo carries a GPS tag."));
      const c = document.createElement("span");
      c.className = "coords";
      c.textContent = ` (${coords(r.exif_gps)})`;
      gps.append(text, c);
    }

    const others = known ? r.candidates.slice(1) : r.candidates;
    $("candidates-title").textContent = known ? _("Other candidates") : _("Best guesses");
    const list = $("candidates");
    list.replaceChildren();
    for (const c of others) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = nameOf(c);
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = `${Math.max(0, Math.min(1, c.score)) * 100}%`;
      bar.append(fill);
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = c.score.toFixed(2);
      li.append(name, bar, score);
      li.title = _("similarity {score} (id {id})", { score: c.score.toFixed(3), id: c.id });
      list.append(li);
    }
    if (!others.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = _("none");
      list.append(li);
    }

    setFigure("reference-box", "reference", r.reference_image_url);
    const top = r.candidates[0];
    const ev = r.evidence;
    let caption = _("Most similar reference photo");
    if (top) {
      caption = known ? _("Best-matching reference photo of {name}", { name: nameOf(top) })
        : _("Best-matching reference photo of {name} (best guess)", { name: nameOf(top) });
      if (ev && ev.inliers != null) {
        caption += " — " + ngettext("{n} keypoint matches in the same arrangement",
          "{n} keypoints match in the same arrangement", ev.inliers);
      }
    }
    $("reference-caption").textContent = caption;
    setFigure("heatmap-box", "heatmap", r.heatmap_url);

    $("result").hidden = false;
    const found = drawFound(r);
    const located = found.filter((f) => f.latitude != null && f.longitude != null);
    showMap(located.length ? located : (place ? [place] : []), r.exif_gps);
  }

  // Every landmark found in the photo: its outline over the photo (in the pixels of the photo
  // the server analysed, `image_size`) and a numbered line with its confidence.
  const SVG = "http://www.w3.org/2000/svg";
  function drawFound(r) {
    const svg = $("photo-marks");
    const list = $("found");
    svg.replaceChildren();
    list.replaceChildren();
    const found = r.landmarks || [];
    list.hidden = !found.length;
    if (!found.length || !r.image_size) return found;
    const [w, h] = r.image_size;
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    found.forEach((f, i) => {
      const poly = document.createElementNS(SVG, "polygon");
      poly.setAttribute("points", f.polygon.map((p) => p.join(",")).join(" "));
      if (i === 0) poly.setAttribute("class", "first");
      poly.dataset.landmark = f.id;
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", f.box[0] + 6);
      text.setAttribute("y", f.box[1] + Math.max(14, h / 22));
      text.setAttribute("font-size", Math.max(12, Math.round(h / 22)));
      text.textContent = `${i + 1}`;
      svg.append(poly, text);
      const li = document.createElement("li");
      li.textContent = _("{name} (confidence {confidence})", { name: nameOf(f), confidence: pct(f.confidence) });
      list.append(li);
    });
    return found;
  }

  // -- upload ---------------------------------------------------------------------------------

  function setStatus(text, isError) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", !!isError);
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      return JSON.stringify(body.detail);
    } catch (e) {
      return `${response.status} ${response.statusText}`;
    }
  }

  // The server's size limit, so an oversized photo is refused here instead of half-uploaded
  // (a server that refuses a large upload early may reset the connection mid-send).
  let maxUploadBytes = null;
  fetch("health").then((r) => r.json()).then((h) => { maxUploadBytes = h.max_upload_bytes; }).catch(() => {});
  const mb = (n) => `${(n / 1e6).toLocaleString("en", { maximumFractionDigits: 1 })} MB`;

  async function recognize(file) {
    if (!file) return;
    const mine = ++request;
    if (maxUploadBytes && file.size > maxUploadBytes) {
      $("result").hidden = true;
      setStatus(_("{file}: too large ({size}; the limit is {limit})", { file: file.name || _("The photo"), size: mb(file.size), limit: mb(maxUploadBytes) }), true);
      return;
    }
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = URL.createObjectURL(file);
    $("photo").src = photoUrl;
    setStatus(_("Looking at {file}…", { file: file.name || _("the photo") }));
    const t0 = performance.now();
    const form = new FormData();
    form.append("photo", file, file.name || "pasted.png");
    let response;
    try {
      response = await fetch(`api/recognize?all=true&lang=${encodeURIComponent(window.i18n.lang)}`, { method: "POST", body: form });
    } catch (e) {
      if (mine === request) setStatus(_("The upload failed: no answer from the server (is it still running?)"), true);
      return;
    }
    if (mine !== request) return;
    if (!response.ok) {
      $("result").hidden = true;
      setStatus(await errorText(response), true);
      return;
    }
    const r = await response.json();
    if (mine !== request) return;
    setStatus(_("{file} · answered in {ms} ms", { file: file.name || _("Photo"), ms: Math.round(performance.now() - t0) }));
    render(r);
  }

  // -- input: choose, drop, paste ------------------------------------------------------------

  const input = $("file");
  const drop = $("drop");
  $("choose").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    recognize(input.files[0]);
    input.value = "";
  });
  ["dragenter", "dragover"].forEach((t) => document.addEventListener(t, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "dragend"].forEach((t) => document.addEventListener(t, (e) => {
    if (e.target === document.documentElement || e.target === drop) drop.classList.remove("over");
  }));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const files = e.dataTransfer && e.dataTransfer.files;
    if (files && files.length) recognize(files[0]);
  });
  document.addEventListener("paste", (e) => {
    const files = e.clipboardData ? Array.from(e.clipboardData.files) : [];
    const file = files.find((f) => f.type.startsWith("image/")) || files[0];
    if (file) {
      e.preventDefault();
      recognize(file);
    }
  });
  $("photo").addEventListener("error", () => { $("photo").alt = _("This browser cannot preview the photo (the server can still read it)."); });
  // Another language chosen: the landmark names come again for it (catalog.js), then the
  // answer on screen is drawn again in it.
  window.i18n.onChange(() => {
    if (last) render(last);
  });
  if (window.landmarkCatalog) window.landmarkCatalog.onChange(() => { if (last) render(last); });
})();
