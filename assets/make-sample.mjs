// Makes assets/sample-4k.jpg, the demo's bundled high-res image: a 3840 x 2160 synthetic street
// scene whose small details (signs, windows, a tiny stop sign) only resolve at high resolution.
// Run once: node assets/make-sample.mjs (deterministic: a fixed-seed generator, no fonts).
import sharp from 'sharp';

let s = 12345;
const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 4294967296);
const W = 3840, H = 2160;
const parts = [`<rect width="${W}" height="${H * 0.55}" fill="#9cc3e6"/>`, `<rect y="${H * 0.55}" width="${W}" height="${H * 0.45}" fill="#5b5e63"/>`];
for (let b = 0; b < 9; b++) {
  const x = b * 430 + rand() * 60, w = 300 + rand() * 80, h = 500 + rand() * 500, y = H * 0.55 - h;
  const hue = Math.floor(rand() * 360);
  parts.push(`<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="hsl(${hue},25%,${45 + rand() * 20}%)"/>`);
  for (let wy = y + 30; wy < H * 0.55 - 60; wy += 70) for (let wx = x + 20; wx < x + w - 40; wx += 55) parts.push(`<rect x="${wx}" y="${wy}" width="28" height="36" fill="${rand() < 0.3 ? '#ffe9a8' : '#2d3a4a'}"/>`);
}
for (let i = 0; i < 26; i++) parts.push(`<rect x="${i * 150 + 40}" y="${H * 0.76}" width="80" height="14" fill="#f2f2f2"/>`);
for (let c = 0; c < 5; c++) {
  const x = 300 + c * 700 + rand() * 100, y = H * 0.62 + rand() * 200, col = ['#c0392b', '#2e86c1', '#f1c40f', '#27ae60', '#8e44ad'][c];
  parts.push(`<rect x="${x}" y="${y}" width="260" height="90" rx="20" fill="${col}"/><circle cx="${x + 55}" cy="${y + 95}" r="28" fill="#111"/><circle cx="${x + 205}" cy="${y + 95}" r="28" fill="#111"/>`);
}
// a tiny stop sign and a speed-limit sign: a few dozen pixels across in a 3840-px image
parts.push(`<rect x="3122" y="1150" width="6" height="120" fill="#444"/><polygon points="3110,1112 3140,1112 3152,1124 3152,1154 3140,1166 3110,1166 3098,1154 3098,1124" fill="#d11"/>`);
parts.push(`<rect x="702" y="1120" width="5" height="120" fill="#444"/><rect x="688" y="1090" width="34" height="42" fill="#fff" stroke="#000" stroke-width="3"/><rect x="696" y="1104" width="18" height="14" fill="#000"/>`);
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join('')}</svg>`;
await sharp(Buffer.from(svg)).jpeg({ quality: 82 }).toFile(new URL('./sample-4k.jpg', import.meta.url).pathname);
