import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initEngine, tf } from '../../src/tensor/engine.js';
import { boxLoss, type BoxLossKind } from '../../src/train/loss.js';

await initEngine();

/** The box terms written out in plain numbers: per row and scale, BCE of each patch. */
function reference(probs: number[][][], targets: number[][][], isGlobal: number[], kind: BoxLossKind): number {
  const local = isGlobal.map((g): number => (g ? 0 : 1));
  const nLocal = local.reduce((a, b) => a + b, 0);
  let sum = 0;
  probs.forEach((scale, s) => {
    let term = 0;
    let ranked = 0;
    scale.forEach((row, b) => {
      if (!local[b]) return;
      const t = targets[s]![b]!;
      if (kind === 'softmax') {
        // -log(sum over the box of e^z / sum over all of e^z), z = log(p / (1 - p))
        if (!t.some((v) => v > 0)) return;
        const e = row.map((p) => p / (1 - p));
        term += -Math.log(e.reduce((a, c, i) => a + c * t[i]!, 0) / e.reduce((a, c) => a + c, 0));
        ranked += 1;
        return;
      }
      const bce = row.map((p, i) => -(t[i]! * Math.max(Math.log(p), -100) + (1 - t[i]!) * Math.max(Math.log(1 - p), -100)));
      if (kind === 'bce') term += bce.reduce((a, c) => a + c, 0) / row.length;
      else {
        const inBox = t.reduce((a, c) => a + c, 0);
        const pos = bce.reduce((a, c, i) => a + c * t[i]!, 0) / Math.max(inBox, 1);
        const neg = bce.reduce((a, c, i) => a + c * (1 - t[i]!), 0) / Math.max(row.length - inBox, 1);
        term += 0.5 * (pos + neg);
      }
    });
    sum += kind === 'softmax' ? term / Math.max(ranked, 1) : term / nLocal;
  });
  return sum / probs.length;
}

test('box loss, bce, balanced and softmax, equal the written-out per-patch sums (two scales, a global row left out)', () => {
  const probs = [
    [[0.1, 0.8, 0.3, 0.05], [0.5, 0.5, 0.9, 0.2], [0.7, 0.1, 0.1, 0.1]],
    [[0.2, 0.6, 0.01, 0.4, 0.3, 0.9, 0.15, 0.25, 0.35], [0.05, 0.95, 0.5, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8], [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]]];
  const targets = [
    [[0, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]],
    [[0, 1, 0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1]]];
  const shapes: Array<[number, number, number]> = [[3, 2, 2], [3, 3, 3]];
  const isGlobal = [0, 0, 1];
  for (const kind of ['bce', 'balanced', 'softmax'] as const) {
    const got = tf.tidy(() => boxLoss(probs.map((p, i) => tf.tensor(p.flat(), shapes[i]!)), targets.map((t) => Float32Array.from(t.flat())), isGlobal, kind).dataSync()[0]!);
    const want = reference(probs, targets, isGlobal, kind);
    assert.ok(Math.abs(got - want) < 1e-5, `${kind}: ${got} vs ${want}`);
  }
});

test('balanced box loss: selecting nothing costs as much as selecting everything, unlike the mean BCE', () => {
  // one box patch among 100: the mean BCE barely notices a selector that selects nothing
  const target = new Float32Array(100);
  target[42] = 1;
  const at = (p: number, kind: 'bce' | 'balanced'): number => tf.tidy(() => boxLoss([tf.fill([1, 10, 10], p)], [target], [0], kind).dataSync()[0]!);
  assert.ok(at(0.01, 'bce') < 0.06, 'mean BCE: nothing selected is nearly optimal');
  assert.ok(Math.abs(at(0.01, 'balanced') - at(0.99, 'balanced')) < 1e-4, 'balanced: symmetric');
  assert.ok(at(0.01, 'balanced') > 2, 'balanced: nothing selected is far from optimal');
});

test('softmax box loss: log(patches / box patches) for a flat map, near 0 once the box outranks the rest', () => {
  const target = new Float32Array(100);
  target[42] = 1;
  target[43] = 1;
  const flat = tf.tidy(() => boxLoss([tf.fill([1, 10, 10], 0.3)], [target], [0], 'softmax').dataSync()[0]!);
  assert.ok(Math.abs(flat - Math.log(50)) < 1e-4, `flat map: ${flat} vs log 50`);
  const ranked = Float32Array.from(target, (t) => (t ? 0.99995 : 1e-4));
  const good = tf.tidy(() => boxLoss([tf.tensor(ranked, [1, 10, 10])], [target], [0], 'softmax').dataSync()[0]!);
  assert.ok(good < 1e-3, `box first: ${good}`);
  // a patch outside the box that outranks it is what the loss pushes down
  const grad = tf.tidy(() => {
    const p = Float32Array.from(ranked);
    p[7] = 0.999;
    return tf.grad((x: tf.Tensor) => boxLoss([x], [target], [0], 'softmax'))(tf.tensor(p, [1, 10, 10])).dataSync();
  });
  assert.ok(grad[7]! > 0 && grad[42]! < 0, 'the rival goes down and the box goes up');
  assert.ok(Math.abs(grad[0]!) < 1e-3 * grad[7]!, 'patches far below the box are left alone');
});
