import { expect } from 'vitest';
import { eventually, type TestHub } from './hub-harness.js';

export interface SseFrame {
  event: string;
  data: string;
}

export interface OpenEventStream {
  /** Everything received so far. */
  text(): string;
  /** The complete `event:`/`data:` frames received so far. */
  frames(): SseFrame[];
  /** Whether the stream has ended (closed by the hub, or aborted). */
  ended(): boolean;
  close(): void;
}

/** A dashboard's `GET /api/v1/events` over real HTTP, resolved once the hub has said `: connected`. */
export async function openEventStream(t: TestHub, headers: Record<string, string> = { authorization: `Bearer ${t.adminToken}` }): Promise<OpenEventStream> {
  const abort = new AbortController();
  const res = await fetch(`${t.hub.apiUrl}/api/v1/events`, { headers, signal: abort.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  let ended = false;
  void (async () => {
    for (;;) {
      // A read fails when the hub closes the stream or it is aborted: either way it has ended.
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done) break;
      text += value;
    }
    ended = true;
  })();
  // The hub adds a stream to its fan-out in the same tick as it writes ": connected".
  await eventually(() => text.includes(': connected'), 'the event stream to open');
  return {
    text: () => text,
    frames: () =>
      text
        .split('\n\n')
        .slice(0, -1)
        .flatMap((block) => {
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          return event && data ? [{ event, data }] : [];
        }),
    ended: () => ended,
    close: () => abort.abort(),
  };
}
