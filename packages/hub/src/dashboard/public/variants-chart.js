/* global uPlot */
import { ratioText } from './models-format.js';

const HEIGHT = 220;
const SIZE_COLOR = '#2563eb';
const LATENCY_COLOR = '#ea580c';
/** Each bar takes this share of its profile's column, side by side with the other. */
const BAR = [0.34, 48];

function value(_u, v) {
  return v === null || v === undefined ? '–' : ratioText(v);
}

function plotOptions(width, profiles, yMax) {
  const indices = profiles.map((_, i) => i);
  return {
    width,
    height: HEIGHT,
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    legend: { live: true },
    scales: {
      x: { time: false, range: () => [-0.5, profiles.length - 0.5] },
      y: { range: () => [0, yMax] },
    },
    axes: [
      // One tick per profile, named: the x values are the profiles' places, not numbers.
      { splits: () => indices, values: (_u, ticks) => ticks.map((t) => profiles[t] ?? ''), grid: { show: false } },
      { values: (_u, ticks) => ticks.map((t) => `${t}x`), size: 48 },
    ],
    series: [
      { label: 'profile', value: (_u, i) => profiles[i] ?? '–' },
      { label: 'size ratio', stroke: SIZE_COLOR, fill: `${SIZE_COLOR}bb`, width: 1, value, paths: uPlot.paths.bars({ size: BAR, align: -1 }), points: { show: false } },
      { label: 'latency ratio', stroke: LATENCY_COLOR, fill: `${LATENCY_COLOR}bb`, width: 1, value, paths: uPlot.paths.bars({ size: BAR, align: 1 }), points: { show: false } },
      { label: 'fp32 = 1.0', stroke: '#6b7280', width: 1, dash: [5, 4], value: () => '1.00x', points: { show: false } },
    ],
  };
}

/**
 * Size ratio and latency ratio per profile as grouped bars, fp32 the 1.0 reference line. A variant
 * not yet evaluated has no bars. The container's data-profiles and data-bars say what is drawn.
 */
export function createVariantsChart(container) {
  let plot = null;
  let signature = '';

  function render(rows) {
    const profiles = rows.map((r) => r.profile);
    const data = [
      profiles.map((_, i) => i),
      rows.map((r) => r.sizeRatio),
      rows.map((r) => r.latencyRatio),
      profiles.map(() => 1),
    ];
    const highest = Math.max(1, ...rows.flatMap((r) => [r.sizeRatio, r.latencyRatio]).filter((x) => Number.isFinite(x)));
    const yMax = Math.ceil(highest * 1.15 * 4) / 4;
    container.dataset.profiles = profiles.join(',');
    container.dataset.bars = String(rows.filter((r) => r.sizeRatio !== null || r.latencyRatio !== null).length);

    const sig = JSON.stringify([profiles, yMax]);
    if (plot && sig === signature) {
      plot.setData(data);
      return;
    }
    plot?.destroy();
    signature = sig;
    plot = new uPlot(plotOptions(Math.max(240, container.clientWidth), profiles, yMax), data, container);
  }

  function clear() {
    plot?.destroy();
    plot = null;
    signature = '';
    container.replaceChildren();
    container.dataset.profiles = '';
    container.dataset.bars = '0';
  }

  new ResizeObserver(() => {
    if (plot && container.clientWidth > 0) plot.setSize({ width: Math.max(240, container.clientWidth), height: HEIGHT });
  }).observe(container);

  return { render, clear };
}
