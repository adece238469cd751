// Album map: one marker per landmark with its photo count, and a dashed red line from each
// photo's GPS tag to the landmark its pixels show when the two are far apart.
// Shared by the web app's album page and the self-contained HTML report of `tag --html`.
// rows: objects with landmark_id, landmark_name, landmark_latitude, landmark_longitude,
// gps_latitude, gps_longitude, gps_mismatch, name (shown). outline: a world-atlas TopoJSON.
"use strict";

window.drawAlbumMap = function (elementId, rows, outline) {
  // texts in the page's language when it has window.i18n (the album page, the tag report)
  const _ = (msg, params) => (window.i18n ? window.i18n._(msg, params) : msg.replace(/\{(\w+)\}/g, (m, k) => String(params[k])));
  // A view first: Leaflet's vector renderer needs one before lines and circles are added.
  const map = L.map(elementId, { worldCopyJump: true, zoomSnap: 0.25 }).setView([20, 0], 1);
  if (outline) {
    L.geoJSON(topojson.feature(outline, outline.objects.countries), {
      interactive: false,
      style: { color: "#a39aa8", weight: 0.8, fillColor: "#f2efe9", fillOpacity: 1 },
    }).addTo(map);
  }
  map.attributionControl.addAttribution("Outline: Natural Earth");
  const groups = new Map();
  for (const r of rows) {
    if (r.landmark_id == null || r.landmark_latitude == null) continue;
    const g = groups.get(r.landmark_id) || { name: r.landmark_name, ll: [r.landmark_latitude, r.landmark_longitude], n: 0 };
    g.n += 1;
    groups.set(r.landmark_id, g);
  }
  const points = [];
  for (const [id, g] of groups) {
    const icon = L.divIcon({ className: "album-marker", html: "", iconSize: [30, 30] });
    const m = L.marker(g.ll, { icon: icon, title: `${g.name}: ${g.n}`, alt: g.name });
    m.on("add", () => {
      const el = m.getElement();
      el.textContent = String(g.n);
      el.dataset.landmark = id;
    });
    const tip = document.createElement("span");
    tip.textContent = `${g.name} (${g.n})`;
    m.bindTooltip(tip, { direction: "top", offset: [0, -14] }).addTo(map);
    points.push(g.ll);
  }
  for (const r of rows) {
    if (!r.gps_mismatch || r.gps_latitude == null || r.landmark_latitude == null) continue;
    const tag = [r.gps_latitude, r.gps_longitude];
    const line = L.polyline([tag, [r.landmark_latitude, r.landmark_longitude]], {
      color: "#d1242f", weight: 2, dashArray: "6 6", className: "mismatch-line",
    });
    const tip = document.createElement("span");
    tip.textContent = _("{photo}: tagged {km} km from {landmark}", { photo: r.name, km: Math.round(r.distance_km), landmark: r.landmark_name });
    line.bindTooltip(tip, { sticky: true }).addTo(map);
    L.circleMarker(tag, { radius: 5, color: "#fff", weight: 1.5, fillColor: "#d1242f", fillOpacity: 1, className: "mismatch-tag" })
      .bindTooltip(tip.cloneNode(true)).addTo(map);
    points.push(tag);
  }
  if (points.length === 1) map.setView(points[0], 5);
  else if (points.length) map.fitBounds(L.latLngBounds(points), { padding: [30, 30], maxZoom: 6 });
  return map;
};
