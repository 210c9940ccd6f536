import { spawnSync } from 'node:child_process';

export interface PromtoolResult {
  status: number | null;
  /** stdout and stderr together: promtool prints lint findings and errors there. */
  output: string;
}

/** `promtool check metrics` over an exposition text (its stdin); lint findings make it exit non-zero. */
export function checkMetricsText(text: string): PromtoolResult {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

export function checkPrometheusConfig(path: string): PromtoolResult {
  const run = spawnSync('promtool', ['check', 'config', path], { encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

/** Metric family names an exposition text declares (its `# TYPE` lines). */
export function declaredMetrics(text: string): Map<string, string> {
  const families = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(m[1]!, m[2]!);
  return families;
}
