import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/processes.js';

/** Where settings are read or set: the packages' sources, the deploy files, the scripts. */
const SCANNED = ['packages/agent/src', 'packages/hub/src', 'packages/shared/src', 'deploy', 'scripts'];
const DOC = join(REPO_ROOT, 'docs/configuration.md');

/** Every EDGEFLEET_* name in `text`; a bare prefix such as `EDGEFLEET_HUB_*` (ending in "_") is not a name. */
function settingNames(text: string): string[] {
  return [...text.matchAll(/EDGEFLEET_[A-Z0-9_]+/g)].map((m) => m[0]).filter((name) => !name.endsWith('_'));
}

async function namesInSources(): Promise<Map<string, string>> {
  const firstSeen = new Map<string, string>();
  for (const dir of SCANNED) {
    const entries = await readdir(join(REPO_ROOT, dir), { recursive: true, withFileTypes: true });
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath ?? entry.path, entry.name);
      for (const name of settingNames(await readFile(path, 'utf8'))) {
        if (!firstSeen.has(name)) firstSeen.set(name, path.slice(REPO_ROOT.length));
      }
    }
  }
  return firstSeen;
}

describe('docs/configuration.md', () => {
  it('names every EDGEFLEET_* setting the sources read or set', async () => {
    const doc = await readFile(DOC, 'utf8');
    const documented = new Set(settingNames(doc));
    const sources = await namesInSources();
    expect(sources.size).toBeGreaterThan(40);
    const missing = [...sources].filter(([name]) => !documented.has(name)).map(([name, file]) => `${name} (${file})`);
    expect(missing, `settings missing from docs/configuration.md`).toEqual([]);
  });
});
