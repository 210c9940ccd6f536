import { createReadStream, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EdgefleetError } from '@edgefleet/shared';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';

/** The front-end lives in src/dashboard/public; from dist/dashboard/ and src/dashboard/ alike it is ../../src/dashboard/public. */
export const PUBLIC_DIR = fileURLToPath(new URL('../../src/dashboard/public/', import.meta.url));
const UPLOT_DIR = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
const VENDOR: Record<string, string> = {
  'uPlot.iife.min.js': join(UPLOT_DIR, 'uPlot.iife.min.js'),
  'uPlot.min.css': join(UPLOT_DIR, 'uPlot.min.css'),
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

function fileSize(path: string): number | undefined {
  try {
    const st = statSync(path);
    return st.isFile() ? st.size : undefined;
  } catch {
    return undefined;
  }
}

/** A path inside `root`, or undefined when the request tries to leave it. */
function inside(root: string, rel: string): string | undefined {
  const full = normalize(join(root, rel));
  return full.startsWith(root.endsWith(sep) ? root : root + sep) ? full : undefined;
}

function sendFile(reply: FastifyReply, path: string | undefined, cache: string): FastifyReply {
  const size = path && fileSize(path);
  if (!path || size === undefined) throw new EdgefleetError('NOT_FOUND', 'no such dashboard file');
  return reply
    .header('content-type', TYPES[extname(path)] ?? 'application/octet-stream')
    .header('content-length', size)
    .header('cache-control', cache)
    .send(createReadStream(path));
}

/** The dashboard: `/` → index.html, `/assets/*` → public/assets/* (or public/*), `/assets/vendor/uPlot.*` from the uplot package. */
export const staticRoutes: FastifyPluginAsync<{ publicDir?: string }> = async (app, opts) => {
  const root = opts.publicDir ?? PUBLIC_DIR;
  app.get('/', { schema: { hide: true } }, async (_req, reply) => sendFile(reply, join(root, 'index.html'), 'no-cache'));
  app.get('/assets/vendor/:file', { schema: { hide: true } }, async (req, reply) =>
    sendFile(reply, VENDOR[(req.params as { file: string }).file], 'public, max-age=86400'),
  );
  app.get('/assets/*', { schema: { hide: true } }, async (req, reply) => {
    const rel = (req.params as { '*': string })['*'];
    const inAssets = inside(join(root, 'assets'), rel);
    const path = inAssets && fileSize(inAssets) !== undefined ? inAssets : inside(root, rel);
    return sendFile(reply, path, 'no-cache');
  });
};
