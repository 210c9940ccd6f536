#!/usr/bin/env node
// Builds the self-contained agent bundle for this machine's architecture (DESIGN "arm64": one bundle per
// architecture, built on it or under emulation, because better-sqlite3's binary is per arch and per ABI).
//
//   node scripts/build-agent-bundle.mjs [--out DIR] [--no-tarball]   (after `tsc -b`; `pnpm bundle:agent` does both)
//
// Produces DIR/edgefleet-agent-<version>-linux-<arch>/ and DIR/edgefleet-agent-<version>-linux-<arch>.tar.gz:
//   edgefleet-agent.mjs     the agent (esbuild, ESM); the unit runs /opt/edgefleet/agent/current/edgefleet-agent.mjs
//   session-worker.js       the session worker, found beside the entry by sessionWorkerUrl()
//   package.json            {"type":"module"}, so the worker's .js is ESM
//   node_modules/           only the native modules and what they require at run time
//   edgefleet-agent.service, install.sh, uninstall.sh (+ shadow-tool.sh), bundle.json (version, arch, node ABI, sha256s)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const AGENT = join(REPO, 'packages/agent');

/** Native (or binary-loading) packages: left external, copied beside the bundle. */
const NATIVE = ['onnxruntime-node', 'better-sqlite3'];

/**
 * What each copied package needs at run time, checked against its package.json below: install-time
 * dependencies (onnxruntime-node's adm-zip/global-agent fetch CUDA; prebuild-install) are left out.
 */
const RUNTIME_FILES = {
  'onnxruntime-node': { requires: ['onnxruntime-common'], installOnly: ['adm-zip', 'global-agent'], files: (arch) => ['package.json', 'dist', `bin/napi-v6/linux/${arch}`] },
  'onnxruntime-common': { requires: [], installOnly: [], files: () => ['package.json', 'dist'] },
  'better-sqlite3': { requires: ['bindings'], installOnly: ['prebuild-install'], files: () => ['package.json', 'lib', 'build/Release/better_sqlite3.node'] },
  bindings: { requires: ['file-uri-to-path'], installOnly: [], files: () => ['package.json', 'bindings.js'] },
  'file-uri-to-path': { requires: [], installOnly: [], files: () => ['package.json', 'index.js'] },
};

/** Source maps and type declarations are not needed on a device. */
const SKIPPED = /\.(map|d\.ts|d\.mts|d\.cts)$/;

const { values: flags } = parseArgs({ options: { out: { type: 'string', default: join(REPO, 'dist/agent-bundle') }, 'no-tarball': { type: 'boolean', default: false } } });

function fail(message) {
  process.stderr.write(`build-agent-bundle: ${message}\n`);
  process.exit(1);
}

/** The package directory `name` resolves to from `fromDir` (pnpm's symlinks followed). */
function packageDir(name, fromDir) {
  let dir = fromDir;
  for (;;) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    const parent = dirname(dir);
    if (parent === dir) fail(`cannot find ${name} from ${fromDir}; run \`npx pnpm@10.34.8 install\``);
    dir = parent;
  }
}

/** Copies `name` and, recursively, its runtime dependencies into bundle/node_modules. */
function copyPackage(name, fromDir, bundleDir, arch) {
  const spec = RUNTIME_FILES[name];
  if (!spec) fail(`${name} is required at run time but has no entry in RUNTIME_FILES`);
  const src = packageDir(name, fromDir);
  const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'));
  const declared = Object.keys(pkg.dependencies ?? {}).sort();
  const known = [...spec.requires, ...spec.installOnly].sort();
  if (declared.join() !== known.join()) {
    fail(`${name}@${pkg.version} declares dependencies [${declared}], expected [${known}]: review RUNTIME_FILES`);
  }
  const dest = join(bundleDir, 'node_modules', name);
  for (const file of spec.files(arch)) {
    if (!existsSync(join(src, file))) fail(`${name}: ${file} missing in ${src} (arch ${arch} not installed, or not built?)`);
    mkdirSync(dirname(join(dest, file)), { recursive: true });
    cpSync(join(src, file), join(dest, file), { recursive: true, filter: (p) => !SKIPPED.test(p) });
  }
  for (const dep of spec.requires) copyPackage(dep, src, bundleDir, arch);
}

function listFiles(dir, base = dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? listFiles(p, base) : [relative(base, p)];
  });
}

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

const startedAt = Date.now();
if (process.platform !== 'linux') fail(`bundles are built for linux devices, this is ${process.platform}`);
const arch = process.arch;
if (arch !== 'x64' && arch !== 'arm64') fail(`architecture ${arch} has no onnxruntime-node binaries; expected x64 or arm64`);
const mainJs = join(AGENT, 'dist/main.js');
const workerJs = join(AGENT, 'dist/inference/session-worker.js');
for (const f of [mainJs, workerJs]) if (!existsSync(f)) fail(`${f} is missing: run \`npx tsc -b\` first`);

const version = JSON.parse(readFileSync(join(AGENT, 'package.json'), 'utf8')).version;
const name = `edgefleet-agent-${version}-linux-${arch}`;
const outDir = resolve(flags.out);
const bundleDir = join(outDir, name);
rmSync(bundleDir, { recursive: true, force: true });
rmSync(`${bundleDir}.tar.gz`, { force: true });
mkdirSync(bundleDir, { recursive: true });

// CommonJS dependencies bundled into ESM still call require() and read __dirname.
const banner = [
  "import { createRequire as __efCreateRequire } from 'node:module';",
  "import { fileURLToPath as __efFileURLToPath } from 'node:url';",
  "import { dirname as __efDirname } from 'node:path';",
  'const require = __efCreateRequire(import.meta.url);',
  'const __filename = __efFileURLToPath(import.meta.url);',
  'const __dirname = __efDirname(__filename);',
].join('\n');
/**
 * agent.ts reads its version with createRequire(import.meta.url)('../package.json'), a path that
 * means nothing inside the bundle: the version is written in at build time instead. Fails the build
 * when the expression changes, so the next such read is noticed rather than broken on a device.
 */
function inlineAgentVersion(version) {
  const expression = "createRequire(import.meta.url)('../package.json').version";
  return {
    name: 'inline-agent-version',
    setup(b) {
      b.onLoad({ filter: /packages[\\/]agent[\\/]dist[\\/]agent\.js$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes(expression)) fail(`${args.path} no longer reads its version with ${expression}; update inlineAgentVersion()`);
        return { contents: text.replace(expression, JSON.stringify(version)), loader: 'js' };
      });
    },
  };
}
const common = { bundle: true, platform: 'node', target: 'node20', format: 'esm', external: NATIVE, banner: { js: banner }, logLevel: 'warning', legalComments: 'none',
  // Minified: ~7-10 MB less idle RSS (bench/agent-idle.mjs); keepNames keeps class and function names in errors and logs.
  minify: true, keepNames: true };
await build({ ...common, plugins: [inlineAgentVersion(version)], entryPoints: [mainJs], outfile: join(bundleDir, 'edgefleet-agent.mjs') });
await build({ ...common, entryPoints: [workerJs], outfile: join(bundleDir, 'session-worker.js') });
// The esbuild output keeps the entry's shebang; the installer runs it through node explicitly anyway.
writeFileSync(join(bundleDir, 'package.json'), `${JSON.stringify({ name: 'edgefleet-agent-bundle', version, private: true, type: 'module' }, null, 2)}\n`);

for (const n of NATIVE) copyPackage(n, AGENT, bundleDir, arch);

copyFileSync(join(REPO, 'deploy/systemd/edgefleet-agent.service'), join(bundleDir, 'edgefleet-agent.service'));
for (const script of ['install.sh', 'uninstall.sh', 'shadow-tool.sh']) {
  copyFileSync(join(REPO, 'deploy/agent', script), join(bundleDir, script));
  chmodSync(join(bundleDir, script), 0o755);
}

const files = listFiles(bundleDir).sort();
const manifest = {
  name: 'edgefleet-agent',
  version,
  platform: 'linux',
  arch,
  // better-sqlite3 is compiled for one Node ABI: the device's node must match it (install.sh checks).
  nodeAbi: process.versions.modules,
  nodeMajor: Number(process.versions.node.split('.')[0]),
  nodeVersion: process.versions.node,
  builtAt: new Date().toISOString(),
  entry: 'edgefleet-agent.mjs',
  files: Object.fromEntries(files.map((f) => [f, sha256(join(bundleDir, f))])),
};
writeFileSync(join(bundleDir, 'bundle.json'), `${JSON.stringify(manifest, null, 2)}\n`);

// --no-tarball: tests that install from the directory skip the few seconds gzip takes.
if (!flags['no-tarball']) execFileSync('tar', ['-czf', `${name}.tar.gz`, '--owner=0', '--group=0', name], { cwd: outDir });
const bytes = files.reduce((sum, f) => sum + statSync(join(bundleDir, f)).size, 0);
const tarBytes = flags['no-tarball'] ? 0 : statSync(`${bundleDir}.tar.gz`).size;
const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
process.stdout.write(
  `${bundleDir}\n  ${files.length + 1} files, ${mb(bytes)} unpacked, ${flags['no-tarball'] ? 'no tarball' : `${mb(tarBytes)} as ${name}.tar.gz`}, node ABI ${manifest.nodeAbi}, built in ${((Date.now() - startedAt) / 1000).toFixed(1)} s\n`,
);
