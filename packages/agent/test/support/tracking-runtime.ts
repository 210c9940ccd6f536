import type { LoadedModel, ModelRuntime } from '../../src/inference/types.js';

/** Wraps a real runtime to see which loaded models are still open (nothing is faked). */
export function trackingRuntime(real: ModelRuntime): ModelRuntime & { loaded: Set<LoadedModel> } {
  const loaded = new Set<LoadedModel>();
  return {
    loaded,
    async load(file) {
      const model = await real.load(file);
      loaded.add(model);
      const close = model.close.bind(model);
      model.close = async () => {
        loaded.delete(model);
        await close();
      };
      return model;
    },
    stop: () => real.stop(),
  };
}
