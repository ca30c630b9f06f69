/**
 * Redis Cluster key slots: CRC16 (XMODEM) of the key, or of its `{hash tag}`, modulo 16384, as
 * `CLUSTER KEYSLOT` answers. The store needs them to count a migrating slot's keys once; the
 * tests, to make session ids that land in a chosen slot.
 */

/** CRC16 (XMODEM) table. */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** CRC16 (XMODEM) of `bytes`, continuing from `crc` (0 to start). @internal */
export function crc16(crc: number, bytes: Uint8Array): number {
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ byte) & 0xff] as number);
  return crc;
}

/** The Cluster slot of `key` (its `{hash tag}` if it has a non-empty one). @internal */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(0, Buffer.from(key)) & 16383;
}
