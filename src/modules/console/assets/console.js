// Console behaviour that markup alone cannot give: charts (Chart.js) drawn from JSON islands
// (<script type="application/json" data-chart>), since the CSP forbids inline scripts.

function drawCharts(root) {
  if (typeof Chart === 'undefined') return;
  for (const island of root.querySelectorAll('script[type="application/json"][data-chart]')) {
    const canvas = document.getElementById(island.dataset.chart);
    if (!canvas || canvas.dataset.drawn) continue;
    const spec = JSON.parse(island.textContent);
    canvas.dataset.drawn = '1';
    // Chart: the global of chart.umd.min.js.
    new Chart(canvas, {
      type: spec.type || 'line',
      data: { labels: spec.labels, datasets: spec.datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: 'bottom' } },
      },
    });
  }
}
document.addEventListener('DOMContentLoaded', () => drawCharts(document));
document.addEventListener('htmx:afterSettle', (e) => drawCharts(e.target));
// After htmx swapped the phone, focus the Message box again so the next text can be typed at once.
document.addEventListener('htmx:afterSettle', () => {
  const box = document.getElementById('sim-text');
  if (box) box.focus();
});
