import { spawnSync } from 'node:child_process';

/**
 * Interoperability tests use Debian's own clients. Outside CI a missing tool skips its suite with a
 * message naming the package; with CI=true a missing tool is a failure (DESIGN.md, settled questions).
 */
export function hasTool(command: string, debianPackage: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
  if (found) return true;
  if (process.env.CI === 'true') {
    throw new Error(`${command} is missing: install the Debian package ${debianPackage} (.ci/run does)`);
  }
  process.stderr.write(`skipping: ${command} not found, install the Debian package ${debianPackage}\n`);
  return false;
}
