// Chart.js, registered with only the pieces the dashboard draws.
import {
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  DoughnutController,
  Legend,
  LinearScale,
  Tooltip,
} from 'chart.js';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, DoughnutController, ArcElement, Legend, Tooltip);
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
Chart.defaults.maintainAspectRatio = false;
// Drawn once: tests and screenshots see the final picture, and reduced motion is respected.
Chart.defaults.animation = false;

const charts = new WeakMap();

function mount(figure, config, points) {
  const canvas = figure.querySelector('canvas');
  const old = charts.get(figure);
  if (old) old.destroy();
  figure.dataset.points = String(points);
  if (!points) {
    figure.querySelector('.canvas').insertAdjacentHTML('beforeend', '<p class="empty" data-state="empty">No data in this window.</p>');
  }
  const chart = new Chart(canvas, config);
  charts.set(figure, chart);
  figure.dataset.rendered = 'true';
  return chart;
}

function total(datasets) {
  return datasets.reduce((n, d) => n + d.data.filter((v) => v > 0).length, 0);
}

export function barChart(figure, labels, datasets, { horizontal = false, stacked = false } = {}) {
  return mount(
    figure,
    {
      type: 'bar',
      data: { labels, datasets },
      options: {
        indexAxis: horizontal ? 'y' : 'x',
        responsive: true,
        plugins: { legend: { display: datasets.length > 1, position: 'bottom' } },
        scales: {
          x: { stacked, beginAtZero: true, ticks: { precision: 0 } },
          y: { stacked, beginAtZero: true, ticks: { precision: 0 } },
        },
      },
    },
    total(datasets),
  );
}

export function doughnutChart(figure, labels, data) {
  const colours = ['#1565c0', '#2e7d32', '#ef8f00', '#6a1b9a', '#c62828', '#00838f', '#5d4037'];
  return mount(
    figure,
    {
      type: 'doughnut',
      data: { labels, datasets: [{ data, backgroundColor: labels.map((_, i) => colours[i % colours.length]) }] },
      options: { responsive: true, plugins: { legend: { position: 'bottom' } } },
    },
    data.filter((v) => v > 0).length,
  );
}

const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/**
 * Peak usage times: a weekday × hour grid whose cells darken with the count, drawn as a table
 * (readable by screen readers and tests: every cell has its count in `data-logins` and title).
 * `cells`: [{weekday 1-7 (Monday first), hour 0-23, logins}].
 */
export function heatmap(figure, cells) {
  const grid = Array.from({ length: 7 }, () => new Array(24).fill(0));
  for (const c of cells) {
    if (c.weekday >= 1 && c.weekday <= 7 && c.hour >= 0 && c.hour <= 23) grid[c.weekday - 1][c.hour] = c.logins;
  }
  const max = Math.max(0, ...grid.flat());
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
  const hours = Array.from({ length: 24 }, (_, h) => `<th scope="col">${h % 3 === 0 ? String(h).padStart(2, '0') : ''}</th>`).join('');
  const rows = grid
    .map((row, d) => {
      const tds = row
        .map((n, h) => {
          const level = max ? Math.ceil((4 * n) / max) : 0;
          const what = `${WEEKDAYS[d]} ${String(h).padStart(2, '0')}:00–${String(h).padStart(2, '0')}:59: ${n} login${n === 1 ? '' : 's'}`;
          return `<td class="heat l${level}" data-weekday="${d + 1}" data-hour="${h}" data-logins="${n}" title="${esc(what)}"><span class="sr-only">${esc(what)}</span></td>`;
        })
        .join('');
      return `<tr><th scope="row">${WEEKDAYS[d]}</th>${tds}</tr>`;
    })
    .join('');
  const box = figure.querySelector('.canvas');
  box.innerHTML = `<table class="heatmap"><thead><tr><th></th>${hours}</tr></thead><tbody>${rows}</tbody></table>${max ? '' : '<p class="empty" data-state="empty">No data in this window.</p>'}`;
  figure.dataset.points = String(grid.flat().filter((n) => n > 0).length);
  figure.dataset.rendered = 'true';
}

export function destroyCharts(root) {
  root.querySelectorAll('figure.chart').forEach((f) => {
    const c = charts.get(f);
    if (c) c.destroy();
  });
}
