// fmwsss gallery: renders one page of rows from gallery-data.js (window.FMWSSS_GALLERY), sorted and
// filtered as the URL query says (?sort=worst|id&cls=K&page=N). Plain JavaScript, no network.
// Thumbnails are shown small so that a row fits a 1,400 px window; a click shows one at full thumbnail size.
"use strict";
(function () {
  const G = window.FMWSSS_GALLERY;
  const params = new URLSearchParams(window.location.search);
  const sort = params.get("sort") || "id";
  const cls = params.has("cls") && params.get("cls") !== "" ? Number(params.get("cls")) : null;
  const scoreName = G.scores.length ? G.scores[0] : null;

  function score(row) {
    const v = scoreName ? row.miou[scoreName] : null;
    return v === null || v === undefined ? Infinity : v;  // unscored rows last when sorting worst first
  }
  let rows = G.rows.filter(r => cls === null || r.tags.includes(cls));
  if (sort === "worst") {
    rows = rows.slice().sort((a, b) => score(a) - score(b) || (a.id < b.id ? -1 : 1));
  }
  const pages = Math.max(1, Math.ceil(rows.length / G.page_size));
  const page = Math.min(Math.max(1, Number(params.get("page") || 1)), pages);

  function link(over) {
    const q = new URLSearchParams({sort: sort, cls: cls === null ? "" : String(cls), page: String(page)});
    for (const [k, v] of Object.entries(over)) q.set(k, v);
    return "gallery.html?" + q.toString();
  }
  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1); }
  function img(src, alt) {
    const el = document.createElement("img");
    el.src = "thumbs/" + src; el.alt = alt; el.title = alt + " (click to enlarge)";
    el.addEventListener("click", () => zoom(el.src, alt));
    return el;
  }
  function note(text) {
    const el = document.createElement("div"); el.className = "note"; el.textContent = text;
    return el;
  }

  let zoomBox = null;  // made on the first click: an <img> without a source would count as a broken image
  function zoom(src, caption) {
    if (zoomBox === null) {
      zoomBox = document.createElement("div");
      zoomBox.id = "zoom";
      zoomBox.append(document.createElement("img"), document.createElement("div"));
      zoomBox.addEventListener("click", () => { zoomBox.hidden = true; });
      document.addEventListener("keydown", e => { if (e.key === "Escape") zoomBox.hidden = true; });
      document.body.appendChild(zoomBox);
    }
    const [big, text] = zoomBox.children;
    big.src = src; big.alt = caption;
    big.className = src.endsWith(".png") ? "labels" : "";  // label maps stay crisp when enlarged
    text.textContent = caption + " (click or Esc to close)";
    zoomBox.hidden = false;
  }

  const sortSel = document.getElementById("sort");
  sortSel.value = sort;
  sortSel.addEventListener("change", () => { window.location.href = link({sort: sortSel.value, page: "1"}); });
  const clsSel = document.getElementById("cls");
  G.classes.forEach((name, i) => {
    if (i === 0) return;
    const o = document.createElement("option"); o.value = String(i); o.textContent = name; clsSel.appendChild(o);
  });
  clsSel.value = cls === null ? "" : String(cls);
  clsSel.addEventListener("change", () => { window.location.href = link({cls: clsSel.value, page: "1"}); });

  const head = document.querySelector("#gallery thead tr");
  const titles = Object.fromEntries(G.columns.map(c => [c.name, c.title]));
  const scoreTitles = G.scores.map(s => (titles[s] || s) + " mIoU");
  for (const title of ["id", "tags", ...scoreTitles, ...G.columns.map(c => c.title)]) {
    const th = document.createElement("th"); th.textContent = title; head.appendChild(th);
  }
  const body = document.querySelector("#gallery tbody");
  for (const row of rows.slice((page - 1) * G.page_size, page * G.page_size)) {
    const tr = document.createElement("tr");
    tr.dataset.id = row.id;
    const cells = [row.id, row.tags.map(t => G.classes[t]).join(", ")];
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    G.scores.forEach((s, i) => {
      const td = document.createElement("td"); td.className = "num" + (i === 0 ? " miou" : "");
      td.textContent = pct(row.miou[s]); tr.appendChild(td);
    });
    for (const col of G.columns) {
      const td = document.createElement("td");
      if (col.name in row.have) {
        if (col.per_class) {
          td.className = "cams";
          const grid = document.createElement("div");
          for (const t of row.tags) {
            const span = document.createElement("span");
            span.appendChild(img(`${col.dir}/${row.id}_${t}${col.ext}`, `${col.title} ${row.id}: ${G.classes[t]}`));
            span.appendChild(document.createTextNode(G.classes[t]));
            grid.appendChild(span);
          }
          td.appendChild(grid);
        } else {
          td.appendChild(img(`${col.dir}/${row.id}${row.have[col.name]}${col.ext}`, `${col.title} ${row.id}`));
          const fg = (row.foreground || {})[col.name];
          if (fg !== undefined && fg < 0.05) {  // a (nearly) black square: say what it is
            const share = fg === 0 ? "all" : fg < 0.001 ? "over 99.9 %" : `${(100 * (1 - fg)).toFixed(1)} %`;
            td.appendChild(note(`${share} background`));
          }
        }
      } else if (col.name === "segmenter" && !row.val) {
        td.appendChild(note("not in val"));
      }
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }

  const pager = document.getElementById("pager");
  pager.appendChild(document.createTextNode(`${rows.length} images, page `));
  for (let p = 1; p <= pages; p++) {
    const el = document.createElement(p === page ? "span" : "a");
    el.textContent = String(p);
    if (p !== page) el.href = link({page: String(p)});
    pager.appendChild(el);
  }
})();
