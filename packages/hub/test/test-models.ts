import { encodeModel, GraphBuilder } from '@edgefleet/shared/onnx';

/**
 * x[1, n] → Identity → y: a tiny file that declares an input of n FP32 values (above 16,384 values
 * its golden tensors travel as a golden file).
 */
export function identityModel(n: number): Uint8Array {
  const g = new GraphBuilder('wide');
  const x = g.input('x', 'FP32', [1, n]);
  g.node('Identity', [x], {}, 'y');
  g.output('y', 'FP32', [1, n]);
  return encodeModel(g.build());
}
