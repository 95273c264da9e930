/* Supply page charts: daily consumption for 13 months and one day at 15 minutes, both fed by the JSON API.
   Numbers are formatted es-CL (decimal comma). Times come from the API already in America/Santiago. */
(function () {
  "use strict";

  var kwhFormat = new Intl.NumberFormat("es-CL", { minimumFractionDigits: 2, maximumFractionDigits: 3 });
  var totalFormat = new Intl.NumberFormat("es-CL", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  var COLORS = { actual: "#0b6e4f", edited: "#7fb8a4", estimated: "#a9cfc1", missing: "#d9dee4" };
  var QUALITY_LABELS = { actual: "real", edited: "editado", estimated: "estimado", missing: "sin dato" };

  function shiftIsoDate(isoDate, days) {
    var parts = isoDate.split("-").map(Number);
    var shifted = new Date(Date.UTC(parts[0], parts[1] - 1, parts[2] + days));
    return shifted.toISOString().slice(0, 10);
  }

  function localDateLabel(isoInstant) {
    // "2026-04-04T00:00:00-03:00" -> "04-04-2026" (the text already carries Santiago local time)
    return isoInstant.slice(8, 10) + "-" + isoInstant.slice(5, 7) + "-" + isoInstant.slice(0, 4);
  }

  function localTimeLabel(isoInstant) {
    return isoInstant.slice(11, 16);
  }

  function fetchSeries(baseUrl, params) {
    var query = new URLSearchParams(params).toString();
    return fetch(baseUrl + "?" + query, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) {
          throw new Error(body.error || "No se pudieron obtener los datos.");
        }
        return body;
      });
    });
  }

  function seriesTotal(points) {
    return points.reduce(function (sum, point) { return sum + (point.kwh || 0); }, 0);
  }

  function missingCount(points) {
    return points.filter(function (point) { return point.quality === "missing"; }).length;
  }

  function drawBars(box, chart, points, labelOf, onBarClick) {
    var status = box.querySelector(".chart-status");
    if (typeof window.Chart === "undefined") {
      status.textContent = "No se pudo cargar el gráfico. Total del período: " +
        totalFormat.format(seriesTotal(points)) + " kWh.";
      return null;
    }
    var data = {
      labels: points.map(function (point) { return labelOf(point.start); }),
      datasets: [{
        label: "kWh",
        data: points.map(function (point) { return point.kwh; }),
        backgroundColor: points.map(function (point) { return COLORS[point.quality] || COLORS.actual; }),
        borderWidth: 0,
      }],
    };
    if (chart) {
      chart.data = data;
      chart.update();
      return chart;
    }
    return new window.Chart(box.querySelector("canvas"), {
      type: "bar",
      data: data,
      options: {
        locale: "es-CL",
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (context) {
                var point = context.chart.$points[context.dataIndex];
                var value = point.kwh === null ? "sin dato" : kwhFormat.format(point.kwh) + " kWh";
                return value + " (" + (QUALITY_LABELS[point.quality] || point.quality) + ")";
              },
            },
          },
        },
        scales: {
          x: { ticks: { autoSkip: true, maxRotation: 0 } },
          y: {
            beginAtZero: true,
            title: { display: true, text: "kWh" },
            ticks: { callback: function (value) { return kwhFormat.format(value); } },
          },
        },
        onClick: function (event, elements, chartInstance) {
          if (onBarClick && elements.length) {
            onBarClick(chartInstance.$points[elements[0].index]);
          }
        },
      },
    });
  }

  function describe(box, points, what) {
    var missing = missingCount(points);
    box.querySelector(".chart-status").textContent =
      "Total " + what + ": " + totalFormat.format(seriesTotal(points)) + " kWh" +
      (missing ? " · " + missing + " sin dato" : "");
  }

  function setUp() {
    var dailyBox = document.getElementById("daily-chart");
    var dayBox = document.getElementById("quarter-hour-chart");
    var dayInput = document.getElementById("day-input");
    if (!dailyBox || !dayBox || !dayInput) {
      return;
    }
    var dailyChart = null;
    var dayChart = null;

    function showDay(isoDate) {
      dayInput.value = isoDate;
      fetchSeries(dayBox.dataset.consumptionUrl, {
        granularity: "15min", from: isoDate, to: shiftIsoDate(isoDate, 1), flow: "delivered",
      }).then(function (series) {
        dayChart = drawBars(dayBox, dayChart, series.points, localTimeLabel, null);
        if (dayChart) { dayChart.$points = series.points; describe(dayBox, series.points, "del día"); }
      }).catch(function (error) {
        dayBox.querySelector(".chart-status").textContent = error.message;
      });
    }

    fetchSeries(dailyBox.dataset.consumptionUrl, {
      granularity: "day", from: dailyBox.dataset.from, to: dailyBox.dataset.to, flow: "delivered",
    }).then(function (series) {
      dailyChart = drawBars(dailyBox, dailyChart, series.points, localDateLabel, function (point) {
        showDay(point.start.slice(0, 10));
      });
      if (dailyChart) { dailyChart.$points = series.points; describe(dailyBox, series.points, "del período"); }
    }).catch(function (error) {
      dailyBox.querySelector(".chart-status").textContent = error.message;
    });

    document.getElementById("day-previous").addEventListener("click", function () {
      showDay(shiftIsoDate(dayInput.value, -1));
    });
    document.getElementById("day-next").addEventListener("click", function () {
      showDay(shiftIsoDate(dayInput.value, 1));
    });
    dayInput.addEventListener("change", function () {
      if (dayInput.value) { showDay(dayInput.value); }
    });
    showDay(dayInput.value);
  }

  document.addEventListener("DOMContentLoaded", setUp);
})();
