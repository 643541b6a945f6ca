// Live admin pages: statuses, progress, attempts, times and errors follow /ws/events/ without a
// reload; the job list takes in new rows that match its filters, and the dashboard follows the
// same stream. Without JavaScript every page is a plain, complete static page.
//
// Each page carries the event seq it was rendered at (<meta name="offload-seq">). On connect the
// script resumes from that seq, so an event that landed between the page's queries and the
// socket's hello is replayed, not lost.
(function () {
  "use strict";
  if (!window.WebSocket) { return; }
  var seqMeta = document.querySelector('meta[name="offload-seq"]');
  var zoneMeta = document.querySelector('meta[name="offload-time-zone"]');
  var lastSeq = seqMeta && seqMeta.content !== "" ? parseInt(seqMeta.content, 10) : null;
  var timeZone = zoneMeta ? zoneMeta.content : "UTC";
  var retryDelay = 1000;
  // A list or dashboard re-read waits this long for more events, so a burst costs one request.
  var REFRESH_DELAY = 400;
  var DASHBOARD_POLL = 30000;

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // The admin's one time format: "2026-05-01 08:55:03 UTC", in the site's zone.
  function formatTime(iso) {
    if (!iso) { return "\u2014"; }
    var date = new Date(iso);
    var parts = {};
    try {
      new Intl.DateTimeFormat("en-US", {
        timeZone: timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
        minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short"
      }).formatToParts(date).forEach(function (p) { parts[p.type] = p.value; });
    } catch (e) {
      return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
    }
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute + ":" +
      parts.second + " " + parts.timeZoneName;
  }

  // Seconds as the server writes them (offload/admin/formatting.py duration()).
  function formatDuration(seconds) {
    if (seconds === null || isNaN(seconds)) { return "\u2014"; }
    if (seconds < 1) { return Math.round(seconds * 1000) + " ms"; }
    if (seconds < 10) { return seconds.toFixed(1) + " s"; }
    if (seconds < 60) { return Math.round(seconds) + " s"; }
    var whole = Math.floor(seconds);
    var units = [["d", 86400, "h", 3600], ["h", 3600, "min", 60], ["min", 60, "s", 1]];
    for (var i = 0; i < units.length; i++) {
      var u = units[i];
      if (whole >= u[1]) {
        var rest = Math.floor((whole % u[1]) / u[3]);
        return Math.floor(whole / u[1]) + " " + u[0] + (rest ? " " + rest + " " + u[2] : "");
      }
    }
    return whole + " s";
  }
  // The Queues page (queues.js) writes its durations with the same function.
  window.offloadDuration = formatDuration;

  function setTime(el, iso) {
    el.textContent = "";
    if (!iso) { el.textContent = "\u2014"; return; }
    var time = document.createElement("time");
    time.setAttribute("datetime", iso);
    time.textContent = formatTime(iso);
    el.appendChild(time);
  }

  function known(id) {
    return document.querySelector('.offload-status[data-job="' + id + '"]') !== null;
  }

  function apply(job) {
    var id = String(job.id);
    if (job.status === "running") {
      // Every event of a running job was written with a fresh heartbeat.
      each('.offload-heartbeat[data-beat-of="' + id + '"]', function (el) {
        el.setAttribute("data-heartbeat-at", new Date().toISOString());
      });
    }
    var value = job.progress === null ? 0 : job.progress;
    var label = job.progress === null ? "\u2014" : Math.round(job.progress) + "%";
    each('progress.offload-progress[data-job="' + id + '"]', function (bar) { bar.value = value; bar.textContent = label; });
    each('.offload-progress-label[data-job="' + id + '"]', function (el) { el.textContent = label; });
    each('.offload-status[data-job="' + id + '"]', function (el) {
      el.textContent = job.status;
      el.className = "offload-status offload-status-" + job.status;
    });
    each('.offload-field[data-job="' + id + '"]', function (el) {
      var field = el.getAttribute("data-field");
      if (field === "attempts") {
        el.textContent = job.attempts;
      } else if (field === "error") {
        var first = (job.error || "").trim().split("\n")[0];
        el.textContent = first.length > 60 ? first.slice(0, 59) + "\u2026" : first;
        el.title = job.error || "";
        el.classList.toggle("offload-error-failed", job.status === "failed");
      } else if (field === "started_at" || field === "finished_at") {
        setTime(el, job[field]);
      } else if (field === "run") {
        // Only an attempt seen running ran to this finish; a job cancelled while it waited
        // keeps the server's figure (its last attempt's time, offload/admin/formatting.py run_seconds).
        var ranToFinish = el.getAttribute("data-running") === "1";
        el.setAttribute("data-started-at", job.started_at || "");
        el.setAttribute("data-running", job.status === "running" ? "1" : "");
        if (job.status !== "running" && job.started_at && job.finished_at && ranToFinish) {
          el.textContent = formatDuration((new Date(job.finished_at) - new Date(job.started_at)) / 1000);
        } else if (job.status === "queued") {
          el.textContent = "\u2014";
        }
      } else if (field === "wait") {
        if (job.status !== "queued") { el.setAttribute("data-waiting", ""); }
        var queuedAt = el.getAttribute("data-queued-at");
        if (job.started_at && queuedAt && new Date(job.started_at) >= new Date(queuedAt)) {
          el.textContent = formatDuration((new Date(job.started_at) - new Date(queuedAt)) / 1000);
        }
      }
    });
  }

  // Running jobs' run times, and queued jobs' waits, tick between events.
  setInterval(function () {
    each('.offload-field[data-field="wait"][data-waiting="1"]', function (el) {
      var queuedAt = el.getAttribute("data-queued-at");
      if (queuedAt) { el.textContent = formatDuration(Math.max(0, Date.now() - new Date(queuedAt)) / 1000); }
    });
    each('.offload-field[data-field="run"][data-running="1"]', function (el) {
      var started = el.getAttribute("data-started-at");
      if (started) { el.textContent = formatDuration((Date.now() - new Date(started)) / 1000); }
    });
    // A running job's heartbeat ages between reads; past data-lost-after its worker is presumed lost.
    each(".offload-heartbeat[data-heartbeat-at]", function (el) {
      var age = Math.max(0, Date.now() - new Date(el.getAttribute("data-heartbeat-at"))) / 1000;
      var text = el.querySelector(".offload-heartbeat-age");
      if (text) { text.textContent = "heartbeat " + formatDuration(Math.floor(age)) + " ago"; }
      var badge = el.querySelector(".offload-lost");
      if (badge) { badge.hidden = age <= parseFloat(el.getAttribute("data-lost-after")); }
    });
  }, 1000);

  // Bare heartbeats send no event: while a page shows running jobs, it is read again every few
  // seconds, so a beat (or its absence) shows within one heartbeat interval.
  var HEARTBEAT_REREAD = 5000;
  setInterval(function () {
    if (!document.querySelector(".offload-heartbeat[data-heartbeat-at]")) { return; }
    scheduleListRefresh();
    if (jobPageId) { scheduleJobPageRefresh(jobPageId); }
  }, HEARTBEAT_REREAD);

  function addActivity(message) {
    var list = document.getElementById("offload-activity");
    if (!list || message.event === "progress") { return; }
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.href = "/admin/offload/job/" + message.job.id + "/change/";
    link.textContent = message.job.kind + " #" + message.job.id;
    item.appendChild(link);
    item.appendChild(document.createTextNode(" " + message.event));
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 15) { list.removeChild(list.lastChild); }
  }

  // --- The job list: re-read the page itself (its filters apply on the server) -------------

  var jobList = document.querySelector("body.model-job.change-list #result_list tbody");
  var listTimer = null;

  function rowJob(row) {
    var marked = row.querySelector("[data-job]");
    return marked ? marked.getAttribute("data-job") : null;
  }

  // Live elements are updated in place (a script or a test may hold them); the rest is replaced.
  function patchCell(mine, fresh, behind) {
    if (mine.innerHTML === fresh.innerHTML) { return; }
    var olds = mine.querySelectorAll("[data-job]");
    var news = fresh.querySelectorAll("[data-job]");
    if (!olds.length || olds.length !== news.length) {
      if (!behind || !olds.length) { mine.innerHTML = fresh.innerHTML; }
      return;
    }
    if (behind) { return; }
    for (var i = 0; i < olds.length; i++) {
      if (olds[i].tagName !== news[i].tagName) { mine.innerHTML = fresh.innerHTML; return; }
      Array.prototype.forEach.call(news[i].attributes, function (a) { olds[i].setAttribute(a.name, a.value); });
      if (olds[i].tagName === "PROGRESS") { olds[i].value = parseFloat(news[i].getAttribute("value")); }
      olds[i].innerHTML = news[i].innerHTML;
    }
  }

  function refreshList() {
    listTimer = null;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "offload-live" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("#result_list tbody");
        if (!fresh) { return; }
        // A page rendered before the newest event we applied would set live values back: then
        // only its new rows and quiet columns are taken, and the list is read once more.
        var freshSeqMeta = doc.querySelector('meta[name="offload-seq"]');
        var freshSeq = freshSeqMeta ? parseInt(freshSeqMeta.content, 10) : 0;
        var behind = lastSeq !== null && freshSeq < lastSeq;
        if (behind) { scheduleListRefresh(); }
        var current = {};
        Array.prototype.forEach.call(jobList.rows, function (row) { current[rowJob(row)] = row; });
        var previous = null;
        Array.prototype.forEach.call(fresh.rows, function (row) {
          var id = rowJob(row);
          var mine = current[id];
          if (mine) {
            // Every cell but the selection checkbox, whose state is the operator's.
            for (var i = 0; i < row.cells.length && i < mine.cells.length; i++) {
              if (!mine.cells[i].classList.contains("action-checkbox")) { patchCell(mine.cells[i], row.cells[i], behind); }
            }
            previous = mine;
          } else {
            var added = document.importNode(row, true);
            added.classList.add("offload-row-new");
            jobList.insertBefore(added, previous ? previous.nextSibling : jobList.firstChild);
            previous = added;
          }
        });
        // Rows the page no longer holds (they left its filters) stay, dimmed, until a reload.
        var kept = {};
        Array.prototype.forEach.call(fresh.rows, function (row) { kept[rowJob(row)] = true; });
        if (!behind) {
          Array.prototype.forEach.call(jobList.rows, function (row) {
            var gone = !kept[rowJob(row)];
            row.classList.toggle("offload-row-gone", gone);
            row.title = gone ? "No longer matches the filters; reload to remove it" : "";
          });
        }
        if (!behind) { refreshCounters(doc); }
        document.documentElement.setAttribute("data-offload-list-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next event tries again */ });
  }

  // The list's counters follow its rows: "N results", the paginator's "N jobs", "x of N selected".
  function refreshCounters(doc) {
    ["#toolbar .small.quiet", "p.paginator"].forEach(function (selector) {
      var mine = document.querySelector(selector), fresh = doc.querySelector(selector);
      if (mine && fresh && mine.innerHTML !== fresh.innerHTML) { mine.innerHTML = fresh.innerHTML; }
    });
    var counter = document.querySelector("span.action-counter");
    if (counter) {
      var rows = jobList.querySelectorAll("input.action-select").length;
      var checked = jobList.querySelectorAll("input.action-select:checked").length;
      counter.setAttribute("data-actions-icnt", String(rows));
      counter.textContent = checked + " of " + rows + " selected";
    }
  }

  function scheduleListRefresh() {
    if (jobList && listTimer === null) { listTimer = setTimeout(refreshList, REFRESH_DELAY); }
  }

  // --- A job's page: after its job changes state, re-read the page (buttons, times, result, timeline) --

  var jobPage = document.querySelector("body.model-job.change-form #content-main");
  var jobPageBadge = jobPage ? jobPage.querySelector(".offload-status[data-job]") : null;
  var jobPageId = jobPageBadge ? jobPageBadge.getAttribute("data-job") : null;
  var jobPageTimer = null;

  // Re-read this page and hand the fresh document to take(); the page says when it is done.
  function rereadPage(take) {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        take(new DOMParser().parseFromString(html, "text/html"));
        document.documentElement.setAttribute("data-offload-page-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next event tries again */ });
  }

  function refreshJobPage() {
    jobPageTimer = null;
    rereadPage(function (doc) {
      var fresh = doc.querySelector("#content-main");
      if (fresh) { jobPage.innerHTML = fresh.innerHTML; }
    });
  }

  function scheduleJobPageRefresh(jobId) {
    if (jobPage && String(jobId) === jobPageId && jobPageTimer === null) {
      jobPageTimer = setTimeout(refreshJobPage, REFRESH_DELAY);
    }
  }

  // --- A library's page: after one of its scans changes state, re-read its read-only fields ---
  // (the scans' Took and Result, the item count, "Last scanned"); the form's inputs are the
  // operator's and stay as they are.

  var libraryPage = document.querySelector("body.model-library.change-form #content-main");
  var libraryPageId = libraryPage ? (window.location.pathname.match(/\/library\/(\d+)\/change\//) || [])[1] : null;
  var libraryPageTimer = null;

  function refreshLibraryPage() {
    libraryPageTimer = null;
    rereadPage(function (doc) {
      Array.prototype.forEach.call(doc.querySelectorAll("#content-main .form-row"), function (row) {
        var field = Array.prototype.filter.call(row.classList, function (c) { return c.indexOf("field-") === 0; })[0];
        var news = row.querySelector(".readonly");
        var mine = field ? libraryPage.querySelector(".form-row." + field + " .readonly") : null;
        if (news && mine && mine.innerHTML !== news.innerHTML) { mine.innerHTML = news.innerHTML; }
      });
    });
  }

  function scheduleLibraryPageRefresh(job) {
    var target = job.target || {};
    if (libraryPage && target.type === "library" && String(target.id) === libraryPageId && libraryPageTimer === null) {
      libraryPageTimer = setTimeout(refreshLibraryPage, REFRESH_DELAY);
    }
  }

  // --- The dashboard: its live part, re-read at the seq the page has seen --------------------

  var dashboard = document.getElementById("ops-live");
  var dashboardTimer = null;

  function refreshDashboard() {
    dashboardTimer = null;
    var url = window.location.pathname + "?fragment=1" + (lastSeq !== null ? "&seq=" + lastSeq : "");
    fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        dashboard.innerHTML = html;
        document.documentElement.setAttribute("data-offload-dashboard-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next event or poll tries again */ });
  }

  function scheduleDashboardRefresh() {
    if (dashboard && dashboardTimer === null) { dashboardTimer = setTimeout(refreshDashboard, REFRESH_DELAY); }
  }

  if (dashboard) {
    // Workers and Redis send no events: a slow poll keeps their panels current.
    setInterval(scheduleDashboardRefresh, DASHBOARD_POLL);
  }

  function handle(message) {
    lastSeq = Math.max(lastSeq || 0, message.seq);
    var wasKnown = known(message.job.id);
    apply(message.job);
    addActivity(message);
    if (message.event !== "progress" || !wasKnown) {
      scheduleListRefresh();
      scheduleDashboardRefresh();
      scheduleJobPageRefresh(message.job.id);
      scheduleLibraryPageRefresh(message.job);
    }
    document.documentElement.setAttribute("data-offload-seq", String(lastSeq));
  }

  // The header's indicator: "live" while the stream is up, "reconnecting…" while it is not.
  function showLiveState(up) {
    var el = document.getElementById("offload-live-state");
    if (!el) { return; }
    el.textContent = up ? "live" : "reconnecting\u2026";
    el.className = "offload-live " + (up ? "offload-live-on" : "offload-live-off");
    el.title = up ? "This page follows every change as it happens." :
      "The live connection is down: this page may be behind. It reconnects and catches up by itself.";
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + "/ws/events/");
    socket.onmessage = function (frame) {
      var message;
      try { message = JSON.parse(frame.data); } catch (e) { return; }
      if (message.type === "hello") {
        retryDelay = 1000;
        if (lastSeq !== null && message.seq > lastSeq) {
          socket.send(JSON.stringify({ type: "resume", after: lastSeq }));
        }
        lastSeq = Math.max(lastSeq || 0, message.seq);
        document.documentElement.setAttribute("data-offload-connected", "1");
        showLiveState(true);
      } else if (message.type === "job") {
        handle(message);
      }
    };
    socket.onclose = function (event) {
      document.documentElement.removeAttribute("data-offload-connected");
      showLiveState(false);
      if (event.code === 4401) { return; }  // logged out: no point retrying
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    };
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }
})();
