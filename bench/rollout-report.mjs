// The table bench/rollout-switch.mjs prints: per timed rollout, the switch time beside the issue's
// target, per-device times, and the hub's CPU, RSS and event-loop lag while it ran.

const ms = (v) => (v === null || v === undefined ? '-' : Math.round(v).toLocaleString('en'));

export function report(r) {
  console.log(
    `\nrollout switch — ${r.devices} simulated devices (MQTT + the real artifact route); ${r.machine.cores} cores, node ${r.machine.node}, load avg at start ${r.machine.loadavgAtStart.join(' ')}`,
  );
  if (r.legacyApi) console.log('ROLLOUT_LEGACY_API=1: the hub took no waves or download limit, so every run was one wave');
  for (const run of r.runs) {
    const p = run.perDeviceMs;
    const h = run.hub;
    const over = run.seconds >= r.targetSeconds ? '  OVER TARGET' : '';
    console.log(`\n${run.name} (rollout ${run.rolloutId}, end seen by ${run.endSeenBy})`);
    const rows = [
      ['POST → rollout succeeded (s)', run.seconds, `< ${r.targetSeconds}${over}`],
      ['devices switched per second', run.devicesPerSecond, ''],
      ['POST → desired received, p50 / p99 / max (ms)', `${ms(p.assigned.p50)} / ${ms(p.assigned.p99)} / ${ms(p.assigned.max)}`, ''],
      ['POST → active on the device, p50 / p99 / max (ms)', `${ms(p.activeOnDevice.p50)} / ${ms(p.activeOnDevice.p99)} / ${ms(p.activeOnDevice.max)}`, ''],
      ['POST → row active in the hub, p50 / p99 / max (ms)', `${ms(p.activeInHub.p50)} / ${ms(p.activeInHub.p99)} / ${ms(p.activeInHub.max)}`, ''],
      ['hub CPU, % of a core: avg / max', `${h.cpuPercent.avg} / ${h.cpuPercent.max}`, ''],
      ['hub RSS (MB): at the POST / max', `${h.rssMb.atStart} / ${h.rssMb.max}`, ''],
      ['hub event-loop lag p99 / max (ms)', `${h.loopMs?.p99 ?? '-'} / ${h.loopMs?.max ?? '-'}`, 'p99 < 100'],
      ['simulated devices CPU (%) / whole machine busy (%)', `${h.devicesProcessCpuPercent} / ${h.machineBusyPercent}`, ''],
      ['downloads / retried / failed', `${run.devices.downloads} / ${run.devices.downloadRetries} / ${run.devices.failed}`, ''],
      ['device messages the hub received / dropped / refused', `${h.ingest.received} / ${h.ingest.dropped} / ${h.ingest.refused}`, '- / 0 / 0'],
    ];
    for (const [k, v, target] of rows) console.log(`  ${k.padEnd(54)}${String(v).padStart(24)}${target.padStart(22)}`);
    if (run.waves.length > 1) {
      for (const w of run.waves) console.log(`  wave ${w.index} (${w.size ?? '?'}): ${w.devices} devices, ${w.state ?? '-'}, ended at ${ms(w.endedMs)} ms${w.gates.length ? `; gates: ${w.gates.join(', ')}` : ''}`);
    }
    if (run.devices.lastError) console.log(`  last device error: ${run.devices.lastError}`);
  }
  console.log(`\nwarm-up rollout ${r.warmUp.seconds} s; enrollment ${r.enrollSeconds} s; connect ${r.connectSeconds} s; elapsed ${r.elapsedSeconds} s; load avg at the end ${r.machine.loadavgAtEnd.join(' ')}`);
}
