import type { ProviderFallback } from '@edgefleet/shared';

// What the session workers found out about execution providers, for the `reported` capabilities:
// which providers really opened a session and which failed (onnxruntime lists cuda and tensorrt on
// x64 Linux without their libraries, so only opening a session tells). Main-thread module state,
// written by the worker slots when a worker says it is ready.

/** The most of each list the reported schema carries (usableExecutionProviders, providerFallbacks: 8 each, names of 64). */
const MAX_NOTED = 8;
const NAME_MAX = 64;

const usable: string[] = [];
const fallbacks = new Map<string, string>();

/** Notes one session's outcome; returns true when it taught something new. */
export function noteSessionProviders(provider: string | undefined, failed: readonly ProviderFallback[] = []): boolean {
  // An operator's list may name more providers than `reported` carries (up to 32): the first 8 are kept.
  let learned = false;
  const name = provider?.slice(0, NAME_MAX);
  if (name !== undefined && !usable.includes(name) && usable.length < MAX_NOTED) {
    usable.push(name);
    learned = true;
  }
  for (const f of failed) {
    const failedName = f.provider.slice(0, NAME_MAX);
    if (fallbacks.has(failedName) || fallbacks.size >= MAX_NOTED) continue;
    fallbacks.set(failedName, f.reason.slice(0, 512));
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
