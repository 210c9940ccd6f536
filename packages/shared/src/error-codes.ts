/** Stable error codes shared by hub, agent and clients, with the HTTP status each maps to. */
export const ERROR_CODES = {
  BAD_REQUEST: 400,
  INVALID_MODEL: 400,
  INVALID_TENSOR: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  MODEL_NOT_FOUND: 404,
  CONFLICT: 409,
  /** The candidate's outputs disagreed with the active version's in the shadow phase. */
  SHADOW_DISAGREEMENT: 422,
  /** The agent's health window found the new version worse than the previous one and switched back. */
  UNHEALTHY: 422,
  TOKEN_INVALID: 401,
  RANGE_NOT_SATISFIABLE: 416,
  PAYLOAD_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  HEADERS_TOO_LARGE: 431,
  TOO_MANY_REQUESTS: 429,
  DISK_FULL: 507,
  STORAGE_ERROR: 503,
  MODEL_NOT_READY: 503,
  UNAVAILABLE: 503,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error that knows its stable code; servers map it to `ERROR_CODES[code]`. */
export class EdgefleetError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EdgefleetError';
    this.code = code;
  }
  get httpStatus(): number {
    return ERROR_CODES[this.code];
  }
}

export function isEdgefleetError(err: unknown): err is EdgefleetError {
  return err instanceof EdgefleetError;
}
