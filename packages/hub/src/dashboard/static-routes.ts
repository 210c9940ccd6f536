import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/**
 * The front-end is plain static files with no build step, kept in src/dashboard/public; from
 * dist/dashboard/ and src/dashboard/ alike that is ../../src/dashboard/public, so a hub install
 * ships src/dashboard/public beside dist/.
 */
export const PUBLIC_DIR = fileURLToPath(new URL('../../src/dashboard/public/', import.meta.url));
const UPLOT_DIR = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
const VENDOR_FILES = new Set(['uPlot.iife.min.js', 'uPlot.min.css']);

/** The dashboard: `/` → index.html, `/assets/*` → public/*, `/assets/vendor/uPlot.*` from the uplot package. */
export const staticRoutes: FastifyPluginAsync<{ publicDir?: string }> = async (app, opts) => {
  await app.register(fastifyStatic, {
    root: opts.publicDir ?? PUBLIC_DIR,
    prefix: '/assets/',
    index: false,
    schemaHide: true,
    cacheControl: false,
    setHeaders: (res) => res.setHeader('cache-control', 'no-cache'),
  });
  await app.register(fastifyStatic, {
    root: UPLOT_DIR,
    prefix: '/assets/vendor/',
    decorateReply: false,
    index: false,
    schemaHide: true,
    maxAge: '1d',
    allowedPath: (path) => VENDOR_FILES.has(path.replace(/^\//, '')),
  });
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.header('cache-control', 'no-cache').sendFile('index.html'));
};
