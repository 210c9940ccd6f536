import { h } from './dom.js';
import { bytesText, msText, percentText, plainText, ratioText } from './models-format.js';

const DASH = '—';
const HEADS = [
  ['Profile', ''], ['State', ''], ['Size ratio', 'num'], ['Transfer ratio', 'num'], ['Agreement', 'num'], ['Accuracy', 'num'],
  ['Latency ratio', 'num'], ['Quantized share', 'num'], ['Reason', ''],
];

function numCell(field, text, title) {
  return h('td', { class: 'num', 'data-field': field, title: title || null }, text);
}

function sizeTitle(row) {
  return row.size === null ? '' : `${bytesText(row.size)} on disk`;
}

function transferTitle(row) {
  return row.transferSize === null ? '' : `${bytesText(row.transferSize)} on the wire`;
}

function latencyTitle(row) {
  if (row.reference) return row.latencyMs === null ? 'the reference' : `p50 ${msText(row.latencyMs)} at batch 1 on the hub`;
  const e = row.evaluation;
  return e ? `p50 ${msText(e.latencyMs)} vs fp32 ${msText(e.fp32LatencyMs)} at batch 1 on the hub` : '';
}

function accuracyTitle(row) {
  const e = row.evaluation;
  if (!e || e.accuracy === null) return '';
  return `fp32 ${percentText(e.fp32Accuracy)} on the same ${e.samples} samples`;
}

function agreementTitle(row) {
  const e = row.evaluation;
  if (!e) return '';
  return `top-1 equal to fp32's on ${e.samples} ${e.data} samples; max |Δ| ${plainText(e.maxAbsError)}, mean |Δ| ${plainText(e.meanAbsError)}, relative ${percentText(e.relativeError)}`;
}

function agreementText(row) {
  if (row.reference) return h('span', { class: 'muted' }, 'reference');
  if (row.agreement !== null) return percentText(row.agreement);
  // No class axis: the budget judged the relative error instead.
  return row.evaluation ? h('span', { class: 'muted', title: 'no class axis: relative error' }, `Δ ${percentText(row.evaluation.relativeError)}`) : DASH;
}

function reasonCell(row) {
  const notes = row.evaluation?.notes ?? [];
  return h('td', { class: 'variant-reason small', 'data-field': 'reason' },
    row.reason ?? '',
    notes.length > 0
      ? h('details', { class: 'notes' }, h('summary', { class: 'muted' }, `${notes.length} note${notes.length === 1 ? '' : 's'}`),
        h('ul', {}, notes.map((n) => h('li', {}, n))))
      : null);
}

function rowOf(row) {
  return h('tr', { 'data-profile': row.profile, 'data-variant-state': row.state },
    h('td', { class: 'mono profile' }, row.profile),
    h('td', {}, h('span', { class: `badge variant-${row.state}` }, row.state)),
    numCell('size-ratio', ratioText(row.sizeRatio), sizeTitle(row)),
    numCell('transfer-ratio', ratioText(row.transferRatio), transferTitle(row)),
    h('td', { class: 'num', 'data-field': 'agreement', title: agreementTitle(row) || null }, agreementText(row)),
    numCell('accuracy', percentText(row.accuracy), accuracyTitle(row)),
    numCell('latency-ratio', ratioText(row.latencyRatio), latencyTitle(row)),
    numCell('quantized-share', percentText(row.quantizedWeightShare), row.quantizedWeightShare === null ? '' : 'share of the MatMul/Gemm/Conv weight bytes stored as int8'),
    reasonCell(row));
}

/** Owns the variants <table>: one row per profile (variantRows), redrawn whole (six rows). */
export function createVariantsTable(table) {
  table.replaceChildren(
    h('thead', {}, h('tr', {}, HEADS.map(([t, cls]) => h('th', { class: cls || null }, t)))),
    h('tbody', {}));
  const body = table.tBodies[0];

  function render(rows) {
    body.replaceChildren(...(rows.length === 0
      ? [h('tr', { class: 'empty' }, h('td', { colspan: HEADS.length }, 'No variants yet.'))]
      : rows.map(rowOf)));
  }

  return { render };
}
