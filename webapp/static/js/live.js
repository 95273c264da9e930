/* Live passthrough on the supply page (templates/_live.html): the balance read from billing (a stale value is
   labelled with its age, never shown as current), an on-demand meter read (request, then poll the status URL
   until the value arrives) and today's chart: published 15-minute values plus provisional ones newer than the
   last publish. Texts shown to customers are Spanish; error texts come from the API. */
(function () {
  "use strict";

  var section = document.getElementById("live");
  if (!section) { return; }

  var clpFormat = new Intl.NumberFormat("es-CL", { style: "currency", currency: "CLP", maximumFractionDigits: 0 });
  var kwhFormat = new Intl.NumberFormat("es-CL", { minimumFractionDigits: 3, maximumFractionDigits: 3 });
  var STATUS_LABELS = { paid: "Al día", due: "Por pagar", overdue: "Vencido" };
  var POLL_MS = 2000;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) { return { status: response.status, body: body }; });
      });
  }

  function dateLabel(isoDate) {  // "2026-12-05" -> "05-12-2026"
    return isoDate ? isoDate.slice(8, 10) + "-" + isoDate.slice(5, 7) + "-" + isoDate.slice(0, 4) : "";
  }

  function timeLabel(isoInstant) {  // the API writes instants in Santiago local time with offset
    return dateLabel(isoInstant.slice(0, 10)) + " a las " + isoInstant.slice(11, 16);
  }

  function santiagoToday() {
    return new Intl.DateTimeFormat("en-CA", { timeZone: "America/Santiago" }).format(new Date());
  }

  function shiftIsoDate(isoDate, days) {
    var parts = isoDate.split("-").map(Number);
    return new Date(Date.UTC(parts[0], parts[1] - 1, parts[2] + days)).toISOString().slice(0, 10);
  }

  // --- balance ----------------------------------------------------------------------------------------------

  function showBalance() {
    var amount = section.querySelector(".live-balance-amount");
    var details = section.querySelector(".live-balance-details");
    var warning = section.querySelector(".live-balance-warning");
    getJson(section.dataset.balanceUrl).then(function (result) {
      var body = result.body;
      if (result.status !== 200) {
        amount.textContent = body.error || "No pudimos consultar tu saldo en este momento.";
        return;
      }
      amount.textContent = clpFormat.format(body.amount_due_clp) + " · " +
        (STATUS_LABELS[body.payment_status] || body.payment_status);
      details.textContent = (body.due_date ? "Vence el " + dateLabel(body.due_date) + ". " : "") +
        (body.stale ? "Último saldo conocido, consultado el " : "Consultado el ") + timeLabel(body.as_of) + ".";
      section.querySelector(".live-balance").classList.toggle("stale", body.stale);
      warning.hidden = !body.stale;
      warning.textContent = body.stale ? body.message : "";
    }).catch(function () {
      amount.textContent = "No pudimos consultar tu saldo en este momento.";
    });
  }

  // --- on-demand read ---------------------------------------------------------------------------------------

  var button = section.querySelector(".live-read-button");
  var progress = section.querySelector(".live-read-progress");
  var readStatus = section.querySelector(".live-read-status");

  function finishRead(text) {
    progress.hidden = true;
    button.disabled = false;
    readStatus.textContent = text;
  }

  function pollRead(statusUrl) {
    getJson(statusUrl).then(function (result) {
      var body = result.body;
      if (result.status !== 200) { finishRead(body.error || "No pudimos consultar la lectura."); return; }
      if (body.state === "pending") {
        readStatus.textContent = body.message;
        window.setTimeout(function () { pollRead(statusUrl); }, POLL_MS);
        return;
      }
      if (body.state === "done") {
        finishRead("Lectura: " + kwhFormat.format(body.value_kwh) + " kWh, el " + timeLabel(body.read_at) +
          ". " + body.message);
        return;
      }
      finishRead(body.message);
    }).catch(function () {
      window.setTimeout(function () { pollRead(statusUrl); }, POLL_MS);
    });
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    progress.hidden = false;
    readStatus.textContent = "Enviando la solicitud a tu medidor…";
    fetch(section.dataset.readsUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: "{}",
    }).then(function (response) {
      return response.json().then(function (body) {
        if (response.status === 202) {
          readStatus.textContent = body.message;
          window.setTimeout(function () { pollRead(body.status_url); }, POLL_MS);
        } else {
          finishRead(body.error || "No pudimos pedir la lectura.");
        }
      });
    }).catch(function () {
      finishRead("No pudimos pedir la lectura. Revisa tu conexión e intenta nuevamente.");
    });
  });

  // --- today so far -----------------------------------------------------------------------------------------

  function showToday() {
    var box = document.getElementById("live-today-chart");
    var status = box.querySelector(".chart-status");
    var today = santiagoToday();
    var query = new URLSearchParams({ granularity: "15min", from: today, to: shiftIsoDate(today, 1) });
    Promise.all([
      getJson(section.dataset.consumptionUrl + "?" + query.toString()),
      getJson(section.dataset.todayUrl),
    ]).then(function (results) {
      var published = results[0].status === 200 ? results[0].body.points : [];
      var live = results[1].body;
      var provisional = results[1].status === 200 ? live.points : [];
      var lastPublished = published.length ? published[published.length - 1].end : "";
      // validated data wins: provisional points only after the last published interval
      provisional = provisional.filter(function (point) { return point.end > lastPublished; });
      var points = published.map(function (p) { return { end: p.end, kwh: p.kwh, provisional: false }; })
        .concat(provisional.map(function (p) { return { end: p.end, kwh: p.kwh, provisional: true }; }));
      status.textContent = results[1].status === 200 ? live.message : (live.error || "");
      if (typeof window.Chart === "undefined" || !points.length) {
        if (!points.length) { status.textContent = "Aún no hay datos de hoy. " + status.textContent; }
        return;
      }
      new window.Chart(box.querySelector("canvas"), {
        type: "bar",
        data: {
          labels: points.map(function (p) { return p.end.slice(11, 16); }),
          datasets: [{
            label: "kWh",
            data: points.map(function (p) { return p.kwh; }),
            backgroundColor: points.map(function (p) { return p.provisional ? "#b8c7e0" : "#0b6e4f"; }),
          }],
        },
        options: {
          animation: false,
          plugins: {
            legend: { display: false },
            tooltip: { callbacks: { label: function (item) {
              return kwhFormat.format(item.raw) + " kWh" + (points[item.dataIndex].provisional ? " (provisional)" : "");
            } } },
          },
          scales: { y: { beginAtZero: true, title: { display: true, text: "kWh" } } },
        },
      });
    }).catch(function () {
      status.textContent = "No pudimos obtener el consumo de hoy en este momento.";
    });
  }

  showBalance();
  showToday();
})();
