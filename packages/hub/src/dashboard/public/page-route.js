/**
 * Which page the URL hash shows. `#models`, `#models/<name>` and `#models/<name>/<version>` are the
 * models page, `#drift…` the drift page; anything else (`#rollout=<id>` or none) is the fleet page.
 */
const MODELS = /^#models(?:\/([^/]*))?(?:\/([^/]*))?$/;

function decode(part) {
  if (!part) return null;
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}

/** {model, version} (either may be null) for a models-page hash, else null. */
export function modelsRoute(hash) {
  const match = MODELS.exec(hash);
  return match ? { model: decode(match[1]), version: decode(match[2]) } : null;
}

export function modelsHref(model = null, version = null) {
  if (!model) return '#models';
  return `#models/${encodeURIComponent(model)}${version ? `/${encodeURIComponent(version)}` : ''}`;
}

/** `#drift`, `#drift/<name>` and `#drift/<name>/<version>` are the drift page. */
const DRIFT = /^#drift(?:\/([^/]*))?(?:\/([^/]*))?$/;

/** {model, version} (either may be null) for a drift-page hash, else null. */
export function driftRoute(hash) {
  const match = DRIFT.exec(hash);
  return match ? { model: decode(match[1]), version: decode(match[2]) } : null;
}

export function driftHref(model = null, version = null) {
  if (!model) return '#drift';
  return `#drift/${encodeURIComponent(model)}${version ? `/${encodeURIComponent(version)}` : ''}`;
}
