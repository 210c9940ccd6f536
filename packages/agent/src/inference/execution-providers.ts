// Which onnxruntime execution providers a session is opened with, and opening it with a fallback.
// The choice is pure (setting + what onnxruntime lists + whether a GPU is there); createSession is the
// only part that touches onnxruntime, and it takes the module as an argument so tests and workers share it.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { InferenceSession } from 'onnxruntime-node';

/** `auto`, or the providers to try in order (EDGEFLEET_EXECUTION_PROVIDERS=tensorrt,cuda,cpu, read by config.ts). */
export type ProviderSetting = 'auto' | string[];

export interface ProviderFallback {
  provider: string;
  /** onnxruntime's message, cut to what the reported schema keeps. */
  reason: string;
}

export interface OpenedSession {
  session: InferenceSession;
  /** The provider the session was opened with. */
  provider: string;
  /** Providers tried before it, each with why it failed. */
  fallbacks: ProviderFallback[];
}

/** GPU providers in the order `auto` prefers them: TensorRT builds engines faster than CUDA runs kernels. */
const GPU_PROVIDERS = ['tensorrt', 'cuda'] as const;
const REASON_MAX = 512;

/**
 * The providers to try, in order. An explicit list is taken as given (the operator's word, so a list
 * without cpu fails loudly when its providers do). `auto` tries TensorRT and CUDA only when this
 * onnxruntime lists them (bundled or not: a Jetson's source build does not say) AND a GPU is there,
 * and always ends with cpu, which every build has.
 */
export function chooseProviders(setting: ProviderSetting, listed: readonly string[], gpuDetected: boolean): string[] {
  if (setting !== 'auto') return [...setting];
  const names = new Set(listed.map((n) => n.toLowerCase()));
  const gpu = gpuDetected ? GPU_PROVIDERS.filter((p) => names.has(p)) : [];
  return [...gpu, 'cpu'];
}

/**
 * Whether the device under `root` has an NVIDIA GPU a CUDA provider could use: a Jetson (L4T writes
 * /etc/nv_tegra_release; its GPU driver makes /dev/nvhost-*) or a discrete card (/dev/nvidia0).
 */
export function detectNvidiaGpu(root = '/'): boolean {
  if (existsSync(join(root, 'etc/nv_tegra_release')) || existsSync(join(root, 'dev/nvidia0'))) return true;
  try {
    return readdirSync(join(root, 'dev')).some((name) => name.startsWith('nvhost-'));
  } catch {
    return false;
  }
}

/** The `ort` module's parts createSession uses (onnxruntime-node's, or a test's). */
export interface OrtLike {
  InferenceSession: { create(path: string, options?: InferenceSession.SessionOptions): Promise<InferenceSession> };
}

/**
 * Opens `path` with the first provider in `providers` that works. onnxruntime-node lists cuda and
 * tensorrt on x64 Linux without shipping their libraries, so asking for one fails only here, at
 * creation: that failure is kept as a fallback with onnxruntime's message and the next provider is
 * tried. Throws the last error (naming every provider tried) when none works.
 */
export async function createSession(ort: OrtLike, path: string, options: InferenceSession.SessionOptions, providers: readonly string[]): Promise<OpenedSession> {
  const order = providers.length > 0 ? providers : ['cpu'];
  const fallbacks: ProviderFallback[] = [];
  for (const provider of order) {
    try {
      const session = await ort.InferenceSession.create(path, { ...options, executionProviders: [provider] });
      return { session, provider, fallbacks };
    } catch (err) {
      fallbacks.push({ provider, reason: (err as Error).message.slice(0, REASON_MAX) });
    }
  }
  const tried = fallbacks.map((f) => `${f.provider}: ${f.reason}`).join('; ');
  throw new Error(`no execution provider could open ${path} (tried ${order.join(', ')}): ${tried}`);
}
