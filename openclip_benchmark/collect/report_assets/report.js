// The report's glue, written by hand where Vega-Lite has nothing: the leaderboard table (sort, filter, search) and
// handing each chart the rows that pass the filters. The charts are Vega-Lite specs built in Python
// (collect/charts.py, the same specs the PNGs are rendered from); vega-embed draws them. A data row with `m` belongs
// to leaderboard row m, one with `c` shows leaderboard column c: that is all this script knows of a chart.
// Every user-supplied name reaches the page as text (textContent, vega-tooltip's escaping), never as markup.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var cols = DATA.columns, where = {};
  cols.forEach(function (c, i) { where[c] = i; });
  var isDataset = {};
  DATA.datasets.forEach(function (d) { isDataset[d] = true; });
  var models = DATA.rows.map(function (values, i) {
    var m = { rank: i + 1, index: i, values: values, family: DATA.families[i], ci: {} };
    m.model = String(values[where.model]);
    m.pretrained = values[where.pretrained] == null ? "" : String(values[where.pretrained]);
    m.preprocess = values[where.preprocess] == null ? "" : String(values[where.preprocess]);
    m.search = [m.model, m.pretrained, m.family, m.preprocess].join(" ").toLowerCase();
    return m;
  });
  (DATA.data.scores || []).forEach(function (s) { if (s.lo != null) models[s.m].ci[s.c] = [s.lo, s.hi]; });
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
  function interval(m, col) {  // the bounds are in percent, as the charts draw them
    var ci = m.ci[col];
    return ci ? ci[0].toFixed(1) + " – " + ci[1].toFixed(1) : null;
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
  var views = {};
  window.reportViews = views;  // the vega View of each chart, by id: for a reader's console and the browser test
  function chartRows(chart, shown) {  // each dataset of the chart, cut to the rows that pass the filters
    var position = {}, columns = null;
    shown.forEach(function (m, i) { position[m.index] = i; });
    var wanted = chart.spec.usermeta && chart.spec.usermeta.columns;
    if (wanted) {
      columns = {};
      (wanted === "y" ? [state.y] : shownDatasets()).forEach(function (c) { columns[c] = true; });
    }
    var out = {};
    chart.data.forEach(function (name) {
      out[name] = DATA.data[name].filter(function (row) {
        return (row.m == null || position[row.m] != null) && (row.c == null || !columns || columns[row.c]);
      }).map(function (row) {  // fresh objects for vega, the models in the table's order
        var copy = Object.assign({}, row);
        if (name === "models") copy.order = position[row.m];
        return copy;
      });
    });
    return out;
  }
  function drawn(view) {  // the points and cells drawn (rules and lines not counted)
    var n = 0;
    (function visit(node) {
      if (node.marktype && node.role === "mark" && (node.marktype === "rect" || node.marktype === "symbol")) n += node.items.length;
      (node.items || []).forEach(visit);
    })(view.scenegraph().root);
    return n;
  }
  function showCount(chart) {  // the chart, or its note in its place when it draws nothing
    var el = $(chart.id), note = el.nextElementSibling, n = drawn(views[chart.id]);
    if (!note || !note.classList.contains("note")) {
      note = document.createElement("div");
      note.className = "note empty";
      el.parentNode.insertBefore(note, el.nextSibling);
    }
    note.textContent = (chart.spec.usermeta && chart.spec.usermeta.empty) || "nothing to draw";
    note.style.display = n ? "none" : "";
    el.style.display = n ? "" : "none";
    el.setAttribute("data-points", String(n));
  }
  var updates = 0;
  function update() {
    var shown = shownModels();
    renderTable(shown);
    return Promise.all(DATA.charts.map(function (chart) {
      var view = views[chart.id], data = chartRows(chart, shown);
      if (chart.spec.usermeta && chart.spec.usermeta.columns === "y") view.signal("y", state.y);
      Object.keys(data).forEach(function (name) { view.data(name, data[name]); });
      return view.runAsync().then(function () { showCount(chart); });
    })).then(function () {
      document.body.setAttribute("data-updates", String(++updates));
    });
  }
  function embed(chart, shown) {  // drawn with its data in the spec: no first pass over empty data
    var spec = Object.assign({}, chart.spec, { datasets: chartRows(chart, shown) });
    var options = { mode: "vega-lite", renderer: "canvas", actions: false, tooltip: { theme: "light" } };
    return vegaEmbed("#" + chart.id, spec, options).then(function (result) {
      views[chart.id] = result.view;
      showCount(chart);
    });
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
  $("scatter-y").addEventListener("change", function () { state.y = $("scatter-y").value; update(); });
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
  Promise.all(DATA.charts.map(function (c) { return embed(c, first); })).then(function () {
    document.body.setAttribute("data-render-ms", String(Math.round(performance.now())));
    document.body.setAttribute("data-ready", "1");
  }, function (error) {
    document.body.setAttribute("data-error", String(error));
    throw error;
  });
})();
