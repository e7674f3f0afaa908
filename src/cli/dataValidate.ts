/** `ps3 data validate <images> <annotations>`: check a shard pair set entry by entry. */
import { EXIT } from './run.js';
import { formatReasons, validateShards, type ValidationProblem, type ValidationReport } from '../io/shards.js';

function line(p: ValidationProblem): string {
  return `${p.shard}${p.key ? `: ${p.key}` : ''}: ${p.reason}: ${p.problem}`;
}

function summary(report: ValidationReport): string {
  const c = report.counts;
  const problems = report.problems.length;
  const byReason = formatReasons(c.byReason);
  return (
    `data validate: ${c.shardPairs} shard pairs, ${c.seen} tar entries, ${c.samples} samples checked, ${c.ok} ok, ` +
    `${problems} problem${problems === 1 ? '' : 's'}${problems > 0 ? ` (${byReason})` : ''}` +
    (c.ignored > 0 ? `, ${c.ignored} other files ignored` : '')
  );
}

/**
 * Prints one line per problem as it is found and a summary line (or, with `json`, one JSON
 * object of problems and counts). Returns 0 when there is no problem, else 3 (bad data found); shard specs
 * that name nothing throw a UserError.
 */
export async function dataValidateCommand(images: string, annotations: string, options: { json?: boolean }): Promise<number> {
  const print = (text: string): void => void process.stdout.write(`${text}\n`);
  const report = await validateShards(images, annotations, options.json ? {} : { onProblem: (p) => print(line(p)) });
  print(options.json ? JSON.stringify(report, null, 2) : summary(report));
  return report.problems.length === 0 ? EXIT.ok : EXIT.badData;
}
