import { encodeModel, floatTensor, GraphBuilder } from '@edgefleet/shared/onnx';

/**
 * image[1,3,640,640] → strided Conv → GlobalAveragePool → feat[1,2]: a detector-sized input (its
 * golden input is 4.9 MB, so it travels as a golden file) with a small output. `seed` varies the weights.
 */
export function imageModel(seed = 1): Uint8Array {
  const g = new GraphBuilder('image');
  const x = g.input('image', 'FP32', [1, 3, 640, 640]);
  const w = g.initializer(floatTensor('w', [2, 3, 3, 3], Float32Array.from({ length: 54 }, (_, i) => (((i * seed) % 7) - 3) / 10)));
  const c = g.node('Conv', [x, w], { kernel_shape: [3, 3], strides: [8, 8] });
  const p = g.node('GlobalAveragePool', [c]);
  g.node('Flatten', [p], { axis: 1 }, 'feat');
  g.output('feat', 'FP32', [1, 2]);
  return encodeModel(g.build());
}
