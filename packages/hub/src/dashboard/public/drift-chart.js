/* global uPlot */
import { chartData, chartFeatures, clockText, scoreText, THRESHOLD } from './drift-format.js';

const HEIGHT = 240;
const COLORS = ['#dc2626', '#2563eb', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];
/**
 * Scores span orders of magnitude (a shifted feature scores 50, a quiet one 0.1), so the y scale is
 * logarithmic with the threshold in the middle; scores below this floor are drawn on it.
 */
const FLOOR = 0.01;

const clamp = (row) => row.map((v) => (v === null ? null : Math.max(FLOOR, v)));

function plotOptions(width, names, labels, yMax, scores) {
  return {
    width,
    height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: {
      x: { time: false, range: (_u, min, max) => (min === max ? [min - 0.5, max + 0.5] : [min, max]) },
      y: { distr: 3, log: 10, range: () => [FLOOR, yMax] },
    },
    axes: [
      // The x values are the evaluations' places; their ticks read as the window's end.
      { splits: () => labels.map((_, i) => i), values: (_u, ticks) => ticks.map((t) => labels[t] ?? ''), grid: { show: false } },
      { values: (_u, ticks) => ticks.map((t) => scoreText(t)), size: 52 },
    ],
    series: [
      { label: 'window', value: (_u, i) => labels[i] ?? '–' },
      ...names.map((name, i) => ({
        label: name,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        points: { show: true, size: 6 },
        // The legend shows the real score, not the floor it is drawn on.
        value: (_u, _v, _s, idx) => (idx === null ? '–' : scoreText(scores()[i]?.[idx] ?? null)),
      })),
      { label: `threshold = ${THRESHOLD}`, stroke: '#6b7280', width: 1, dash: [5, 4], value: () => String(THRESHOLD), points: { show: false } },
    ],
  };
}

/**
 * Per-feature scores over the fleet's evaluation windows (oldest first): one line for each of the
 * features that scored highest, and the threshold at 1. The container's data-series (features drawn)
 * and data-points (evaluations) say what is drawn.
 */
export function createDriftChart(container) {
  let plot = null;
  let signature = '';
  let scores = []; // unclamped rows, one per feature drawn, for the legend

  function clear() {
    plot?.destroy();
    plot = null;
    signature = '';
    container.replaceChildren();
    container.dataset.series = '0';
    container.dataset.points = '0';
  }

  function render(evaluations) {
    const names = chartFeatures(evaluations);
    if (evaluations.length === 0 || names.length === 0) {
      clear();
      return;
    }
    const [xs, ...rest] = chartData(evaluations, names);
    scores = rest.slice(0, names.length);
    const data = [xs, ...rest.map(clamp)];
    const highest = Math.max(THRESHOLD * 10, ...rest.flat().filter((v) => v !== null && Number.isFinite(v)));
    const yMax = 10 ** Math.ceil(Math.log10(highest * 1.2));
    const labels = evaluations.map((e) => clockText(e.windowEnd));
    container.dataset.series = String(names.length);
    container.dataset.points = String(evaluations.length);

    const sig = JSON.stringify([names, labels, yMax]);
    if (plot && sig === signature) {
      plot.setData(data);
      return;
    }
    plot?.destroy();
    signature = sig;
    plot = new uPlot(plotOptions(Math.max(240, container.clientWidth), names, labels, yMax, () => scores), data, container);
  }

  new ResizeObserver(() => {
    if (plot && container.clientWidth > 0) plot.setSize({ width: Math.max(240, container.clientWidth), height: HEIGHT });
  }).observe(container);

  return { render, clear };
}
