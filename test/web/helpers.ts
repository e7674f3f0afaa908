/**
 * What the browser tests share: Debian's Chromium (skipped with a message when it is absent),
 * launched headless for loopback pages, and a synthetic picture with structure.
 */
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import type { RgbImage } from '../../src/io/pixels.js';

export const CHROMIUM = process.env['PS3_CHROMIUM'] ?? '/usr/bin/chromium';

/** `skip` for a test that needs Chromium: false when it is there, else why the test is skipped. */
export function chromiumSkip(what: string): string | false {
  return fs.existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install -y chromium): ${what} skipped`;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A picture with structure: a gradient, a red square, a yellow disc, a textured patch (placed as on 800x600). */
export function syntheticPicture(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  const sx = width / 800;
  const sy = height / 600;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [u, v] = [x / sx, y / sy];
      let rgb = [40 + Math.round((150 * x) / width), 70 + Math.round((100 * y) / height), 160];
      if (u > 100 && u < 220 && v > 80 && v < 200) rgb = [220, 30, 30];
      if ((u - 600) ** 2 + (v - 420) ** 2 < 60 ** 2) rgb = [250, 240, 60];
      if (u > 380 && u < 520 && v > 300 && v < 380) rgb = Array(3).fill(((x * 7919 + y * 104729) % 251) & 1 ? 255 : 0);
      data.set(rgb, (y * width + x) * 3);
    }
  }
  return { data, width, height };
}
