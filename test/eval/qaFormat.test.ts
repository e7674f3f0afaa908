/**
 * src/eval/qa/format.ts: the 4KPro-style JSONL format — a good file loads with image paths
 * resolved; every malformed line is a UserError naming the file, the line and the field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isUserError } from '../../src/errors.js';
import { formatBenchItem, loadBenchmark, parseBenchmark, type BenchItemJson } from '../../src/eval/qa/format.js';

const GOOD: BenchItemJson = {
  id: 'q1', image: 'images/a.png', question: 'What does the red sign read?', options: ['K3', 'K8', 'X3', 'A4'], answer: 2, category: 'sign-reading', image_size: [3780, 3780],
};

function lines(...items: unknown[]): string {
  return items.map((i) => (typeof i === 'string' ? i : JSON.stringify(i))).join('\n');
}

function rejects(text: string, pattern: RegExp): void {
  assert.throws(() => parseBenchmark(text, 'bench.jsonl'), (e: unknown) => {
    assert.ok(isUserError(e), `expected a UserError, got ${String(e)}`);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

test('a good file loads: fields kept, image resolved against the file, blank lines skipped, line numbers kept', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ps3-qa-format-'));
  const file = path.join(dir, 'questions.jsonl');
  fs.writeFileSync(file, `${formatBenchItem(GOOD)}\n\n${formatBenchItem({ ...GOOD, id: 'q2', statements: ['a', 'b', 'c', 'd'], prompt: 'a red sign' })}\n`);
  const items = loadBenchmark(file);
  assert.equal(items.length, 2);
  assert.equal(items[0]!.imagePath, path.join(dir, 'images/a.png'));
  assert.deepEqual(items[0]!.options, GOOD.options);
  assert.equal(items[1]!.line, 3);
  assert.equal(items[1]!.prompt, 'a red sign');
  // the documented field order comes first
  assert.deepEqual(Object.keys(JSON.parse(formatBenchItem(GOOD))), ['id', 'image', 'question', 'options', 'answer', 'category', 'image_size']);
  fs.rmSync(dir, { recursive: true });
});

test('errors name the line and the field', () => {
  rejects(lines(GOOD, '{"id": '), /bench\.jsonl:2: not valid JSON/);
  rejects(lines({ ...GOOD, answer: 4 }), /bench\.jsonl:1: field answer: index 4 is out of range for 4 options/);
  rejects(lines(GOOD, { ...GOOD, id: 'q2', answer: -1 }), /bench\.jsonl:2: field answer:/);
  rejects(lines({ ...GOOD, options: ['A', 'A', 'B', 'C'] }), /:1: field options: options must be distinct/);
  rejects(lines({ ...GOOD, options: ['only one'], answer: 0 }), /:1: field options:/);
  rejects(lines({ ...GOOD, image_size: [3780] }), /:1: field image_size/);
  rejects(lines({ ...GOOD, image_size: [3780, -1] }), /:1: field image_size\[1\]/);
  rejects(lines({ ...GOOD, question: '' }), /:1: field question:/);
  const { category: _, ...noCategory } = GOOD;
  rejects(lines(noCategory), /:1: field category:/);
  rejects(lines({ ...GOOD, statements: ['just one'] }), /:1: field statements: 1 statements for 4 options/);
  rejects(lines({ ...GOOD, options: ['K3', 7, 'X3', 'A4'] }), /:1: field options\[1\]:/);
  rejects(lines(GOOD, { ...GOOD }), /:2: field id: "q1" was already used on line 1/);
  rejects('\n\n', /no questions/);
});

test('a missing file is a UserError naming it', () => {
  assert.throws(() => loadBenchmark('/nonexistent/bench.jsonl'), (e: unknown) => isUserError(e) && /\/nonexistent\/bench\.jsonl: cannot read/.test((e as Error).message));
});
