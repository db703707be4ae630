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

export function destroyCharts(root) {
  root.querySelectorAll('figure.chart').forEach((f) => {
    const c = charts.get(f);
    if (c) c.destroy();
  });
}
