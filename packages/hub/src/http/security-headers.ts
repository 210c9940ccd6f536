import type { FastifyHelmetOptions } from '@fastify/helmet';

/**
 * Headers on every hub answer. The dashboard loads only its own scripts and styles (uPlot is
 * served from /assets/vendor/), sets styles through the CSSOM rather than style attributes, talks
 * only to its own origin (fetch and EventSource), and its one image is the empty `data:` favicon;
 * so the policy allows nothing else. No page may frame the hub (clickjacking of revoke buttons).
 * `upgrade-insecure-requests` and HSTS only under TLS: on a plain-HTTP hub they would make the
 * browser ask for https:// assets that nobody serves.
 */
export function securityHeaders(tls: boolean): FastifyHelmetOptions {
  return {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        scriptSrcAttr: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        ...(tls ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    xFrameOptions: { action: 'deny' },
    // Not includeSubDomains: the hub's name may sit under a domain whose other hosts are plain HTTP.
    strictTransportSecurity: tls ? { maxAge: 180 * 24 * 3600, includeSubDomains: false } : false,
  };
}
