// The index's landmarks on a map (from /api/landmarks), below the answer: a user checks at a
// glance that an imported or enriched catalog put every landmark where it belongs. Also the
// lookup app.js uses to link an answer to its Wikidata page. Text only via textContent.
"use strict";

window.landmarkCatalog = (function () {
  const OUTLINE_URL = "static/vendor/world-atlas/countries-110m.json";
  const TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
  const byId = new Map();
  const listeners = [];
  const { _, ngettext } = window.i18n;
  let map = null;

  function popup(lm) {
    const box = document.createElement("div");
    const name = document.createElement("strong");
    name.textContent = lm.name;
    box.append(name);
    const lines = [lm.address, lm.photo_count
      ? ngettext("{n} reference photo", "{n} reference photos", lm.photo_count)
      : _("no reference photos (never predicted)")];
    for (const text of lines.filter(Boolean)) {
      const p = document.createElement("div");
      p.textContent = text;
      box.append(p);
    }
    if (lm.wikidata) {
      const a = document.createElement("a");
      a.href = `https://www.wikidata.org/wiki/${encodeURIComponent(lm.wikidata)}`;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = `Wikidata ${lm.wikidata}`;
      box.append(a);
    }
    return box;
  }

  function draw(landmarks) {
    const placed = landmarks.filter((lm) => lm.latitude != null && lm.longitude != null);
    const section = document.getElementById("catalog");
    document.getElementById("catalog-count").textContent = ngettext(
      "{placed} of {n} landmark has coordinates", "{placed} of {n} landmarks have coordinates",
      landmarks.length, { placed: placed.length });
    section.hidden = false;
    if (map) { map.remove(); map = null; }
    if (!placed.length) return;
    map = L.map("catalog-map", { worldCopyJump: true });
    map.createPane("outline").style.zIndex = 150;
    fetch(OUTLINE_URL).then((r) => r.json()).then((topo) => {
      L.geoJSON(topojson.feature(topo, topo.objects.countries), {
        pane: "outline", interactive: false,
        style: { color: "#a39aa8", weight: 0.8, fillColor: "#f2efe9", fillOpacity: 1 },
      }).addTo(map);
    }).catch(() => {});
    L.tileLayer(TILE_URL, {
      maxZoom: 19,
      attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    }).addTo(map);
    const points = placed.map((lm) => {
      const ll = L.latLng(lm.latitude, lm.longitude);
      const title = document.createElement("span");
      title.textContent = lm.name;
      L.circleMarker(ll, { radius: 6, color: "#fff", weight: 1.5, fillColor: "#1f6feb", fillOpacity: 0.9 })
        .bindTooltip(title).bindPopup(popup(lm)).addTo(map);
      return ll;
    });
    if (points.length === 1) map.setView(points[0], 12);
    else map.fitBounds(L.latLngBounds(points), { padding: [20, 20], maxZoom: 14 });
  }

  // Names and addresses in the page's language (api/landmarks?lang=), again on each switch.
  function load() {
    fetch(`api/landmarks?lang=${encodeURIComponent(window.i18n.lang)}`).then((r) => r.json()).then((landmarks) => {
      byId.clear();
      for (const lm of landmarks) byId.set(lm.id, lm);
      draw(landmarks);
      for (const cb of listeners) cb();
    }).catch(() => {});
  }
  window.i18n.onChange(load);

  return { get: (id) => byId.get(id), onChange: (cb) => listeners.push(cb) };
})();
