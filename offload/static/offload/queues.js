// The admin's Queues page follows the queues without a reload: every few seconds it reads
// GET /api/v1/queues/ (the same rows, with the session) and updates each kind's row, so a
// pause, resume or cap made from another page, the API or the command line shows up here.
// Without JavaScript the page is a plain, static page.
(function () {
  "use strict";
  var table = document.getElementById("offload-queues");
  if (!table || !window.fetch) { return; }
  var every = Number(table.getAttribute("data-refresh-ms")) || 3000;

  function seconds(value, none, zero) {
    if (value === null) { return none; }
    if (zero && value === 0) { return zero; }
    // As the server writes durations (live.js's formatDuration, loaded on every admin page).
    var text = window.offloadDuration ? window.offloadDuration(value) : Math.round(value) + " s";
    return (zero ? "about " : "") + text;
  }

  function set(row, field, text) {
    var cell = row.querySelector('[data-field="' + field + '"]');
    if (cell && cell.textContent !== text) { cell.textContent = text; }
  }

  function apply(queue) {
    var row = table.querySelector('tr[data-kind="' + queue.kind.replace(/"/g, "") + '"]');
    if (!row) { return; }
    set(row, "state", queue.paused ? "paused" : "running");
    set(row, "queued", String(queue.queued));
    set(row, "running", String(queue.running));
    set(row, "oldest", seconds(queue.oldest_queued_seconds, "\u2014"));
    set(row, "finished", String(queue.finished_last_15m));
    set(row, "drain", seconds(queue.drain_seconds, "not draining", "empty"));
    set(row, "cap", queue.concurrency === null ? "none" : String(queue.concurrency));
    var toggle = row.querySelector('button[name="change"][value="pause"], button[name="change"][value="resume"]');
    if (toggle) {
      toggle.value = queue.paused ? "resume" : "pause";
      toggle.textContent = queue.paused ? "Resume" : "Pause";
    }
  }

  function refresh() {
    fetch(table.getAttribute("data-source"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : []; })
      .then(function (queues) { queues.forEach(apply); })
      .catch(function () { /* the next look tries again */ })
      .then(function () { window.setTimeout(refresh, every); });
  }

  window.setTimeout(refresh, every);
})();
