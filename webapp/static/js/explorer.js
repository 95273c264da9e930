/* Consumption explorer (supply and bill pages), fed by GET /api/v1/supplies/<id>/consumption.
   Granularity 15 min / hour / day / month / billing period; click (or Enter) on a bar drills down, "Volver"
   (or Escape) goes back up; date range, previous/next, same period last year, delivered/received/net, kWh or pesos.
   Quality is drawn distinctly: solid green real, striped amber estimated, purple edited, full-height grey missing.
   Every view is also written to an accessible table. Times arrive from the API already in America/Santiago. */
(function () {
  "use strict";

  var TEXTS = {
    es: {
      granularity: { "15min": "cada 15 minutos", hour: "por hora", day: "por día", month: "por mes",
        billing_period: "por período de facturación" },
      quality: { actual: "real", estimated: "estimado", edited: "editado", missing: "sin dato" },
      total: "Total", missing: "sin dato", lastYear: "Año anterior", loading: "Cargando…",
      noChart: "No se pudo cargar el gráfico; los datos están en la tabla.", to: "al",
      noPrices: "sin tarifa publicada", error: "No se pudieron obtener los datos.",
      periods: "con datos faltantes", vs: "frente a",
    },
    en: {
      granularity: { "15min": "every 15 minutes", hour: "hourly", day: "daily", month: "monthly",
        billing_period: "per billing period" },
      quality: { actual: "actual", estimated: "estimated", edited: "edited", missing: "no data" },
      total: "Total", missing: "no data", lastYear: "Last year", loading: "Loading…",
      noChart: "The chart could not be loaded; the data is in the table.", to: "to",
      noPrices: "no tariff published", error: "The data could not be loaded.",
      periods: "with missing data", vs: "vs",
    },
  };
  var COLORS = { actual: "#0b6e4f", estimated: "#b45309", edited: "#6d28d9", missing: "#d5dae0", compare: "#1d2733" };
  var DRILL = { month: "day", billing_period: "day", day: "hour", hour: "15min" };
  var MAX_DAYS = { "15min": 31, hour: 92, day: 800 };

  // -- dates as ISO text (local calendar dates, no time zone involved) ----------------------------------------
  function parseIso(iso) {
    var parts = iso.split("-").map(Number);
    return new Date(Date.UTC(parts[0], parts[1] - 1, parts[2]));
  }
  function toIso(date) { return date.toISOString().slice(0, 10); }
  function addDays(iso, days) {
    var date = parseIso(iso);
    date.setUTCDate(date.getUTCDate() + days);
    return toIso(date);
  }
  function addMonths(iso, months) {
    var parts = iso.split("-").map(Number);
    var index = parts[0] * 12 + (parts[1] - 1) + months;
    var year = Math.floor(index / 12), month = index % 12;
    var lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
    return toIso(new Date(Date.UTC(year, month, Math.min(parts[2], lastDay))));
  }
  function daysBetween(fromIso, toIso_) { return Math.round((parseIso(toIso_) - parseIso(fromIso)) / 86400000); }
  function dmy(iso) { return iso.slice(8, 10) + "-" + iso.slice(5, 7) + "-" + iso.slice(0, 4); }

  function Explorer(root) {
    this.root = root;
    this.lang = root.dataset.lang === "en" ? "en" : "es";
    this.t = TEXTS[this.lang];
    var locale = this.lang === "en" ? "en-US" : "es-CL";
    this.kwhFormat = new Intl.NumberFormat(locale, { minimumFractionDigits: 1, maximumFractionDigits: 3 });
    this.totalFormat = new Intl.NumberFormat(locale, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
    this.intFormat = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
    this.monthFormat = new Intl.DateTimeFormat(locale, { month: "short", year: "numeric", timeZone: "UTC" });
    this.pricesAvailable = root.dataset.prices === "yes";
    this.lastDay = root.dataset.lastDay;
    this.state = { granularity: root.dataset.granularity, from: root.dataset.from, to: root.dataset.to };
    this.stack = [];
    this.points = [];
    this.comparison = null;
    this.focusIndex = -1;
    this.chart = null;
    this.request = 0;
    this.el = function (id) { return root.querySelector("#" + id); };
    this.bind();
    this.load();
  }

  Explorer.prototype.flow = function () {
    var select = this.el("flow");
    return select ? select.value : "delivered";
  };
  Explorer.prototype.unit = function () { return this.el("unit").value; };
  Explorer.prototype.clp = function (value) {
    return value === null || value === undefined ? "—" : (value < 0 ? "-$" : "$") + this.intFormat.format(Math.abs(value));
  };
  Explorer.prototype.kwh = function (value) {
    return value === null || value === undefined ? this.t.missing : this.kwhFormat.format(value) + " kWh";
  };

  Explorer.prototype.label = function (point, long) {
    var start = point.start, end = point.end, g = this.state.granularity;
    if (g === "15min" || g === "hour") {
      var time = start.slice(11, 16);
      return long || daysBetween(this.state.from, this.state.to) > 1 ? dmy(start.slice(0, 10)) + " " + time : time;
    }
    if (g === "day") { return long ? dmy(start.slice(0, 10)) : start.slice(8, 10) + "-" + start.slice(5, 7); }
    if (g === "month") {
      var label = this.monthFormat.format(parseIso(start.slice(0, 10)));
      return long && start.slice(8, 10) !== "01" ? dmy(start.slice(0, 10)) + " " + this.t.to + " " + dmy(addDays(end.slice(0, 10), -1)) : label;
    }
    return dmy(start.slice(0, 10)) + " " + this.t.to + " " + dmy(addDays(end.slice(0, 10), -1));
  };

  // -- window rules ---------------------------------------------------------------------------------------
  Explorer.prototype.fitWindow = function (granularity, from, to) {
    var days = daysBetween(from, to);
    if (granularity === "15min") { return { from: addDays(to, -1), to: to }; }
    if (granularity === "hour") { return days <= 7 ? { from: from, to: to } : { from: addDays(to, -7), to: to }; }
    if (granularity === "day") {
      if (days < 7) { return { from: addDays(to, -31), to: to }; }
      return days > MAX_DAYS.day ? { from: addDays(to, -MAX_DAYS.day), to: to } : { from: from, to: to };
    }
    if (days < 60) { return { from: addMonths(to.slice(0, 8) + "01", -12), to: to }; }
    return { from: from, to: to };
  };

  Explorer.prototype.shift = function (direction) {
    var s = this.state, days = daysBetween(s.from, s.to);
    if (s.granularity === "month" || s.granularity === "billing_period") {
      var months = Math.max(1, Math.round(days / 30.44));
      return { from: addMonths(s.from, direction * months), to: addMonths(s.to, direction * months) };
    }
    return { from: addDays(s.from, direction * days), to: addDays(s.to, direction * days) };
  };

  Explorer.prototype.go = function (next, remember) {
    if (remember) { this.stack.push({ granularity: this.state.granularity, from: this.state.from, to: this.state.to }); }
    this.state = next;
    this.focusIndex = -1;
    this.load();
  };

  Explorer.prototype.drill = function (index) {
    var point = this.points[index], next = DRILL[this.state.granularity];
    if (!point || !next) { return; }
    var from = point.start.slice(0, 10), to = point.end.slice(0, 10);
    if (next === "hour" || next === "15min") { to = addDays(from, 1); }
    this.go({ granularity: next, from: from, to: to }, true);
  };

  Explorer.prototype.up = function () {
    if (this.stack.length) { this.go(this.stack.pop(), false); }
  };

  // -- events ---------------------------------------------------------------------------------------------
  Explorer.prototype.bind = function () {
    var self = this;
    Array.prototype.forEach.call(this.root.querySelectorAll("button.granularity"), function (button) {
      button.addEventListener("click", function () {
        var granularity = button.dataset.granularity;
        var fitted = self.fitWindow(granularity, self.state.from, self.state.to);
        self.go({ granularity: granularity, from: fitted.from, to: fitted.to }, true);
      });
    });
    this.el("range-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var from = self.el("range-from").value, toInclusive = self.el("range-to").value;
      if (!from || !toInclusive) { return; }
      var to = addDays(toInclusive, 1);
      if (to <= from) { self.status(self.lang === "en" ? "The start must be before the end." : "La fecha inicial debe ser anterior a la final."); return; }
      self.go({ granularity: self.state.granularity, from: from, to: to }, true);
    });
    this.el("range-previous").addEventListener("click", function () {
      var shifted = self.shift(-1);
      self.go({ granularity: self.state.granularity, from: shifted.from, to: shifted.to }, false);
    });
    this.el("range-next").addEventListener("click", function () {
      var shifted = self.shift(1);
      self.go({ granularity: self.state.granularity, from: shifted.from, to: shifted.to }, false);
    });
    this.el("drill-up").addEventListener("click", function () { self.up(); });
    ["flow", "compare"].forEach(function (id) {
      var control = self.el(id);
      if (control) { control.addEventListener("change", function () { self.load(); }); }
    });
    this.el("unit").addEventListener("change", function () { self.render(); });
    var canvas = this.el("explorer-canvas");
    canvas.addEventListener("keydown", function (event) { self.onKey(event); });
  };

  Explorer.prototype.onKey = function (event) {
    var count = this.points.length;
    if (!count) { return; }
    var index = this.focusIndex;
    switch (event.key) {
      case "ArrowRight": index = Math.min(count - 1, index + 1); break;
      case "ArrowLeft": index = index < 0 ? count - 1 : Math.max(0, index - 1); break;
      case "Home": index = 0; break;
      case "End": index = count - 1; break;
      case "Enter": case " ":
        event.preventDefault();
        if (this.focusIndex >= 0) { this.drill(this.focusIndex); }
        return;
      case "Escape": case "Backspace":
        event.preventDefault();
        this.up();
        return;
      default: return;
    }
    event.preventDefault();
    this.focus(index);
  };

  Explorer.prototype.focus = function (index) {
    this.focusIndex = index;
    var point = this.points[index];
    var text = this.describePoint(point, index);
    this.el("explorer-focus").textContent = text;
    if (this.chart) {
      var active = [{ datasetIndex: 0, index: index }];
      this.chart.setActiveElements(active);
      this.chart.tooltip.setActiveElements(active, { x: 0, y: 0 });
      this.chart.update();
    }
  };

  Explorer.prototype.describePoint = function (point, index) {
    var text = this.label(point, true) + ": " + this.kwh(point.kwh);
    if (this.pricesAvailable && point.clp !== null && point.clp !== undefined) { text += " · " + this.clp(point.clp); }
    text += " (" + this.t.quality[point.quality] + ")";
    var other = this.comparison && this.comparison[index];
    if (other) { text += " · " + this.t.lastYear + ": " + this.kwh(other.kwh); }
    return text;
  };

  // -- data -----------------------------------------------------------------------------------------------
  Explorer.prototype.fetchSeries = function (params) {
    var self = this;
    var url = this.root.dataset.consumptionUrl + "?" + new URLSearchParams(params).toString();
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) { throw new Error(body.error || self.t.error); }
        return body;
      });
    });
  };

  Explorer.prototype.status = function (text) { this.el("explorer-summary").textContent = text; };

  Explorer.prototype.load = function () {
    var self = this, s = this.state, requestId = ++this.request;
    var params = { granularity: s.granularity, from: s.from, to: s.to, flow: this.flow() };
    var compare = this.el("compare").checked;
    this.status(this.t.loading);
    this.syncControls();
    var pending = [this.fetchSeries(params)];
    if (compare) {
      pending.push(this.fetchSeries({ granularity: s.granularity, from: addMonths(s.from, -12),
        to: addMonths(s.to, -12), flow: params.flow }));
    }
    Promise.all(pending).then(function (answers) {
      if (requestId !== self.request) { return; }
      self.points = answers[0].points;
      self.pricesAvailable = answers[0].prices_available === true;
      self.comparison = compare ? answers[1].points : null;
      self.render();
    }).catch(function (error) {
      if (requestId !== self.request) { return; }
      self.status(error.message);
    });
  };

  Explorer.prototype.syncControls = function () {
    var s = this.state;
    Array.prototype.forEach.call(this.root.querySelectorAll("button.granularity"), function (button) {
      button.setAttribute("aria-pressed", button.dataset.granularity === s.granularity ? "true" : "false");
    });
    this.el("range-from").value = s.from;
    this.el("range-to").value = addDays(s.to, -1);
    this.el("drill-up").disabled = this.stack.length === 0;
    // downloads are limited to 400 days: a longer view downloads its last 400 days
    var downloadFrom = daysBetween(s.from, s.to) > 400 ? addDays(s.to, -400) : s.from;
    var query = "?from=" + encodeURIComponent(downloadFrom) + "&to=" + encodeURIComponent(s.to);
    this.el("download-csv").href = this.root.dataset.csvUrl + query;
    this.el("download-greenbutton").href = this.root.dataset.greenbuttonUrl + query;
    this.el("explorer-title").textContent = this.t.granularity[s.granularity] + " · " + dmy(s.from) + " " +
      this.t.to + " " + dmy(addDays(s.to, -1));
  };

  Explorer.prototype.values = function (points) {
    var useClp = this.unit() === "clp" && this.pricesAvailable;
    return points.map(function (point) { return useClp ? point.clp : point.kwh; });
  };

  Explorer.prototype.render = function () {
    var self = this, points = this.points, values = this.values(points);
    var useClp = this.unit() === "clp" && this.pricesAvailable;
    var known = values.filter(function (value) { return value !== null && value !== undefined; });
    var compareValues = this.comparison ? this.values(this.comparison).slice(0, points.length) : null;
    var top = Math.max.apply(null, known.concat(compareValues ? compareValues.filter(function (v) { return v !== null; }) : []).concat([0]));
    var ceiling = top > 0 ? top : 1;
    this.renderSummary();
    this.renderTable();
    this.root.querySelector(".legend-compare").hidden = !this.comparison;
    if (typeof window.Chart === "undefined") { this.status(this.t.noChart); return; }
    var stripes = this.stripes();
    var datasets = [
      {
        type: "bar", label: useClp ? "$" : "kWh", data: values, order: 1, borderWidth: 0, grouped: false,
        backgroundColor: points.map(function (point) {
          return point.quality === "estimated" ? stripes : (COLORS[point.quality] || COLORS.actual);
        }),
      },
      {
        type: "bar", label: this.t.missing, order: 2, borderWidth: 0, grouped: false,
        data: points.map(function (point) { return point.quality === "missing" && (point.kwh === null) ? ceiling : null; }),
        backgroundColor: COLORS.missing,
      },
    ];
    if (compareValues) {
      datasets.push({ type: "line", label: this.t.lastYear, data: compareValues, order: 0, borderColor: COLORS.compare,
        backgroundColor: COLORS.compare, borderWidth: 2, borderDash: [4, 3], pointRadius: 2, spanGaps: false });
    }
    var labels = points.map(function (point) { return self.label(point, false); });
    this.useClp = useClp;
    if (this.chart) {
      this.chart.data.labels = labels;
      this.chart.data.datasets = datasets;
      this.chart.options.scales.y.title.text = useClp ? "$" : "kWh";
      this.chart.update();
      return;
    }
    this.chart = new window.Chart(this.el("explorer-canvas"), {
      data: { labels: labels, datasets: datasets },
      options: {
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: function (item) { return item.datasetIndex !== 1 || self.points[item.dataIndex].kwh === null; },
            callbacks: {
              title: function (items) { return items.length ? self.label(self.points[items[0].dataIndex], true) : ""; },
              label: function (item) {
                var point = self.points[item.dataIndex];
                if (item.datasetIndex === 2) {
                  var other = self.comparison[item.dataIndex];
                  return self.t.lastYear + ": " + (self.useClp ? self.clp(other.clp) : self.kwh(other.kwh));
                }
                var text = self.kwh(point.kwh);
                if (self.pricesAvailable && point.clp !== null) { text += " · " + self.clp(point.clp); }
                return text + " (" + self.t.quality[point.quality] + ")";
              },
            },
          },
        },
        scales: {
          x: { stacked: true, ticks: { autoSkip: true, maxRotation: 0 } },
          y: {
            beginAtZero: true,
            title: { display: true, text: useClp ? "$" : "kWh" },
            ticks: { callback: function (value) { return self.useClp ? self.clp(value) : self.kwhFormat.format(value); } },
          },
        },
        onClick: function (event, elements) {
          if (elements.length) { self.drill(elements[0].index); }
        },
        onHover: function (event, elements) {
          event.native.target.style.cursor = elements.length && DRILL[self.state.granularity] ? "pointer" : "default";
        },
      },
    });
  };

  Explorer.prototype.stripes = function () {
    var tile = document.createElement("canvas");
    tile.width = tile.height = 8;
    var context = tile.getContext("2d");
    context.fillStyle = "#fde7c7";
    context.fillRect(0, 0, 8, 8);
    context.strokeStyle = COLORS.estimated;
    context.lineWidth = 2.5;
    context.beginPath();
    context.moveTo(-2, 10); context.lineTo(10, -2);
    context.moveTo(-2, 2); context.lineTo(2, -2);
    context.moveTo(6, 10); context.lineTo(10, 6);
    context.stroke();
    return context.createPattern(tile, "repeat");
  };

  Explorer.prototype.renderSummary = function () {
    var points = this.points, total = 0, totalClp = 0, missing = 0, hasClp = false;
    points.forEach(function (point) {
      total += point.kwh || 0;
      if (point.clp !== null && point.clp !== undefined) { totalClp += point.clp; hasClp = true; }
      if (point.quality === "missing") { missing += 1; }
    });
    var text = this.t.total + ": " + this.totalFormat.format(total) + " kWh";
    if (this.pricesAvailable && hasClp) { text += " · " + this.clp(totalClp); }
    if (missing) { text += " · " + missing + " " + this.t.periods; }
    if (this.comparison) {
      var before = this.comparison.reduce(function (sum, point) { return sum + (point.kwh || 0); }, 0);
      text += " · " + this.t.lastYear + ": " + this.totalFormat.format(before) + " kWh";
      if (before > 0) {
        var change = 100 * (total - before) / before;
        text += " (" + (change > 0 ? "+" : "") + this.totalFormat.format(change) + " %)";
      }
    }
    this.status(text);
  };

  Explorer.prototype.renderTable = function () {
    var self = this, body = this.el("explorer-table").querySelector("tbody");
    var compareColumn = this.root.querySelector(".compare-column");
    compareColumn.hidden = !this.comparison;
    var rows = document.createDocumentFragment();
    this.points.forEach(function (point, index) {
      var row = document.createElement("tr");
      var cells = [self.label(point, true), point.kwh === null ? self.t.missing : self.kwhFormat.format(point.kwh),
        self.pricesAvailable ? self.clp(point.clp) : "—", self.t.quality[point.quality]];
      if (self.comparison) {
        var other = self.comparison[index];
        cells.push(other && other.kwh !== null ? self.kwhFormat.format(other.kwh) : self.t.missing);
      }
      cells.forEach(function (text, column) {
        var cell = document.createElement(column === 0 ? "th" : "td");
        if (column === 0) { cell.scope = "row"; }
        cell.textContent = text;
        if (column === 3) { cell.className = "quality quality-" + point.quality; }
        row.appendChild(cell);
      });
      rows.appendChild(row);
    });
    body.replaceChildren(rows);
  };

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("explorer");
    if (root) { window.amiExplorer = new Explorer(root); }
  });
})();
