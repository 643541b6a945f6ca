// Live job updates for the admin: progress bars, statuses and the activity panel follow
// /ws/events/ without a reload. Without JavaScript the pages are plain, static pages.
(function () {
  "use strict";
  if (!window.WebSocket) { return; }
  var lastSeq = null;
  var retryDelay = 1000;

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function apply(job) {
    var id = String(job.id);
    var value = job.progress === null ? 0 : job.progress;
    var label = job.progress === null ? "\u2014" : Math.round(job.progress) + "%";
    each('progress.offload-progress[data-job="' + id + '"]', function (bar) { bar.value = value; bar.textContent = label; });
    each('.offload-progress-label[data-job="' + id + '"]', function (el) { el.textContent = label; });
    each('.offload-status[data-job="' + id + '"]', function (el) {
      el.textContent = job.status;
      el.className = "offload-status offload-status-" + job.status;
    });
  }

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
      } else if (message.type === "job") {
        lastSeq = Math.max(lastSeq || 0, message.seq);
        apply(message.job);
        addActivity(message);
      }
    };
    socket.onclose = function (event) {
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
