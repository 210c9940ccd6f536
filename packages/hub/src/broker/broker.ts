/**
 * The hub's view of its MQTT broker. The embedded aedes broker implements it today; an external
 * broker cluster (hub as a client with shared subscriptions) can implement it later without the
 * rest of the hub changing.
 */
export interface InboundVerdict {
  /** Refuse: the broker rejects the publish (aedes closes the connection, MQTT 3.1.1 has no reason code). */
  refuse?: string;
  /** Accept (ack) without forwarding or retaining; used for invalid payloads. */
  drop?: boolean;
}

/** Policy and ingest, supplied by the hub to whichever broker runs. */
export interface BrokerPolicy {
  /** Checks device credentials; false answers CONNACK "bad username or password". */
  authenticate(username: string, password: Buffer): boolean;
  /** True when `id` is an enrolled device's id (a client id that must not be used by any other device). */
  isDeviceId(id: string): boolean;
  /** Subscription ACL for an authenticated device. */
  canSubscribe(deviceId: string, topic: string): boolean;
  /**
   * An inbound publish from an authenticated device. `done` is called once, when the hub is ready
   * for the broker to acknowledge it (for records: after the commit holding it).
   */
  inbound(deviceId: string, topic: string, payload: Buffer, done: (verdict: InboundVerdict) => void): void;
  connected(deviceId: string): void;
  disconnected(deviceId: string): void;
}

export interface Broker {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The bound port (after start). */
  readonly port: number;
  /** Publishes as the hub (QoS 1), bypassing device ACLs. */
  publish(topic: string, payload: Buffer, opts: { retain: boolean }): Promise<void>;
  /** Closes every connection authenticated as this device. */
  disconnectDevice(deviceId: string): void;
  /** Number of open device connections. */
  readonly connections: number;
}
