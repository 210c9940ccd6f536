// Assembles a request body into one buffer of its own, placed so that binary tensor data lands aligned.
// Pure: no HTTP.
//
// A binary-extension body is a JSON header of `headerLength` bytes followed by the tensor bytes. The
// body is written at a small offset into its buffer, chosen so that the byte after the header falls on
// an 8-byte boundary: every element type can then be viewed in place, without moving the tensor down
// over the header. The buffer belongs to the request alone, so the runtime may move it to a worker.

/** Largest element size of a tensor type (FP64, INT64): the alignment every type's view is happy with. */
export const TENSOR_ALIGNMENT = 8;

/** Bytes before the body in its buffer, so that the tensor data after a `headerLength`-byte header is aligned. */
export function bodyPadding(headerLength: number | undefined): number {
  if (headerLength === undefined || !Number.isInteger(headerLength) || headerLength < 0) return 0;
  return (TENSOR_ALIGNMENT - (headerLength % TENSOR_ALIGNMENT)) % TENSOR_ALIGNMENT;
}

const owners = new WeakSet<Buffer>();

/** True when `body` came from a BodyBuffer: its ArrayBuffer belongs to it alone (only padding around it). */
export function ownsItsBuffer(body: Buffer): boolean {
  return owners.has(body);
}

/**
 * Largest body whose buffer is made from its Content-Length before any byte arrives. A larger declared
 * body is gathered as chunks until half of it has come, then placed in a buffer of its declared size:
 * a client that declares much and sends little (on any number of connections) holds at most about
 * twice what it sent, and an honest large body costs one extra copy of its first half.
 */
export const EAGER_MAX = 64 * 1024;

/** A fresh, unpooled buffer (not zeroed: the padding is cleared here, the body is written before it is read). */
function allocate(padding: number, bytes: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(padding + bytes);
  buf.fill(0, 0, padding);
  return buf;
}

/**
 * Collects the chunks of one body. With a declared length the body ends in a buffer of that size, made
 * before the first byte (up to EAGER_MAX) or once half has come; each chunk after that is copied once
 * into place. Without one (chunked transfer) the chunks are kept and copied into a buffer of the right
 * size at the end.
 */
export class BodyBuffer {
  readonly padding: number;
  /** The Content-Length, when there is a usable one. */
  private readonly declared: number | undefined;
  private target: Buffer | undefined;
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(declared: number | undefined, headerLength: number | undefined) {
    this.padding = bodyPadding(headerLength);
    this.declared = declared !== undefined && Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined;
    if (this.declared !== undefined && this.declared <= EAGER_MAX) this.target = allocate(this.padding, this.declared);
  }

  get received(): number {
    return this.size;
  }

  /** Bytes this body holds in memory now: its buffer once made, else the chunks kept. */
  get held(): number {
    return this.target ? this.target.byteLength : this.size;
  }

  /** Adds a chunk; false (and nothing kept) when it would pass the declared length. */
  push(chunk: Buffer): boolean {
    if (this.declared !== undefined && this.size + chunk.byteLength > this.declared) return false;
    if (this.target) chunk.copy(this.target, this.padding + this.size);
    else this.chunks.push(chunk);
    this.size += chunk.byteLength;
    if (!this.target && this.declared !== undefined && 2 * this.size >= this.declared) this.target = this.gather(this.declared);
    return true;
  }

  /** The chunks so far, copied into a new buffer with room for `bytes` after the padding. */
  private gather(bytes: number): Buffer {
    const whole = allocate(this.padding, bytes);
    let at = this.padding;
    for (const chunk of this.chunks) at += chunk.copy(whole, at);
    this.chunks.length = 0;
    return whole;
  }

  /** The body: a view of `received` bytes at `padding` in a buffer of its own. Call once, when complete. */
  finish(): Buffer {
    const whole = this.target ?? this.gather(this.size);
    const body = whole.subarray(this.padding, this.padding + this.size);
    owners.add(body);
    return body;
  }

  /** Drops what was read (after a refusal). */
  discard(): void {
    this.chunks.length = 0;
    this.target = undefined;
  }
}
