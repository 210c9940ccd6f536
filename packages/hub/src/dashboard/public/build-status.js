import { h } from './dom.js';
import { buildProgressText, buildShare } from './models-format.js';
import { relativeTime } from './time-format.js';

function whenText(build, now) {
  if (build.endedAt) return `ended ${relativeTime(build.endedAt, now)}`;
  if (build.startedAt) return `started ${relativeTime(build.startedAt, now)}`;
  return `queued ${relativeTime(build.createdAt, now)}`;
}

/**
 * Owns the build line of the models page: the latest VariantBuild's state, a progress bar and what
 * the worker does now. data-build-state on the element says the state (none when never built).
 */
export function createBuildStatus(el) {
  function render(build) {
    if (!build) {
      el.dataset.buildState = 'none';
      el.replaceChildren(h('span', { class: 'muted' }, 'Never built: only the uploaded fp32 model exists. “Build variants” makes the others.'));
      return;
    }
    const pct = Math.round(buildShare(build) * 100);
    el.dataset.buildState = build.state;
    el.replaceChildren(...[
      h('div', { class: 'build-head' },
        h('b', {}, 'Build'),
        h('span', { class: `badge build-${build.state}`, 'data-field': 'build-state' }, build.state),
        h('span', { class: 'muted small' }, whenText(build, Date.now()))),
      h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct, 'data-build-progress': pct },
        h('span', { class: 'progress-fill', 'data-build-state': build.state, style: `width:${pct}%` })),
      h('div', { class: 'small', 'data-field': 'build-progress' }, buildProgressText(build)),
      build.error ? h('p', { class: 'error', role: 'alert', 'data-build-error': true }, build.error) : null,
    ].filter(Boolean));
  }

  return { render };
}
