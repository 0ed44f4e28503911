// Keyboard shortcuts on a review item: a = approve, d = deny, n = next item; and the live
// progress of a running run (a small poll of /runs/ID/progress). The pages work without
// JavaScript: this only adds to them. No inline script anywhere (the CSP forbids it).
document.addEventListener("keydown", function (event) {
  var t = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
            t.isContentEditable)) return;
  var target = {a: "approve", d: "deny", n: "next"}[event.key];
  var el = target && document.getElementById(target);
  if (!el) return;
  event.preventDefault();
  el.click();
});

(function () {
  var box = document.getElementById("progress");
  if (!box || !box.dataset.poll) return;
  var url = box.dataset.poll;
  var every = Math.max(250, parseInt(box.dataset.interval, 10) || 2000);
  var live = document.getElementById("live");
  var bar = document.getElementById("progress-bar");
  var failures = 0;

  function show(data) {
    // textContent only: the values are numbers and a status word, never markup.
    document.querySelectorAll("[data-field]").forEach(function (el) {
      var v = data[el.dataset.field];
      if (v !== undefined && v !== null) el.textContent = String(v);
    });
    if (bar) {
      bar.max = Math.max(1, data.planned);
      bar.value = Math.max(0, data.done - data.paused);
    }
  }

  function tick() {
    fetch(url, {credentials: "same-origin", headers: {accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { failures += 1; } else { failures = 0; show(data); }
        var going = data ? (data.status === "running" || data.status === "waiting for review")
                         : failures < 5;
        if (live) live.textContent = going ? "(updating live)" : "";
        if (going) setTimeout(tick, every);
      })
      .catch(function () {
        failures += 1;
        if (failures < 5) setTimeout(tick, every);
      });
  }
  setTimeout(tick, every);
})();
