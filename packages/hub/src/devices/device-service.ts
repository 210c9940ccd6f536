import { EdgefleetError, type Device, type Labels } from '@edgefleet/shared';
import type { Logger } from 'pino';
import type { HubEventBus } from '../events/hub-event-bus.js';
import type { RecordRepo, TelemetryPointRow } from '../records/record-repo.js';
import type { DeviceFilter, DeviceRepo } from './device-repo.js';

export function createDeviceService(deps: {
  devices: DeviceRepo;
  records: RecordRepo;
  bus: HubEventBus;
  /** Closes the device's broker connections. */
  disconnect: (deviceId: string) => void;
  log: Logger;
}) {
  const { devices, bus } = deps;

  function get(id: string): Device {
    const device = devices.get(id);
    if (!device) throw new EdgefleetError('NOT_FOUND', `device ${id} does not exist`);
    return device;
  }

  return {
    get,
    list(filter: DeviceFilter): Device[] {
      return devices.list(filter);
    },
    setLabels(id: string, labels: Labels): Device {
      get(id);
      devices.setLabels(id, labels);
      bus.emit('device', { deviceId: id, change: 'labels' });
      return get(id);
    },
    /** Revoked devices are refused at connect and their open connections are closed now. */
    revoke(id: string): Device {
      get(id);
      devices.revoke(id);
      deps.disconnect(id);
      deps.log.warn({ deviceId: id }, 'device revoked');
      bus.emit('device', { deviceId: id, change: 'revoked' });
      return get(id);
    },
    /** Undoes a revoke (a mistaken click): the device's own secret works again. */
    restore(id: string): Device {
      get(id);
      devices.restore(id);
      deps.log.warn({ deviceId: id }, 'device restored');
      bus.emit('device', { deviceId: id, change: 'restored' });
      return get(id);
    },
    telemetry(id: string, limit: number): { deviceId: string; points: TelemetryPointRow[] } {
      get(id);
      return { deviceId: id, points: deps.records.telemetryHistory(id, limit) };
    },
  };
}
export type DeviceService = ReturnType<typeof createDeviceService>;

/** Parses `key=value` label filters from the query string. */
export function parseLabelFilters(raw: string | string[] | undefined): Labels | undefined {
  if (raw === undefined) return undefined;
  const labels: Labels = {};
  for (const item of Array.isArray(raw) ? raw : [raw]) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new EdgefleetError('BAD_REQUEST', `label filter "${item}": expected key=value`);
    labels[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return labels;
}
