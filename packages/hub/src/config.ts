import { resolve } from 'node:path';
import { cronScheduleFromEnv, DEFAULT_DRIFT_EVALUATE_CRON, webhookUrlFromEnv } from './drift/drift-config.js';

/** Everything the hub reads from its environment, validated once at start-up. */
export interface HubConfig {
  dataDir: string;
  host: string;
  httpPort: number;
  mqttPort: number;
  /** API base URL handed to devices at enrollment; derived from the request's Host when absent. */
  publicUrl: string | undefined;
  /** Broker URL handed to devices at enrollment; derived from the request's Host when absent. */
  brokerUrl: string | undefined;
  adminToken: string | undefined;
  logLevel: string;
  /** Cap on broker connections, kept below the process's file-descriptor limit. */
  maxConnections: number;
  /** Upload limit for model files, bytes. */
  maxModelBytes: number;
  /** Telemetry rows kept per device. */
  telemetryHistory: number;
  /** Records waiting to be written at most; past it, the broker holds PUBACKs until the queue drains. */
  ingestQueueBound: number;
  /** Largest MQTT packet the broker accepts, bytes; a bigger one closes the connection (per-kind payload limits are lower, in shared). */
  mqttMaxPacketBytes: number;
  /** Start on a missing or empty hub.db although the data dir holds an earlier hub's signing key or artifacts. */
  allowEmptyDatabase: boolean;
  /** HTTPS and MQTTS when set: PEM files the operator provides (checked and loaded at start). */
  tls: HubTlsFiles | undefined;
  /** Queue a build of every compression profile when a version (or its calibration data) is uploaded. */
  autoBuildVariants: boolean;
  /** Upload limit for calibration data, bytes (the binary tensor form; JSON bodies have a lower fixed limit). */
  maxCalibrationBytes: number;
  /** The variant build worker's V8 old-generation heap limit, MB (typed arrays and onnxruntime live outside it). */
  variantBuildHeapMb: number;
  /** node-cron schedule of the drift evaluation pass (6 fields: seconds first). */
  driftEvaluateCron: string;
  /** Samples a drift evaluation window needs before it is scored. */
  driftMinSamples: number;
  /**
   * Drift records already evaluated are deleted this many hours after they arrived. Short: their
   * summaries live on in pending windows and evaluations, and 10,000 devices sending one a minute
   * store about 1.4 GB of them an hour.
   */
  driftRecordRetentionHours: number;
  /** An active drift alert whose device or fleet has had no evaluation window for this many hours is cleared as stale. */
  driftAlertStaleHours: number;
  /** Drift alert changes are POSTed here (http/https) when set. */
  driftWebhookUrl: string | undefined;
  /** When set, each webhook body is signed: x-edgefleet-signature: sha256=<hex HMAC-SHA256 of the body with this key>. */
  driftWebhookSecret: string | undefined;
  /** Largest field-sample upload (one sample's inputs), bytes. */
  maxFieldSampleBytes: number;
  /** Field samples a device may upload per hour. */
  fieldSamplesPerHour: number;
  /** Field samples kept per model version; the oldest are removed. */
  fieldSamplesPerVersion: number;
}

export interface HubTlsFiles {
  certFile: string;
  keyFile: string;
  /** The CA chain handed to devices at enrollment, which they pin; absent = a publicly trusted certificate. */
  caFile: string | undefined;
}

/** The environment variable that lets a hub start on an empty database beside an earlier hub's files. */
export const ALLOW_EMPTY_DB_ENV = 'EDGEFLEET_HUB_ALLOW_EMPTY_DB';

export const DEFAULT_CONFIG: Omit<HubConfig, 'dataDir'> = {
  host: '0.0.0.0',
  httpPort: 8080,
  mqttPort: 1883,
  publicUrl: undefined,
  brokerUrl: undefined,
  adminToken: undefined,
  logLevel: 'info',
  maxConnections: 15_000,
  maxModelBytes: 512 * 1024 * 1024,
  telemetryHistory: 1000,
  ingestQueueBound: 10_000,
  mqttMaxPacketBytes: 1024 * 1024,
  allowEmptyDatabase: false,
  tls: undefined,
  autoBuildVariants: true,
  maxCalibrationBytes: 256 * 1024 * 1024,
  variantBuildHeapMb: 1536,
  driftEvaluateCron: DEFAULT_DRIFT_EVALUATE_CRON,
  driftMinSamples: 500,
  driftRecordRetentionHours: 6,
  driftAlertStaleHours: 24,
  driftWebhookUrl: undefined,
  driftWebhookSecret: undefined,
  maxFieldSampleBytes: 8 * 1024 * 1024,
  fieldSamplesPerHour: 60,
  fieldSamplesPerVersion: 1000,
};

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name}="${raw}": expected a port number 0-65535`);
  return n;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}="${raw}": expected a positive integer`);
  return n;
}

function url(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  try {
    new URL(raw);
  } catch {
    throw new Error(`${name}="${raw}": expected an absolute URL`);
  }
  return raw.replace(/\/+$/, '');
}

/** Certificate and key come as a pair; a CA alone would hand devices a CA for a hub that serves no TLS. */
function tlsFiles(env: NodeJS.ProcessEnv): HubTlsFiles | undefined {
  const certFile = env.EDGEFLEET_HUB_TLS_CERT || undefined;
  const keyFile = env.EDGEFLEET_HUB_TLS_KEY || undefined;
  const caFile = env.EDGEFLEET_HUB_TLS_CA || undefined;
  if (!certFile && !keyFile) {
    if (caFile) throw new Error(`EDGEFLEET_HUB_TLS_CA="${caFile}" needs EDGEFLEET_HUB_TLS_CERT and EDGEFLEET_HUB_TLS_KEY as well`);
    return undefined;
  }
  if (!certFile || !keyFile) throw new Error('EDGEFLEET_HUB_TLS_CERT and EDGEFLEET_HUB_TLS_KEY go together: expected both PEM file paths or neither');
  return { certFile: resolve(certFile), keyFile: resolve(keyFile), caFile: caFile ? resolve(caFile) : undefined };
}

/**
 * With TLS the hub serves only HTTPS and MQTTS, and the devices it enrolls pin its CA and refuse plain
 * URLs: a plain URL handed out at enrollment would leave every such device unable to start.
 */
function checkTlsEndpoints(config: Pick<HubConfig, 'publicUrl' | 'brokerUrl' | 'tls'>): void {
  if (!config.tls) return;
  if (config.publicUrl !== undefined && !config.publicUrl.startsWith('https://')) {
    throw new Error(`EDGEFLEET_HUB_PUBLIC_URL="${config.publicUrl}": the hub serves only HTTPS when TLS is configured, and devices pinning its CA refuse plain URLs: expected https://`);
  }
  if (config.brokerUrl !== undefined && !/^(mqtts|ssl):\/\//.test(config.brokerUrl)) {
    throw new Error(`EDGEFLEET_HUB_BROKER_URL="${config.brokerUrl}": the broker speaks only MQTTS when TLS is configured, and devices pinning its CA refuse plain URLs: expected mqtts://`);
  }
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '' || raw === '0') return false;
  if (raw === '1') return true;
  throw new Error(`${name}="${raw}": expected 1 (on) or 0 (off)`);
}

/** An on/off switch that is on unless set to 0 or false. */
function switchOn(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name]?.toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (raw === '1' || raw === 'true') return true;
  if (raw === '0' || raw === 'false') return false;
  throw new Error(`${name}="${env[name]}": expected 1/true (on) or 0/false (off)`);
}

export function loadConfig(env: NodeJS.ProcessEnv): HubConfig {
  const config: HubConfig = {
    dataDir: resolve(env.EDGEFLEET_HUB_DATA_DIR || './hub-data'),
    host: env.EDGEFLEET_HUB_HOST || DEFAULT_CONFIG.host,
    httpPort: port(env, 'EDGEFLEET_HUB_HTTP_PORT', DEFAULT_CONFIG.httpPort),
    mqttPort: port(env, 'EDGEFLEET_HUB_MQTT_PORT', DEFAULT_CONFIG.mqttPort),
    publicUrl: url(env, 'EDGEFLEET_HUB_PUBLIC_URL'),
    brokerUrl: url(env, 'EDGEFLEET_HUB_BROKER_URL'),
    adminToken: env.EDGEFLEET_ADMIN_TOKEN || undefined,
    logLevel: env.EDGEFLEET_LOG_LEVEL || DEFAULT_CONFIG.logLevel,
    maxConnections: positiveInt(env, 'EDGEFLEET_HUB_MAX_CONNECTIONS', DEFAULT_CONFIG.maxConnections),
    maxModelBytes: positiveInt(env, 'EDGEFLEET_HUB_MAX_MODEL_BYTES', DEFAULT_CONFIG.maxModelBytes),
    telemetryHistory: positiveInt(env, 'EDGEFLEET_HUB_TELEMETRY_HISTORY', DEFAULT_CONFIG.telemetryHistory),
    ingestQueueBound: positiveInt(env, 'EDGEFLEET_HUB_INGEST_QUEUE_BOUND', DEFAULT_CONFIG.ingestQueueBound),
    mqttMaxPacketBytes: positiveInt(env, 'EDGEFLEET_HUB_MQTT_MAX_PACKET_BYTES', DEFAULT_CONFIG.mqttMaxPacketBytes),
    allowEmptyDatabase: flag(env, ALLOW_EMPTY_DB_ENV),
    tls: tlsFiles(env),
    autoBuildVariants: switchOn(env, 'EDGEFLEET_AUTO_BUILD_VARIANTS', DEFAULT_CONFIG.autoBuildVariants),
    maxCalibrationBytes: positiveInt(env, 'EDGEFLEET_HUB_MAX_CALIBRATION_BYTES', DEFAULT_CONFIG.maxCalibrationBytes),
    variantBuildHeapMb: positiveInt(env, 'EDGEFLEET_HUB_VARIANT_BUILD_HEAP_MB', DEFAULT_CONFIG.variantBuildHeapMb),
    driftEvaluateCron: cronScheduleFromEnv(env, 'EDGEFLEET_DRIFT_EVALUATE_CRON', DEFAULT_CONFIG.driftEvaluateCron),
    driftMinSamples: positiveInt(env, 'EDGEFLEET_DRIFT_MIN_SAMPLES', DEFAULT_CONFIG.driftMinSamples),
    driftRecordRetentionHours: positiveInt(env, 'EDGEFLEET_DRIFT_RECORD_RETENTION_HOURS', DEFAULT_CONFIG.driftRecordRetentionHours),
    driftAlertStaleHours: positiveInt(env, 'EDGEFLEET_DRIFT_ALERT_STALE_HOURS', DEFAULT_CONFIG.driftAlertStaleHours),
    driftWebhookUrl: webhookUrlFromEnv(env, 'EDGEFLEET_DRIFT_WEBHOOK_URL'),
    driftWebhookSecret: env.EDGEFLEET_DRIFT_WEBHOOK_SECRET || undefined,
    maxFieldSampleBytes: positiveInt(env, 'EDGEFLEET_HUB_MAX_FIELD_SAMPLE_BYTES', DEFAULT_CONFIG.maxFieldSampleBytes),
    fieldSamplesPerHour: positiveInt(env, 'EDGEFLEET_HUB_FIELD_SAMPLES_PER_HOUR', DEFAULT_CONFIG.fieldSamplesPerHour),
    fieldSamplesPerVersion: positiveInt(env, 'EDGEFLEET_HUB_FIELD_SAMPLES_PER_VERSION', DEFAULT_CONFIG.fieldSamplesPerVersion),
  };
  checkTlsEndpoints(config);
  return config;
}
