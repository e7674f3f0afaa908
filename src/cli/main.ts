#!/usr/bin/env node
/** The `ps3` command: one thin file per subcommand. */
import { Command } from 'commander';
import { runCommand } from './run.js';
import { parityCommand } from './parity.js';
import { demoCommand } from './demo.js';
import { benchCommand, type BenchOptions } from './bench.js';

const program = new Command();
program.name('ps3').description('PS3: selective high-resolution vision encoding (CVPR 2025) in TypeScript').showHelpAfterError();
program.option('--backend <name>', 'TensorFlow.js backend: wasm or cpu (default: $PS3_BACKEND or wasm)');

program
  .command('parity')
  .description('run every case of a reference fixture folder and compare with its tolerances')
  .argument('<fixture-dir>', 'folder with config.json, model.safetensors, manifest.json, cases.safetensors')
  .action((dir: string) => runCommand(() => parityCommand(dir, program.opts())));

program
  .command('demo')
  .description('encode the bundled 4K sample (or --image) and write its selection heat maps')
  .option('--image <file>', 'image to encode instead of the bundled sample')
  .option('--model <dir>', 'a PS3 model folder; without it a random model of --preset is used')
  .option('--preset <name>', 'model shape for random weights', 'tiny-4k')
  .option('--looks <n>', 'number of looks, or "all"', '1')
  .option('--seed <n>', 'seed of the random weights', '0')
  .option('--out <dir>', 'output folder', 'ps3-demo')
  .action((o: Omit<import('./demo.js').DemoOptions, 'backend'>) => runCommand(() => demoCommand({ ...o, ...program.opts() })));

program
  .command('bench')
  .description('time the encoder stage by stage (ViT-B/14-sized PS3, random weights) and report GFLOP/s and peak memory')
  .option('--image <file>', 'image to encode instead of the bundled sample')
  .option('--runs <list>', 'comma-separated PRESET:LOOKS runs', 'b14-1.5k:1,b14-1.5k:all,b14-4k:1')
  .option('--out <file>', 'JSON report', 'bench-results.json')
  .action((o: Omit<BenchOptions, 'backend'>) => runCommand(() => benchCommand({ ...o, ...program.opts() })));

program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? 0 : 2);
});
await program.parseAsync(process.argv);
