// The hub's CPU and RSS through a timed rollout, read from /proc every SAMPLE_MS: an average over the
// whole window and the busiest sample, which the window's average alone would hide. The load
// generator's CPU and the whole machine's, since the machine is shared and skews every number.
import { machineStat, procStat } from './hub-load-support.mjs';

const SAMPLE_MS = 500;
const round = (v, d = 1) => +v.toFixed(d);

/** Starts sampling `hubPid` (and `genPid` for its average); `stop()` answers the window's numbers. */
export async function startSampler(hubPid, genPid) {
  const t0 = performance.now();
  const [h0, g0, m0] = await Promise.all([procStat(hubPid), procStat(genPid), machineStat()]);
  let last = { at: t0, cpuSeconds: h0.cpuSeconds };
  let maxCpu = 0;
  let maxRss = h0.rssMb;
  let sampling = Promise.resolve();
  const sample = async () => {
    const s = await procStat(hubPid);
    const at = performance.now();
    maxCpu = Math.max(maxCpu, ((s.cpuSeconds - last.cpuSeconds) / ((at - last.at) / 1000)) * 100);
    maxRss = Math.max(maxRss, s.rssMb);
    last = { at, cpuSeconds: s.cpuSeconds };
  };
  const timer = setInterval(() => {
    // One read at a time: a slow /proc read delays the next sample instead of overlapping it.
    sampling = sampling.then(sample).catch(() => {});
  }, SAMPLE_MS);
  return async () => {
    clearInterval(timer);
    await sampling;
    await sample();
    const [h1, g1, m1] = await Promise.all([procStat(hubPid), procStat(genPid), machineStat()]);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (a, b) => round(((b.cpuSeconds - a.cpuSeconds) / seconds) * 100);
    return {
      cpuPercent: { avg: cpu(h0, h1), max: round(maxCpu) },
      rssMb: { atStart: round(h0.rssMb, 0), max: round(maxRss, 0) },
      devicesProcessCpuPercent: cpu(g0, g1),
      machineBusyPercent: round(((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * 100),
    };
  };
}

/** The `q` quantile (0..1) of numbers, nearest rank; null for none. */
export function quantile(values, q) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
