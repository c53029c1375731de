// Builds a small valid PNG (8-bit RGB, a soft gradient) with nothing but node:zlib.

import { deflateSync } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A width x height PNG; `variant` picks another palette. */
export function makePng(width, height, variant = 0) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x += 1) {
      const fx = x / Math.max(1, width - 1);
      const fy = y / Math.max(1, height - 1);
      const sun = Math.hypot(fx - 0.7, fy - 0.35) < 0.18;
      const face = Math.hypot(fx - 0.5, fy - 0.42) < 0.22 || Math.hypot(fx - 0.5, fy - 1.05) < 0.42;
      const [r, g, b] = variant === 2
        ? (face ? [255, 236, 214] : [236 - 80 * fx, 120 + 40 * fy, 160 + 60 * fx])
        : variant === 0
        ? (sun ? [255, 214, 102] : fy > 0.72 ? [40 + 30 * fx, 70, 90] : [250 - 60 * fy, 120 + 40 * fx, 90 + 120 * fy])
        : (fy > 0.55 - 0.3 * Math.abs(fx - 0.5) ? [34, 110 + 60 * fy, 70] : [120 + 80 * fy, 180, 235]);
      row.set([r, g, b].map((v) => Math.max(0, Math.min(255, Math.round(v)))), 1 + x * 3);
    }
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
