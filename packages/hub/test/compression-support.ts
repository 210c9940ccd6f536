/** The index of the largest value of each row: top-1 classes of a [rows, classes] output. */
export function argmaxRows(values: Float32Array, classes: number): number[] {
  const rows: number[] = [];
  for (let r = 0; r < values.length / classes; r++) {
    const row = values.subarray(r * classes, (r + 1) * classes);
    rows.push(row.indexOf(Math.max(...row)));
  }
  return rows;
}
