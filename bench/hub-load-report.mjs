// The table bench/hub-load.mjs prints: each measured number beside the target and the number
// measured before the hardening work.

export function report(r) {
  const s = r.steady;
  const st = r.storm;
  const a = r.afterStorm;
  const d = r.durability;
  console.log(`\nhub load — ${r.devices} devices, QoS 1 telemetry every ${r.intervalMs} ms each; ${r.machine.cores} cores, node ${r.machine.node}, load avg at start ${r.machine.loadavgAtStart.join(' ')}`);
  const rows = [
    [`steady: telemetry acked per second (${Math.round((r.devices * 1000) / r.intervalMs)} offered)`, s.msgPerSecond, '5,000', '5,000'],
    ['steady: ack latency p50 / p99 / max (ms)', `${s.ackMs.p50} / ${s.ackMs.p99} / ${s.ackMs.max}`, 'p99 kept', 'p99 64'],
    ['steady: hub event-loop lag p99 / max (ms)', `${s.hub.loopMs.p99} / ${s.hub.loopMs.max}`, 'p99 < 100', 'p99 20'],
    ['steady: hub CPU (% of a core) / RSS (MB)', `${s.hub.cpuPercent} / ${s.hub.rssMb}`, 'RSS kept', 'RSS 405'],
    ['steady: load generator CPU (%) / loop lag p99 (ms)', `${s.hub.loadGenCpuPercent} / ${s.loadGenLoopMs.p99}`, '', ''],
    ['steady: whole machine busy (%, all cores)', s.hub.machineBusyPercent, '', ''],
    ['steady: hub ingest dropped / refused / storage errors', `${s.hub.ingest.dropped} / ${s.hub.ingest.refused} / ${s.hub.ingest.storageErrors}`, '0 / 0 / 0', ''],
    ['storm: reconnect → last CONNACK (ms)', st.lastConnackMs, '< 4,000', '11,400'],
    ['storm: reconnect → hub counts all connections (ms)', st.hubAllConnectedMs, '', ''],
    ['storm: reconnect → all online in the hub database (ms)', st.allOnlineInDatabaseMs, '', ''],
    ['storm: hub event-loop lag p99 / max (ms)', `${st.hub.loopMs.p99} / ${st.hub.loopMs.max}`, 'max < 500', 'max 2,060'],
    ['storm: hub CPU (% of a core) / RSS (MB)', `${st.hub.cpuPercent} / ${st.hub.rssMb}`, '', ''],
    ['storm: whole machine busy (%, all cores)', st.hub.machineBusyPercent, '', ''],
    ['after storm: acked per second, ack p99 (ms)', `${a.msgPerSecond}, ${a.ackMs.p99}`, '', ''],
    ['hub peak RSS (MB)', st.hub.peakRssMb, '', ''],
    [`durability (${r.end.mode.split(',')[0]}): acked / stored / lost`, `${d.acked} / ${d.stored} / ${d.lost}`, '0 lost', ''],
  ];
  console.log(`${'metric'.padEnd(60)}${'measured'.padStart(22)}${'target'.padStart(14)}${'before'.padStart(12)}`);
  for (const [k, v, target, before] of rows) console.log(`${k.padEnd(60)}${String(v).padStart(22)}${target.padStart(14)}${before.padStart(12)}`);
  if (st.retries || st.failed) console.log(`storm: ${st.retries} connect attempts retried after the agent's back-off, ${st.failed} devices never connected (last error: ${st.lastError})`);
  console.log(`\nelapsed ${r.elapsedSeconds} s (enrollment ${r.enroll.seconds} s); load avg at the end ${r.machine.loadavgAtEnd.join(' ')}`);
}
