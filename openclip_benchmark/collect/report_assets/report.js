// The report's glue, written by hand where Vega-Lite has nothing: the leaderboard table (sort, filter, search) and
// feeding the rows that pass the filters to the charts (heatmap, scatters, resolution sweep), which vega-embed draws.
// Every user-supplied name reaches the page as text (textContent, vega-tooltip's escaping), never as markup.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var cols = DATA.columns, where = {};
  cols.forEach(function (c, i) { where[c] = i; });
  var isDataset = {};
  DATA.datasets.forEach(function (d) { isDataset[d] = true; });
  var models = DATA.rows.map(function (values, i) {
    var m = { rank: i + 1, values: values, label: DATA.labels[i], family: DATA.families[i], ci: {} };
    m.model = String(values[where.model]);
    m.pretrained = values[where.pretrained] == null ? "" : String(values[where.pretrained]);
    m.preprocess = values[where.preprocess] == null ? "" : String(values[where.preprocess]);
    m.search = [m.model, m.pretrained, m.family, m.preprocess].join(" ").toLowerCase();
    return m;
  });
  DATA.intervals.forEach(function (c) { models[c[0]].ci[cols[c[1]]] = [c[2], c[3]]; });
  var hasPreprocess = models.some(function (m) { return m.preprocess; });
  var state = { q: "", family: "", pretrained: "", collection: "", sort: "#", desc: false, y: "average" };
  var $ = function (id) { return document.getElementById(id); };

  // ---------------------------------------------------------------- values and their text
  function value(m, col) {
    if (col === "#") return m.rank;
    if (col === "family") return m.family;
    var v = m.values[where[col]];
    return v === undefined ? null : v;
  }
  function isScore(col) { return isDataset[col] || col === "average" || col.indexOf("avg_") === 0; }
  function pct(v) { return (100 * v).toFixed(1); }
  function text(col, v) {
    if (v == null) return "–";
    if (typeof v !== "number") return String(v);
    if (col === "params") return v >= 1e6 ? (v / 1e6).toFixed(0) + "M" : v.toFixed(0);
    if (col === "image_gflops" || col === "text_gflops" || col === "seconds") {  // a tiny model's 0.021 stays readable
      return v >= 10 ? v.toLocaleString("en", { minimumFractionDigits: 1, maximumFractionDigits: 1 }) : v.toPrecision(2);
    }
    if (col === "cost_usd") return "$" + v.toFixed(2);
    if (col === "datasets" || col === "#") return v.toFixed(0);
    return isScore(col) ? pct(v) : String(v);
  }
  function interval(m, col) {
    var ci = m.ci[col];
    return ci ? pct(ci[0]) + " – " + pct(ci[1]) : null;
  }
  function tip(m, col, v) {
    var t = { title: m.label, model: m.model, pretrained: m.pretrained || "–", family: m.family };
    if (m.preprocess) t.preprocess = m.preprocess;
    t[col === "average" ? "average over" : "dataset"] = col === "average" ? value(m, "datasets") + " datasets" : col;
    t["value (%)"] = (100 * v).toFixed(2);
    var ci = interval(m, col);
    if (ci) t["95% interval (%)"] = ci;
    return t;
  }

  // ---------------------------------------------------------------- filters
  function shownDatasets() { return state.collection ? DATA.collections[state.collection] : DATA.datasets; }
  function passes(m) {
    if (state.q && m.search.indexOf(state.q) < 0) return false;
    if (state.family && m.family !== state.family) return false;
    if (state.pretrained && m.pretrained !== state.pretrained) return false;
    return !state.collection || shownDatasets().some(function (d) { return value(m, d) != null; });
  }
  function compare(a, b) {
    var x = value(a, state.sort), y = value(b, state.sort);
    if (x == null || y == null) return x == null && y == null ? a.rank - b.rank : (x == null ? 1 : -1);
    var r = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return (state.desc ? -r : r) || a.rank - b.rank;
  }
  function shownModels() { return models.filter(passes).sort(compare); }

  function fill(select, entries) {
    entries.forEach(function (e) {
      var o = document.createElement("option");
      o.value = e[0];
      o.textContent = e[1];
      select.appendChild(o);
    });
  }
  function counted(key) {
    var n = {};
    models.forEach(function (m) { n[m[key]] = (n[m[key]] || 0) + 1; });
    return Object.keys(n).sort(function (a, b) { return a.localeCompare(b); }).map(function (k) { return [k, k + " (" + n[k] + ")"]; });
  }
  fill($("family"), counted("family"));
  fill($("pretrained"), counted("pretrained"));
  var collections = Object.keys(DATA.collections).sort();
  fill($("collection"), collections.map(function (c) { return [c, c + " (" + DATA.collections[c].length + ")"]; }));
  if (!collections.length) $("collection-label").style.display = "none";
  var yChoices = cols.filter(function (c) { return c === "average" || c.indexOf("avg_") === 0; }).concat(DATA.datasets);
  fill($("scatter-y"), yChoices.map(function (c) { return [c, c]; }));

  // ---------------------------------------------------------------- the table
  var table = $("leaderboard");
  function tableColumns() {
    var head = ["#", "model", "pretrained", "family"].concat(hasPreprocess ? ["preprocess"] : []);
    var rest = cols.filter(function (c) { return !isDataset[c] && ["model", "pretrained", "preprocess"].indexOf(c) < 0; });
    return head.concat(rest, shownDatasets());
  }
  function renderTable(shown) {
    var columns = tableColumns();
    var headRow = document.createElement("tr");
    columns.forEach(function (c) {
      var th = document.createElement("th");
      th.textContent = c;
      th.setAttribute("data-col", c);
      th.title = "click to sort";
      if (c === state.sort) th.className = state.desc ? "desc" : "asc";
      headRow.appendChild(th);
    });
    table.tHead.replaceChild(headRow, table.tHead.rows[0]);
    var body = document.createElement("tbody");
    shown.forEach(function (m) {
      var tr = document.createElement("tr");
      columns.forEach(function (c) {
        var td = document.createElement("td"), v = value(m, c), ci = interval(m, c);
        td.textContent = text(c, v);
        if (v == null) td.className = "na";
        else if (typeof v === "number") td.className = ci ? "num ci" : "num";
        if (ci) td.title = text(c, v) + " % (95% interval " + ci + ")";
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.replaceChild(body, table.tBodies[0]);
    table.setAttribute("data-sorted-by", state.sort);
    table.setAttribute("data-rows", String(shown.length));
    $("shown").textContent = shown.length + " of " + models.length + " models, " + shownDatasets().length + " datasets";
  }
  table.tHead.addEventListener("click", function (event) {
    var col = event.target.getAttribute && event.target.getAttribute("data-col");
    if (!col) return;
    state.desc = state.sort === col ? !state.desc : isScore(col) || col === "datasets";
    state.sort = col;
    update();
  });

  // ---------------------------------------------------------------- the charts (Vega-Lite)
  var families = counted("family").map(function (e) { return e[0]; });
  var familyColor = { field: "family", type: "nominal", scale: { domain: families, scheme: "tableau20" }, legend: { title: "family" } };
  var zoom = [{ name: "zoom", select: "interval", bind: "scales" }];
  var FAMILY_COLUMN = "(family)";
  function scatter(id, xTitle, xOf, empty, note) {  // interval rules are layered under the points when any has one
    var rules = { mark: { type: "rule", opacity: 0.5 }, transform: [{ filter: "datum.lo != null" }],
                  encoding: { y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color: familyColor } };
    var points = { params: zoom, mark: { type: "point", filled: true, size: 60, opacity: 0.85, tooltip: { expr: "datum.tip" } },
                   encoding: { y: { field: "y", type: "quantitative", scale: { zero: false } }, color: familyColor } };
    return {
      id: id, data: "points", empty: empty, note: note, rows: scatterPoints(xOf), yAxis: true,
      spec: { width: 480, height: 320, data: { name: "points" },
              encoding: { x: { field: "x", type: "quantitative", scale: { type: "log" }, title: xTitle } } },
      layers: function (values) {
        points.encoding.y.title = state.y === "average" ? "average main metric (%)" : state.y + " (%)";
        return values.some(function (v) { return v.lo != null; }) ? [rules, points] : [points];
      }
    };
  }
  function scatterPoints(xOf) {
    return function (shown) {
      return shown.map(function (m) {
        var x = xOf(m), y = value(m, state.y), ci = m.ci[state.y];
        if (x == null || !(x > 0) || y == null) return null;
        return { x: x, y: 100 * y, lo: ci ? 100 * ci[0] : null, hi: ci ? 100 * ci[1] : null, family: m.family, tip: tip(m, state.y, y) };
      }).filter(Boolean);
    };
  }
  function gflops(m) {
    var image = value(m, "image_gflops");
    return image == null ? null : image + (value(m, "text_gflops") || 0);
  }
  var cost = DATA.cost;
  $("cost-caption").textContent = cost.column === "seconds" ? "Accuracy against seconds spent (no GPU price: CPU runs)" : "Accuracy against dollars spent";
  var charts = [
    {
      id: "heatmap", data: "cells", empty: "no results yet",
      spec: {  // a first column of family colours, then a cell per dataset; the two layers have their own colours
        data: { name: "cells" }, width: { step: 16 }, height: { step: 12 },
        encoding: {
          x: { field: "dataset", type: "nominal", sort: [FAMILY_COLUMN].concat(DATA.datasets), axis: { orient: "top", labelAngle: -55, title: null } },
          y: { field: "label", type: "nominal", sort: { field: "order", op: "min" }, axis: { title: null, labelLimit: 320 } }
        },
        layer: [
          { transform: [{ filter: "datum.v != null" }], mark: { type: "rect", tooltip: { expr: "datum.tip" } },
            encoding: { color: { field: "v", type: "quantitative", scale: { scheme: "viridis", domain: [0, 100] }, title: "%" } } },
          { transform: [{ filter: "datum.v == null" }], mark: { type: "rect", tooltip: { expr: "datum.tip" } },
            encoding: { color: familyColor } }
        ],
        resolve: { scale: { color: "independent" } },
        config: { axis: { labelFontSize: 10 } }
      },
      rows: function (shown) {
        var cells = [], datasets = shownDatasets();
        shown.forEach(function (m, order) {
          var scored = datasets.filter(function (d) { return value(m, d) != null; });
          if (!scored.length) return;
          var t = { title: m.label, model: m.model, pretrained: m.pretrained || "–", family: m.family };
          cells.push({ label: m.label, dataset: FAMILY_COLUMN, order: order, v: null, family: m.family, tip: t });
          scored.forEach(function (d) {
            var v = value(m, d);
            cells.push({ label: m.label, dataset: d, order: order, v: 100 * v, tip: tip(m, d, v) });
          });
        });
        return cells;
      }
    },
    scatter("accuracy_vs_gflops", "GFLOPs per image + text sample (log)", gflops, "no GFLOPs known for the models shown"),
    scatter("accuracy_vs_cost", cost.title, function (m) { return value(m, cost.column); },
            cost.note || "no cost data for the models shown", cost.note)
  ];
  if (DATA.sweep.rows.length) {
    charts.push({
      id: "resolution_sweep", data: "lines", empty: "no sweep for the models shown",
      spec: {
        width: 480, height: 320, data: { name: "lines" },
        encoding: {
          x: { field: "size", type: "quantitative", scale: { zero: false }, axis: { values: DATA.sweep.sizes }, title: "image size (pixels)" },
          y: { field: "v", type: "quantitative", scale: { zero: false }, title: "main metric (%)" },
          color: familyColor, detail: { field: "series" }
        },
        layer: [{ mark: "line" }, { params: zoom, mark: { type: "point", filled: true, size: 50, tooltip: { expr: "datum.tip" } } }]
      },
      rows: function () {
        var out = [], datasets = {};
        shownDatasets().forEach(function (d) { datasets[d] = true; });
        DATA.sweep.rows.forEach(function (r) {
          var m = { model: r.model, pretrained: r.pretrained || "", family: r.family, preprocess: "", ci: {} };
          m.search = [m.model, m.pretrained, m.family].join(" ").toLowerCase();
          m.label = m.model + (m.pretrained ? ":" + m.pretrained : "");
          if (!datasets[r.dataset] || !passes(m)) return;
          r.values.forEach(function (v, i) {
            if (v == null) return;
            var t = tip(m, r.dataset, v);
            t["image size"] = DATA.sweep.sizes[i];
            out.push({ size: DATA.sweep.sizes[i], v: 100 * v, family: r.family, series: m.label + " " + r.dataset, tip: t });
          });
        });
        return out;
      }
    });
  }

  var views = {};
  window.reportViews = views;  // the vega View of each chart, by id: for a reader's console and the browser test
  function chartValues(chart, shown) {  // the chart's rows, or its note in its place when it has none
    var values = chart.rows(shown), el = $(chart.id), note = el.nextElementSibling;
    if (!note || !note.classList.contains("note")) {
      note = document.createElement("div");
      el.parentNode.insertBefore(note, el.nextSibling);
    }
    note.className = values.length ? "note" : "note empty";
    note.textContent = values.length ? chart.note || "" : chart.empty;
    note.style.display = note.textContent ? "" : "none";
    el.style.display = values.length ? "" : "none";
    el.setAttribute("data-points", String(values.length));
    return values;
  }
  var updates = 0;
  function update() {
    var shown = shownModels();
    renderTable(shown);
    return Promise.all(charts.map(function (c) { return views[c.id].data(c.data, chartValues(c, shown)).runAsync(); })).then(function () {
      document.body.setAttribute("data-updates", String(++updates));
    });
  }
  function embed(chart, shown) {  // drawn with its data in the spec: no first pass over empty data
    var values = chartValues(chart, shown);
    if (chart.layers) chart.spec.layer = chart.layers(values);
    chart.spec.datasets = {};
    chart.spec.datasets[chart.data] = values;
    var options = { mode: "vega-lite", renderer: "canvas", actions: false, tooltip: { theme: "light" } };
    return vegaEmbed("#" + chart.id, chart.spec, options).then(function (result) { views[chart.id] = result.view; });
  }

  // ---------------------------------------------------------------- controls
  var pending = null;
  $("search").addEventListener("input", function () {
    clearTimeout(pending);
    pending = setTimeout(function () { state.q = $("search").value.trim().toLowerCase(); update(); }, 120);
  });
  ["family", "pretrained", "collection"].forEach(function (id) {
    $(id).addEventListener("change", function () { state[id] = $(id).value; update(); });
  });
  $("scatter-y").addEventListener("change", function () {
    state.y = $("scatter-y").value;
    var scatters = charts.filter(function (c) { return c.yAxis; });
    scatters.forEach(function (c) { views[c.id].finalize(); });
    var shown = shownModels();
    Promise.all(scatters.map(function (c) { return embed(c, shown); })).then(function () {
      document.body.setAttribute("data-updates", String(++updates));
    });
  });
  $("reset").addEventListener("click", function () {
    ["search", "family", "pretrained", "collection"].forEach(function (id) { $(id).value = ""; });
    state.q = state.family = state.pretrained = state.collection = "";
    update();
  });
  function step(factor) {
    var view = views.heatmap;
    ["x_step", "y_step"].forEach(function (name) { view.signal(name, Math.max(3, Math.min(48, view.signal(name) * factor))); });
    view.runAsync();
  }
  $("zoom-in").addEventListener("click", function () { step(1.25); });
  $("zoom-out").addEventListener("click", function () { step(0.8); });

  // index.html#sort=-average (descending) or #sort=model: a link that opens the table sorted
  var wanted = /sort=(-?)([^&]+)/.exec(location.hash);
  if (wanted && tableColumns().indexOf(decodeURIComponent(wanted[2])) >= 0) {
    state.sort = decodeURIComponent(wanted[2]);
    state.desc = wanted[1] === "-";
  }
  var first = shownModels();
  renderTable(first);
  Promise.all(charts.map(function (c) { return embed(c, first); })).then(function () {
    document.body.setAttribute("data-render-ms", String(Math.round(performance.now())));
    document.body.setAttribute("data-ready", "1");
  }, function (error) {
    document.body.setAttribute("data-error", String(error));
    throw error;
  });
})();
