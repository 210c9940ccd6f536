import type { ProviderFallback } from '@edgefleet/shared';

// What the session workers found out about execution providers, for the `reported` capabilities:
// which providers really opened a session and which failed (onnxruntime lists cuda and tensorrt on
// x64 Linux without their libraries, so only opening a session tells). Main-thread module state,
// written by the worker slots when a worker says it is ready.

const usable: string[] = [];
const fallbacks = new Map<string, string>();

/** Notes one session's outcome; returns true when it taught something new (the caller logs only then). */
export function noteSessionProviders(provider: string | undefined, failed: readonly ProviderFallback[] = []): boolean {
  let learned = false;
  if (provider !== undefined && !usable.includes(provider)) {
    usable.push(provider);
    learned = true;
  }
  for (const f of failed) {
    if (fallbacks.has(f.provider)) continue;
    fallbacks.set(f.provider, f.reason);
    learned = true;
  }
  return learned;
}

/** Providers that opened a session, in the order first seen; empty before the first model loads. */
export function usableExecutionProviders(): string[] {
  return [...usable];
}

/** Providers that failed at session creation, with onnxruntime's first message for each. */
export function providerFallbacks(): ProviderFallback[] {
  return [...fallbacks].map(([provider, reason]) => ({ provider, reason }));
}

/** Forgets everything (tests). */
export function resetSessionProviders(): void {
  usable.length = 0;
  fallbacks.clear();
}
