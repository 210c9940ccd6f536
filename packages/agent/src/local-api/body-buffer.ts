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
 * Largest body whose buffer is made from its Content-Length before any byte arrives; a larger one is
 * gathered as it comes, so a client that declares much and sends little holds no more than it sent.
 */
export const PREALLOCATE_MAX = 16 * 1024 * 1024;

/** A fresh, unpooled buffer (not zeroed: the padding is cleared here, the body is written before it is read). */
function allocate(padding: number, bytes: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(padding + bytes);
  buf.fill(0, 0, padding);
  return buf;
}

/**
 * Collects the chunks of one body. With a declared length (up to PREALLOCATE_MAX) the buffer is made before the first byte
 * and each chunk is copied once into place; without one (chunked transfer) the chunks are kept and
 * copied into a buffer of the right size at the end.
 */
export class BodyBuffer {
  readonly padding: number;
  private readonly target: Buffer | undefined;
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(declared: number | undefined, headerLength: number | undefined) {
    this.padding = bodyPadding(headerLength);
    this.target = declared === undefined || declared > PREALLOCATE_MAX ? undefined : allocate(this.padding, declared);
  }

  get received(): number {
    return this.size;
  }

  /** Adds a chunk; false (and nothing kept) when it would pass the declared length. */
  push(chunk: Buffer): boolean {
    if (this.target) {
      if (this.padding + this.size + chunk.byteLength > this.target.byteLength) return false;
      chunk.copy(this.target, this.padding + this.size);
    } else {
      this.chunks.push(chunk);
    }
    this.size += chunk.byteLength;
    return true;
  }

  /** The body: a view of `received` bytes at `padding` in a buffer of its own. Call once, when complete. */
  finish(): Buffer {
    let whole = this.target;
    if (!whole) {
      whole = allocate(this.padding, this.size);
      let at = this.padding;
      for (const chunk of this.chunks) at += chunk.copy(whole, at);
      this.chunks.length = 0;
    }
    const body = whole.subarray(this.padding, this.padding + this.size);
    owners.add(body);
    return body;
  }

  /** Drops what was read (after a refusal). */
  discard(): void {
    this.chunks.length = 0;
  }
}
