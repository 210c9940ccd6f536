/* global uPlot */
import { toMs } from './time-format.js';

/** Up to this many devices get a line each; past it the chart shows the fleet average. */
export const MAX_SERIES = 10;
const WINDOW_S = 30 * 60;
const MAX_POINTS = 720;
const AVERAGE_BUCKET_S = 10;
const HEIGHT = 240;
const COLORS = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#4b5563', '#65a30d'];

function percent(_u, v) {
  return v === null || v === undefined ? '–' : `${v.toFixed(1)}%`;
}

function plotOptions(width, labels) {
  return {
    width,
    height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: [0, 100] } },
    axes: [{}, { values: (_u, ticks) => ticks.map((t) => `${t}%`), size: 48 }],
    series: [
      {},
      ...labels.map((label, i) => ({
        label,
        stroke: COLORS[i % COLORS.length],
        width: 1.5,
        spanGaps: true,
        value: percent,
        points: { size: 4 },
      })),
    ],
  };
}

/** Fleet CPU over the telemetry seen (history fill + live): one series per device, or the average. */
export function createCpuChart(container, caption) {
  const points = new Map(); // deviceId -> Map<tsSeconds, cpuPercent>
  let names = new Map(); // deviceId -> display name
  let plot = null;
  let signature = '';
  let timer = null;

  function add(deviceId, ts, cpuPercent) {
    const ms = toMs(ts);
    if (ms === null || typeof cpuPercent !== 'number') return;
    let series = points.get(deviceId);
    if (!series) points.set(deviceId, (series = new Map()));
    series.set(Math.round(ms / 1000), cpuPercent);
    if (series.size > MAX_POINTS) {
      const oldest = [...series.keys()].sort((a, b) => a - b).slice(0, series.size - MAX_POINTS);
      for (const t of oldest) series.delete(t);
    }
    schedule();
  }

  function setDevices(devices) {
    names = new Map(devices.map((d) => [d.id, d.name || d.id]));
    for (const id of points.keys()) if (!names.has(id)) points.delete(id);
    schedule();
  }

  function schedule() {
    if (timer === null) timer = setTimeout(draw, 200);
  }

  function perDeviceData(ids, min) {
    const xs = new Set();
    for (const id of ids) for (const t of points.get(id)?.keys() ?? []) if (t >= min) xs.add(t);
    const sorted = [...xs].sort((a, b) => a - b);
    return [sorted, ...ids.map((id) => sorted.map((t) => points.get(id)?.get(t) ?? null))];
  }

  function averageData(min) {
    const buckets = new Map();
    for (const series of points.values()) {
      for (const [t, v] of series) {
        if (t < min) continue;
        const b = Math.floor(t / AVERAGE_BUCKET_S) * AVERAGE_BUCKET_S;
        const acc = buckets.get(b) ?? { sum: 0, n: 0 };
        acc.sum += v;
        acc.n += 1;
        buckets.set(b, acc);
      }
    }
    const xs = [...buckets.keys()].sort((a, b) => a - b);
    return [xs, xs.map((b) => buckets.get(b).sum / buckets.get(b).n)];
  }

  function draw() {
    timer = null;
    const min = Date.now() / 1000 - WINDOW_S;
    const ids = [...names.keys()].sort((a, b) => names.get(a).localeCompare(names.get(b)));
    const perDevice = ids.length <= MAX_SERIES;
    const labels = perDevice ? ids.map((id) => names.get(id)) : [`fleet average (${ids.length} devices)`];
    const data = perDevice ? perDeviceData(ids, min) : averageData(min);
    container.dataset.mode = perDevice ? 'per-device' : 'average';
    container.dataset.points = String(data[0].length);
    caption.textContent = data[0].length === 0 ? 'waiting for telemetry…' : perDevice ? 'per device, last 30 min' : 'fleet average, last 30 min';

    const sig = JSON.stringify(labels);
    if (plot && sig === signature) {
      plot.setData(data);
      return;
    }
    plot?.destroy();
    signature = sig;
    plot = new uPlot(plotOptions(Math.max(200, container.clientWidth), labels), data, container);
  }

  new ResizeObserver(() => {
    if (plot) plot.setSize({ width: Math.max(200, container.clientWidth), height: HEIGHT });
  }).observe(container);

  return { add, setDevices, draw };
}
