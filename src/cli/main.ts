#!/usr/bin/env node
/** The `ps3` command: one thin file per subcommand. */
import { Command } from 'commander';
import { runCommand } from './run.js';
import { parityCommand } from './parity.js';

const program = new Command();
program.name('ps3').description('PS3: selective high-resolution vision encoding (CVPR 2025) in TypeScript').showHelpAfterError();
program.option('--backend <name>', 'TensorFlow.js backend: wasm or cpu (default: $PS3_BACKEND or wasm)');

program
  .command('parity')
  .description('run every case of a reference fixture folder and compare with its tolerances')
  .argument('<fixture-dir>', 'folder with config.json, model.safetensors, manifest.json, cases.safetensors')
  .action((dir: string) => runCommand(() => parityCommand(dir, program.opts())));

program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? 0 : 2);
});
await program.parseAsync(process.argv);
