/**
 * The container both stored tensor files use (golden-file.ts, the hub's calibration file): 8 ASCII
 * bytes of magic, a uint32 LE header length, a UTF-8 JSON header, then raw little-endian tensor
 * bytes, every part starting on an 8-byte boundary (so tensors can be viewed in place).
 */
const ALIGN = 8;
/** Far above any real header (a few hundred bytes per tensor); bounds what a decoder parses. */
const MAX_HEADER_BYTES = 1 << 20;

const padded = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

export function encodeTensorFile(magic: string, header: unknown, parts: readonly ArrayBufferView[]): Uint8Array {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  let size = padded(magic.length + 4 + json.byteLength);
  for (const p of parts) size += padded(p.byteLength);
  const out = Buffer.alloc(size);
  out.write(magic, 0, 'ascii');
  out.writeUInt32LE(json.byteLength, magic.length);
  json.copy(out, magic.length + 4);
  let offset = padded(magic.length + 4 + json.byteLength);
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), offset);
    offset += padded(p.byteLength);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

export interface TensorFileReader {
  /** The parsed JSON header, for the caller's schema. */
  readonly header: unknown;
  /** The next part's `length` bytes (a view into the file); `tooShort` words the error when the file ends first. */
  take(length: number, tooShort: (offset: number, fileSize: number) => string): Uint8Array;
  /** Throws when bytes are left after the parts the header describes. */
  end(): void;
}

/** Checks the magic and the header's bounds and parses the header; `what` names the file in errors. */
export function readTensorFile(bytes: Uint8Array, magic: string, what: string): TensorFileReader {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.byteLength < magic.length + 4 || buf.toString('ascii', 0, magic.length) !== magic) {
    throw new Error(`${what} does not start with ${magic}`);
  }
  const headerLength = buf.readUInt32LE(magic.length);
  if (headerLength > MAX_HEADER_BYTES || magic.length + 4 + headerLength > buf.byteLength) {
    throw new Error(`${what} header of ${headerLength} bytes does not fit the file's ${buf.byteLength} bytes (at most ${MAX_HEADER_BYTES})`);
  }
  let header: unknown;
  try {
    header = JSON.parse(buf.toString('utf8', magic.length + 4, magic.length + 4 + headerLength));
  } catch (err) {
    throw new Error(`${what} header is not JSON: ${(err as Error).message}`);
  }
  let offset = padded(magic.length + 4 + headerLength);
  return {
    header,
    take(length, tooShort) {
      if (offset + length > buf.byteLength) throw new Error(tooShort(offset, buf.byteLength));
      const part = buf.subarray(offset, offset + length);
      offset += padded(length);
      return part;
    },
    end() {
      if (offset !== buf.byteLength) throw new Error(`${what} has ${buf.byteLength} bytes, its header describes ${offset}`);
    },
  };
}
