// The overview's chart: throughput and failures per minute over the last hour (uPlot), refreshed
// every 15 s from /dashboard/series.json. No data yet: an empty chart and a note.
(function () {
  "use strict";
  var el = document.getElementById("chart");
  if (!el || !window.uPlot) { return; }
  var plot = null;
  function width() { return Math.max(280, el.clientWidth); }
  function draw(d) {
    var rows = [d.minute, d.completed, d.failed, d.retried];
    var any = d.attempts.some(function (n) { return n > 0; });
    document.getElementById("chart-empty").hidden = any;
    if (plot) { plot.setData(rows); return; }
    plot = new uPlot({
      width: width(), height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: "tasks / min" }],
      series: [
        {},
        { label: "completed", stroke: "#1f8a4c", fill: "rgba(31,138,76,0.08)", width: 2, points: { show: false } },
        { label: "failed", stroke: "#c0392b", width: 2, points: { show: false } },
        { label: "retried", stroke: "#b7791f", width: 1, dash: [4, 4], points: { show: false } }
      ]
    }, rows, el);
  }
  function load() {
    fetch(el.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) { draw(d); } })
      .catch(function () { /* the next tick tries again */ });
  }
  window.addEventListener("resize", function () { if (plot) { plot.setSize({ width: width(), height: 220 }); } });
  load();
  setInterval(load, 15000);
})();
