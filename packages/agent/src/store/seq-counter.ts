import type Database from 'better-sqlite3';

/** How many sequence numbers one durable write reserves; a restart skips the unused rest (gaps are fine, going back is not). */
export const SEQ_BLOCK = 100;

export interface SeqCounter {
  /**
   * Runs `write(seq)` in one transaction with the reservation that covers `seq`. The number counts
   * as used only once that transaction committed: when the reservation (or the write) fails, the
   * same number is offered again next time, and nothing was handed out that a restart could reuse.
   */
  use<T>(write: (seq: number) => T): T;
}

/** `onReserved` hears of each new reservation once it is committed. */
export function createSeqCounter(db: Database.Database, onReserved: (reserved: number) => void = () => undefined): SeqCounter {
  const read = db.prepare("SELECT value FROM meta WHERE key = 'seq_reserved'").pluck();
  const reserve = db.prepare("UPDATE meta SET value = ? WHERE key = 'seq_reserved'");
  // Numbers up to the reserved mark may have been used before a restart: never hand them out again.
  let next = (read.get() as number) + 1;
  let limit = next - 1;
  return {
    use(write) {
      const seq = next;
      const newLimit = seq > limit ? seq + SEQ_BLOCK - 1 : limit;
      const result = db.transaction(() => {
        if (newLimit !== limit) reserve.run(newLimit);
        return write(seq);
      })();
      next = seq + 1;
      if (newLimit !== limit) {
        limit = newLimit;
        onReserved(limit);
      }
      return result;
    },
  };
}
