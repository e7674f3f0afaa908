#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.hugetlb=1 node
/** The `ps3` command: one thin file per subcommand. */
import { Command } from 'commander';
import { exitWhenIdle, runCommand } from './run.js';
import { parityCommand } from './parity.js';
import { demoCommand, type DemoCliOptions } from './demo.js';
import { evalQaCommand, QA_HELP, type EvalQaCliOptions } from './evalQa.js';
import { evalRetrievalCommand, RETRIEVAL_HELP, type EvalRetrievalCliOptions } from './evalRetrieval.js';
import { evalSelectionCommand, SELECTION_HELP, type EvalSelectionCliOptions } from './evalSelection.js';
import { evalProbeCommand, PROBE_HELP, type EvalProbeCliOptions } from './evalProbe.js';
import { CAPTIONS_HELP, evalCaptionsCommand, type EvalCaptionsCliOptions } from './evalCaptions.js';
import { evalCostCommand, type EvalCostCliOptions } from './evalCost.js';
import { make4kCommand, type Make4kCliOptions } from './benchmark4k.js';
import { benchCommand, type BenchOptions } from './bench.js';
import { benchEncodeCommand, type BenchEncodeOptions } from './benchEncode.js';
import { benchBrowserCommand, type BenchBrowserOptions } from './benchBrowser.js';
import { benchLoadCommand, type BenchLoadOptions } from './benchLoad.js';
import { benchServeCommand, type BenchServeOptions } from './benchServe.js';
import { benchQueueCommand, type BenchQueueOptions } from './benchQueue.js';
import { benchTrainCommand, type BenchTrainOptions } from './benchTrain.js';
import { trainCommand, type TrainCliOptions } from './train.js';
import { exportCommand, type ExportCliOptions } from './export.js';
import { encodeCommand, type EncodeCliOptions } from './encode.js';
import { dataSynthCommand } from './dataSynth.js';
import { dataValidateCommand } from './dataValidate.js';
import { dataCaptionCommand, DATA_CAPTION_HELP, type DataCaptionOptions } from './dataCaption.js';
import { similarityCommand, type SimilarityCliOptions } from './similarity.js';
import { infoCommand } from './info.js';
import { serveCommand, type ServeCliOptions } from './serve.js';
import { queueAddCommand, queueStatusCommand, type QueueAddOptions } from './queue.js';
import { workerCommand, type WorkerCliOptions } from './worker.js';
import { DEFAULT_QUEUE } from '../serve/batchJobs.js';
import { trainMllmCommand, type TrainMllmCliOptions } from './trainMllm.js';
import { trainReadCommand, type TrainReadCliOptions } from './trainRead.js';
import { evalReadingCommand, type EvalReadingCliOptions } from './evalReading.js';
import { benchTrainMllmCommand, type BenchTrainMllmOptions } from './benchTrainMllm.js';
import { askCommand, type AskCliOptions } from './ask.js';
import { evalScalingCommand, type EvalScalingCliOptions } from './evalScaling.js';

const program = new Command();
program.name('ps3').description('PS3: selective high-resolution vision encoding (CVPR 2025) in TypeScript').showHelpAfterError('(add --help for usage)');
// before any sub-command is made: each inherits it, so an unknown or missing option of any command
// is bad input (exit 2), not commander's exit 1 (which README reserves for bugs)
program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? 0 : 2);
});
program.option('--backend <name>', 'TensorFlow.js backend: wasm or cpu (default: $PS3_BACKEND or wasm)');

program
  .command('parity')
  .description('run every case of a reference fixture folder and compare with its tolerances')
  .argument('<fixture-dir>', 'folder with config.json, model.safetensors, manifest.json, cases.safetensors')
  .option('--trunk <engine>', 'engine of the trunk\'s blocks: onnx or tfjs (default: $PS3_TRUNK or onnx)')
  .action((dir: string, o: { trunk?: string }) => runCommand(() => parityCommand(dir, { ...o, ...program.opts() })));

program
  .command('demo')
  .description('the main job: the shipped VILA-HD on a fresh held-out 4KPro-lite (PS3 vs its baselines, scaling curves, where it looked), then the shipped PS3 — where it looks, retrieval, cost vs resolution, heat maps, a short fine-tuning run — and a report')
  .option('--out <dir>', 'output folder', 'ps3-demo')
  .option('--vila <dir>', 'the VILA-HD folder that answers the questions (default: the shipped models/vila-hd-tiny)')
  .option('--model <dir>', 'the trained PS3 model of the PS3 sections, and the fine-tuning start (default: the shipped models/ps3-tiny)')
  .option('--questions <n>', 'held-out 4KPro-lite questions answered by VILA-HD with ps3 and lowres (default 100)')
  .option('--slow-questions <n>', 'of them, how many the slow baselines (anyres, s2) answer (default 16)')
  .option('--scaling-questions <n>', 'of them, how many each point of the scaling curves answers (default 16)')
  .option('--looks <list>', 'looks of the test-time scaling curve (default 1,2,3)')
  .option('--baseline-resolution <px>', 'resolution anyres and s2 tile (default: each the one its LM was trained on, as the VILA-HD config records it)')
  .option('--selection <n>', 'held-out scenes of the selection-recall check (default 3)')
  .option('--image <file>', 'the 4K image encoded with a prompt (default: the bundled sample)')
  .option('--prompt <text>', 'its top-down prompt')
  .option('--train-minutes <x>', 'fine-tuning budget in minutes (default 0.75)')
  .option('--train-images <n>', 'synthetic training scenes (default 6)')
  .option('--batch <n>', 'training batch (default 2)')
  .option('--retrieval <n>', 'retrieval triples (default 4)')
  .option('--candidates <n>', 'captions to rank per triple (default 4)')
  .option('--cost-resolutions <list>', 'resolutions of the cost report (default 756,1512,3780)')
  .option('--seed <n>', 'seed of data, training and evaluation (default 0)')
  .option('--quick', 'small budgets: a check that everything runs, not a result')
  .option('--preset <name>', 'instead of a trained PS3: pre-train this shape from random weights first (micro: a fast check of the whole path)')
  .action((o: Omit<DemoCliOptions, 'backend'>) => runCommand(() => demoCommand({ ...o, ...program.opts() })));

const bench = program
  .command('bench')
  .description('time the encoder stage by stage (ViT-B/14-sized PS3, random weights) and report GFLOP/s and peak memory')
  .option('--image <file>', 'image to encode instead of the bundled sample')
  .option('--runs <list>', 'comma-separated PRESET:LOOKS runs', 'b14-1.5k:1,b14-1.5k:all,b14-4k:1')
  .option('--out <file>', 'JSON report', 'bench-results.json')
  .option('--trunk <engine>', 'engine of the trunk\'s blocks: onnx or tfjs (default: $PS3_TRUNK or onnx)')
  .action((o: Omit<BenchOptions, 'backend'>) => runCommand(() => benchCommand({ ...o, ...program.opts() })));

bench
  .command('encode')
  .description('one timed encode of one image (decode to outputs); --json prints one JSON line; takes bench\'s --image and --trunk')
  .option('--preset <name>', 'model shape (with --random-init)')
  .option('--random-init', 'random weights of --preset (vision tower only)')
  .option('--model <dir|id>', 'a PS3 model folder or Hub id ORG/NAME[@REV] instead (vision tower only)')
  .option('--looks <n>', 'number of looks, or "all"', '1')
  .option('--dense', 'also time ONNX Runtime running the same trunk densely over 3,289 tokens, and the ratio')
  .option('--warmup', 'run one untimed encode first')
  .option('--repeats <n>', 'time the encode (and the dense pass) n times, alternating, and report the medians', '1')
  .option('--json', 'print one JSON line')
  // --image and --trunk belong to `bench` (commander gives them to it wherever they stand)
  .action((o: Omit<BenchEncodeOptions, 'backend' | 'image' | 'trunk'>) => {
    const shared = bench.opts<Pick<BenchOptions, 'image' | 'trunk'>>();
    return runCommand(() => benchEncodeCommand({ ...o, image: shared.image, trunk: shared.trunk, ...program.opts() }));
  });

bench
  .command('browser')
  .description('one timed encode in headless Chromium on the web page next to the same encode in Node, same random weights and engines; ratios; takes bench\'s --image')
  .option('--preset <name>', 'model shape (random weights, seed 0)', 'b14-4k')
  .option('--looks <n>', 'number of looks, or "all"', '1')
  .option('--engine <e>', 'ort: trunk, convnet and selector projection on ONNX Runtime (onnxruntime-web in the page, onnxruntime-node here); tfjs: all on TensorFlow.js', 'ort')
  .option('--ep <p>', 'the page\'s ONNX Runtime provider: auto (WebGPU on a hardware adapter, else WASM), webgpu or wasm', 'auto')
  .option('--chromium <path>', 'the browser (default: $PS3_CHROMIUM or /usr/bin/chromium)')
  .option('--warmup', 'run one untimed encode first, on both sides')
  .option('--json', 'print one JSON line')
  .action((o: Omit<BenchBrowserOptions, 'backend' | 'image'>) => {
    const shared = bench.opts<Pick<BenchOptions, 'image'>>();
    return runCommand(() => benchBrowserCommand({ ...o, ...(shared.image ? { image: shared.image } : {}), ...program.opts() }));
  });

bench
  .command('load')
  .description('write a random checkpoint of a preset\'s shapes (BF16/F16/F32, optionally sharded) and load it in a fresh process: peak RSS against the float32 size')
  .option('--preset <name>', 'model shape', 'so400m-4k')
  .option('--dtype <d>', 'bf16, f16 or f32', 'bf16')
  .option('--shards <n>', 'number of files (more than 1 writes model.safetensors.index.json)', '1')
  .option('--parts <p>', 'all, or vision (what encode loads without a prompt)', 'vision')
  .option('--dir <dir>', 'write the checkpoint here and keep it (default: a temp folder, removed after)')
  .option('--json', 'print one JSON line')
  .action((o: Omit<BenchLoadOptions, 'backend'>) => runCommand(() => benchLoadCommand({ ...o, ...program.opts() })));

bench
  .command('serve')
  .description('requests/s and p50/p99 latency of POST /v1/encode against a `ps3 serve` child process, per number of concurrent clients; takes bench\'s --image and --trunk')
  .option('--preset <name>', 'serve random weights of this preset')
  .option('--model <dir>', 'or a PS3 model folder')
  .option('--clients <list>', 'comma-separated numbers of concurrent clients', '1,4,16')
  .option('--requests <n>', 'requests per level (at least one per client)', '32')
  .option('--looks <n>', 'looks per encode', '1')
  .option('--json', 'print the report as one JSON line')
  .action((o: Omit<BenchServeOptions, 'backend' | 'image' | 'trunk'>) => {
    const shared = bench.opts<Pick<BenchOptions, 'image' | 'trunk'>>();
    return runCommand(() => benchServeCommand({ ...o, ...(shared.image ? { image: shared.image } : {}), ...(shared.trunk ? { trunk: shared.trunk } : {}), ...program.opts() }));
  });

bench
  .command('queue')
  .description('images/s of a batch encode with 1, 2, 3 ... local `ps3 worker`s on a Redis queue; takes bench\'s --image and --trunk')
  .requiredOption('--redis <url>', 'a Redis to use (throw-away queues are made and removed)')
  .option('--preset <name>', 'random weights of this preset')
  .option('--model <dir>', 'or a PS3 model folder')
  .option('--workers <list>', 'comma-separated numbers of workers', '1,2,3')
  .option('--images <n>', 'distinct images per run', '12')
  .option('--json', 'print the report as one JSON line')
  .action((o: Omit<BenchQueueOptions, 'backend' | 'image' | 'trunk'>) => {
    const shared = bench.opts<Pick<BenchOptions, 'image' | 'trunk'>>();
    return runCommand(() => benchQueueCommand({ ...o, ...(shared.image ? { image: shared.image } : {}), ...(shared.trunk ? { trunk: shared.trunk } : {}), ...program.opts() }));
  });

bench
  .command('train')
  .description('time N pre-training steps of a preset at its top scale as the trainer runs them (or phase by phase with --phases): samples/s, GFLOP/s and CPU time')
  .option('--preset <name>', 'model shape (random weights)', 'tiny')
  .option('--data <dir>', 'shard sets from "ps3 data synth" (default: a few synthetic scenes drawn for the run)')
  .option('--steps <n>', 'timed steps (after one warm-up step)', '2')
  .option('--batch <n>', 'samples per step', '2')
  .option('--seed <n>', 'seed of data and weights', '0')
  .option('--loss-weights <c,p,q>', 'weights of the contrastive loss and the bottom-up and top-down box losses (as train takes them)', '1,1,1')
  .option('--phases', "run the phases one after the other in one thread and time each (data, resizes, forward, backward, optimizer) instead of as the trainer runs (data in its worker thread)")
  .option('--threads <list>', 'comma-separated numbers of threads sharing each step\'s batch (as train --threads), each timed in turn from the same weights; speedups against the first', '1')
  .option('--json', 'print one JSON line')
  .action((o: Omit<BenchTrainOptions, 'backend'>) => runCommand(() => benchTrainCommand({ ...o, ...program.opts() })));

bench
  .command('train-mllm')
  .description('samples/s of VILA-HD training steps (train-mllm on the token cache of a few scenes) with each number of threads, choice weight and number of tuned PS3 blocks, in one process, and the ratios')
  .option('--ps3 <dir>', 'the PS3 model folder (default: the shipped models/ps3-tiny)')
  .option('--method <name>', 'ps3 | lowres | anyres | s2', 'ps3')
  .option('--preset <name>', 'LM size: micro | tiny', 'tiny')
  .option('--threads <list>', 'comma-separated numbers of threads', '1,2')
  .option('--choice-weights <list>', 'comma-separated train-mllm --choice-weight values, each timed with each number of threads', '0')
  .option('--tune-trunk <list>', 'comma-separated train-mllm --tune-trunk values (PS3 blocks trained with the LM; 0 = PS3 frozen), each timed with each of the above', '0')
  .option('--steps <n>', 'timed steps a run (after one warm-up step)', '3')
  .option('--batch <n>', 'questions per step', '8')
  .option('--images <n>', 'training scenes (their tokens are cached first, untimed)', '4')
  .option('--repeats <n>', 'runs per number of threads, alternating; medians reported', '1')
  .option('--json', 'print one JSON line')
  .action((o: Omit<BenchTrainMllmOptions, 'backend'>) => runCommand(() => benchTrainMllmCommand({ ...o, ...program.opts() })));

program
  .command('train')
  .description('pre-train or fine-tune PS3 on shards of (image, box, caption) data; resumable')
  .option('--preset <name>', 'start from a named shape with random weights (e.g. tiny-4k); with --init, the shape to grow the checkpoint to (more high-res scales, or another selection ConvNeXt: tiny-fine-select)')
  .option('--init <dir|id>', 'start from a checkpoint folder (ours or a released one) or Hub id ORG/NAME[@REV]')
  .requiredOption('--data <dir|synth[:SEED]>', 'data folder with images/ and annotations/ shard sets (and tokenizer/), or synth[:SEED]: an endless stream of synthetic scenes drawn afresh at the top scale, none seen twice (SEED below 1000000, the held-out base; default 0)')
  .option('--synth-captions <n|min-max>', 'local captions a scene of the synth stream (as "ps3 data synth --captions"; default 4-8)')
  .requiredOption('--out <dir>', 'output folder: checkpoint/ and metrics.jsonl')
  .option('--resume', 'continue the run in --out from its last checkpoint', false)
  .option('--steps <n>', 'optimizer steps in all', '100')
  .option('--batch <n>', 'samples per micro-batch', '4')
  .option('--accum <n>', 'micro-batches per step (gradient accumulation)', '1')
  .option('--threads <n>', 'threads that share each micro-batch, a sample or more each (default: one per core but the one the data thread uses, at most --batch; 1 = the training thread alone); a run resumes on the same curve with the same number')
  .option('--lr <x>', 'peak learning rate', '5e-4')
  .option('--warmup <n>', 'linear warm-up steps before the cosine decay', '10')
  .option('--clip <x>', 'clip the global gradient norm to this (0 = off)', '1')
  .option('--weight-decay <x>', 'AdamW decoupled weight decay', '3e-4')
  .option('--freeze <group>', 'none | text | prompts (text tower and prompt projection) | all-but-selection | trunk (the vision tower but its selection modules and prior prompt: its tokens stay) | features (all but what selection alone reads: the selection modules, prior prompt and text prompt projection learn; tokens and contrastive features stay)', 'none')
  .option('--seed <n>', 'seed of data order, augmentation and random init', '0')
  .option('--save-every <n>', 'steps between checkpoints', '25')
  .option('--stop-at <step>', 'stop after this step with a checkpoint, the schedule still that of --steps (continue later with --resume)')
  .option('--max-minutes <x>', 'stop (after a whole step, with a checkpoint) after this long; 0 = no limit', '0')
  .option('--shuffle-buffer <n>', 'shuffle buffer size of the data stream', '64')
  .option('--global-caption-prob <x>', 'probability of training on the global caption', '0.25')
  .option('--loss-weights <c,p,q>', 'weights of the contrastive loss and the bottom-up and top-down box losses', '1,1,1')
  .option('--box-loss <kind>', 'box terms: bce (the reference: mean over all patches) | balanced (box patches and the rest weighed equally) | softmax (the box ranked above the rest: -log of its softmax share)', 'bce')
  .option('--logit-bias <x>', 'start with this SigLIP logit bias (the reference\'s -10 suits batches of thousands; about log(1/(B-1)) suits small ones)')
  .option('--reinit <groups>', 'start these weight groups from random weights drawn with --seed, the rest as --init gives it: text-tower (not its prompt projection), pool-head (the attention pooling that makes the contrastive image feature), prompt-proj (the text tower\'s prompt projection alone)')
  .option('--word-loss <x>', 'weight of the caption-word term (not the reference\'s): each local box\'s pooled feature scores the vocabulary through the text tower\'s token embedding against its caption\'s words (0 = off)', '0')
  .option('--token-word-loss <x>', 'weight of the same term on each local box\'s mean high-res token instead of its pooled feature, so the tokens a multimodal model reads carry the words (0 = off)', '0')
  .option('--hard-negatives <k>', 'captions one word away (another colour, shape, letter or digit of the scenes\' captions) each local box must score below its own, K a box (not the reference\'s; 0 = off)', '0')
  .option('--hard-negative-weight <x>', 'weight of the hard-negative term', '1')
  .option('--regions <n>', 'local (box, caption) pairs per image in the contrastive term, its own included: one look pools them all (1 = the reference)', '1')
  .option('--region-selection', 'the other regions\' captions drive top-down selection too, each scored by the box terms against its own box (not the reference\'s; needs --regions 2 or more): several captions of one image teach the prompt which object it names', false)
  .option('--eval-every <n>', 'steps between held-out checks (selection recall, retrieval PS3 vs low-res) logged as val_* in metrics.jsonl; 0 = never', '0')
  .option('--eval-scenes <n>', 'held-out validation scenes per check', '6')
  .action((o: TrainCliOptions) => runCommand(() => trainCommand({ ...o, ...program.opts() })));

program
  .command('export')
  .description('a training checkpoint as a model folder to ship: model files only, weights in half precision by default')
  .argument('<checkpoint>', 'a checkpoint (e.g. OUT/checkpoint of ps3 train) or any model folder')
  .option('--out <dir>', 'the model folder to write (other files in it are left alone)')
  .option('--dtype <f16|f32>', 'how the weights are stored', 'f16')
  .option('--add <checkpoint>', 'VILA-HD: join the methods of another checkpoint (same LM shape, tokenizer and PS3 trunk; repeatable)', (v: string, prev: string[] = []) => [...prev, v])
  .option('--replace', 'VILA-HD: a method an --add checkpoint holds replaces the one already in the folder (else exit 2)')
  .action((from: string, o: ExportCliOptions) => runCommand(async () => exportCommand(from, o)));

program
  .command('train-read')
  .description('a reading stage (not the reference\'s): PS3\'s trunk taught to name the character in glyph crops placed on the top scale\'s grid, palettes along a curriculum (greys first); a PS3 folder to go on from; resumable')
  .option('--init <dir|id>', 'start from a PS3 model folder or Hub id ORG/NAME[@REV]')
  .option('--preset <name>', 'start from a named shape with random weights')
  .requiredOption('--out <dir>', 'output folder: checkpoint/ (a PS3 folder plus reading_head.safetensors) and metrics.jsonl')
  .option('--resume', 'continue the run in --out from its last checkpoint', false)
  .option('--curriculum <stages>', 'palettes in order, PALETTE:CROPS,...,PALETTE (the last goes on): grey (two greys), named (the scenes\' label colours), random (any two colours 90 apart in luminance), shape (the glyph on a labelled scene shape, on a muted ground)', 'grey:15000,named')
  .option('--glyph-px <min-max>', 'glyph heights in pixels', '18-32')
  .option('--crop <px>', 'crop side in pixels, a whole number of patches', '56')
  .option('--steps <n>', 'optimizer steps in all (the schedule\'s length)', '5000')
  .option('--batch <n>', 'crops a step', '64')
  .option('--lr <x>', 'peak learning rate', '1e-3')
  .option('--warmup <n>', 'linear warm-up steps before the cosine decay', '20')
  .option('--clip <x>', 'clip the global gradient norm to this (0 = off)', '1')
  .option('--weight-decay <x>', 'AdamW decoupled weight decay', '0')
  .option('--seed <n>', 'seed of the crops and the head (below 1000000, the held-out base; the checks\' crops use 1900000 + seed, validation seeds)', '0')
  .option('--save-every <n>', 'steps between checkpoints', '100')
  .option('--max-minutes <x>', 'stop (after a whole step, with a checkpoint) after this long; 0 = no limit', '0')
  .option('--eval-every <n>', 'steps between held-out accuracy checks, per palette of the curriculum (val_PALETTE in metrics.jsonl); 0 = never', '100')
  .option('--eval-crops <n>', 'held-out crops a palette', '720')
  .option('--eval-scenes <n>', 'held-out scenes (validation seeds from 1900000, apart from the evaluation\'s; drawn once at the start) whose one-character labels, cut as a look sees them, are read at every check (val_scene): whether the crops carry over to the scenes; 0 = none', '20')
  .option('--keep <dir|id>', 'a PS3 model whose tokens the trunk stays near: each step adds the mean squared difference between the trunk\'s tokens and this model\'s on crops of natural training scenes at every scale (val_keep: the same on validation scenes)')
  .option('--keep-weight <x>', 'weight of the keep term beside the reading loss', '1')
  .option('--keep-scenes <n>', 'training scenes (the --seed stream) cut for the keep term, 24 crops a scale each, drawn once at the start', '32')
  .option('--context-scenes <n>', 'read in a look: each step\'s crops run together as one look beside the low-res tokens of one of this many training scenes (the --seed stream, taking turns), as a look\'s tokens attend to the scene; the checks then also read the held-out scenes\' characters from real looks (val_scene_look); 0 = each crop alone', '0')
  .option('--keep-batch <n>', 'keep crops a step (one scale a step, the scales taking turns)', '32')
  .option('--keep-in-look', 'read the keep term in a look: each keep batch is one scene\'s --keep-batch crops of a high-res scale, run as one look beside the scene\'s own low-res pass, the low-res tokens and the look\'s both kept near --keep\'s', false)
  .action((o: TrainReadCliOptions) => runCommand(() => trainReadCommand({ ...o, ...program.opts() })));

program
  .command('train-mllm')
  .description('train VILA-HD (LM, projector, prompt head) on a frozen PS3 with 4KPro-lite-style questions over synthetic scenes; resumable')
  .option('--ps3 <dir>', 'the PS3 model folder VILA-HD stands on (a new run)')
  .requiredOption('--out <dir>', 'output folder: checkpoint/ (a VILA-HD folder), metrics.jsonl, cache/')
  .option('--method <name>', 'whose tokens the LM reads: ps3 | lowres | anyres | s2 (one LM per method, all in one folder)', 'ps3')
  .option('--preset <name>', 'LM size: micro | tiny | small (config.ts LM_PRESETS)', 'tiny')
  .option('--projector-hidden <n>', 'a new folder\'s projector width between its two Linears (default: the LM width; a folder keeps its own)')
  .option('--context <n>', 'LM context length (tokens) of this method when it is new (default: the preset\'s, or the folder\'s lm.context_length); other methods keep theirs; a resume keeps the run\'s')
  .option('--resume', 'continue this method\'s run in --out from its last checkpoint', false)
  .option('--init <dir>', 'a new run starts from the LM, projector and prompt head this VILA-HD folder trained (same LM shape and tokenizer; positions of a longer context stay as initialised) instead of random weights')
  .option('--init-method <name>', 'whose weights --init takes: ps3 | lowres | anyres | s2 (default: --method)')
  .option('--steps <n>', 'optimizer steps in all', '200')
  .option('--batch <n>', 'questions per step', '8')
  .option('--lr <x>', 'peak learning rate', '1e-3')
  .option('--warmup <n>', 'linear warm-up steps before the cosine decay', '20')
  .option('--clip <x>', 'clip the global gradient norm to this (0 = off)', '1')
  .option('--seed <n>', 'seed of question order and random init', '0')
  .option('--data-seed <n>', 'seed of the training scenes (below 1000000, the held-out base)', '0')
  .option('--images <n>', 'training scenes', '64')
  .option('--looks <n>', 'ps3: looks per training question (evidence box first)', '1')
  .option('--min-looks <n>', 'ps3: draw each question\'s number of looks from this to --looks (so the LM learns to read one look or several; default: --looks for all)')
  .option('--evidence-fraction <p>', 'ps3: the share of training questions whose looks take the evidence box first (default 1); the rest look bottom-up, as a look that misses does at test time, so the LM learns to fall back on low-res')
  .option('--decoy-looks <p>', 'ps3: the share of qa samples that read another question\'s look of the same scene (a look at another object, as a look that misses at test time), so the LM learns to check that the look shows what is asked and else to fall back on low-res; uses the same token cache (default 0)')
  .option('--task <task>', 'what each training scene is asked: qa (4KPro-lite questions, default), captions (the alignment stage: write a region\'s local caption; ps3 looks at the region) mixed (both in every batch, each from its own cache) or glyphs (ps3: name each one-character label and read each sign\'s code from its block\'s tokens, one look a scene forced onto them: the LM\'s reading stage)')
  .option('--captions <n>', 'captions and mixed tasks: local captions asked of each training scene (default 4)')
  .option('--mix <task>', 'mixed task: what joins the questions in every batch: captions (default) or glyphs (ps3: the reading stage\'s labels and signs)')
  .option('--caption-share <p>', 'mixed task: the share of each batch that writes captions or reads glyphs (--mix; default 0.5; the rest answer questions)')
  .option('--read-objects', 'the reading stage (--task glyphs or --mix glyphs) also asks each labelled or tiny shape its colour and its shape, over its own tokens, as 4KPro-lite\'s attribute questions do', false)
  .option('--per-category <n>', 'questions per category asked of each training scene, about different objects (default 1, as a benchmark asks; more gives more questions per rendered scene)')
  .option('--resolution <px>', 'anyres/s2: resolution tiled (default the top scale); recorded in the folder\'s config (resolutions) as what answering tiles at')
  .option('--selection-weight <x>', 'weight of the selection BCE against the evidence box', '1')
  .option('--choice-weight <x>', 'weight of the choice term: the softmax over a question\'s options\' log-likelihoods (what eval qa answers by), -log of the truth\'s share (default 0, off)')
  .option('--box-loss <kind>', 'ps3: the selection loss: bce (the pre-training BCE, a mean over all patches) | balanced (box and rest weighed equally) | softmax (the box ranked above the rest: -log of its softmax share)', 'bce')
  .option('--save-every <n>', 'steps between checkpoints', '25')
  .option('--max-minutes <x>', 'stop (after a whole step, with a checkpoint) after this long; 0 = no limit', '0')
  .option('--embed-ps3', 'keep a copy of the PS3 folder inside the VILA-HD folder instead of a relative path', false)
  .option('--cache <dir>', 'where PS3\'s tokens of the training scenes are cached (default OUT/cache)')
  .option('--cache-only', 'make the token caches and stop, writing nothing in --out but its default cache (OUT/cache, when --cache is not given); run it beside the training run with the same options (one per core, or on machines sharing --cache): the builders split the scenes', false)
  .option('--tune-selection [which]', 'ps3: also train PS3\'s selection modules (not its trunk) with the selection loss: all (the default) | projections (the ConvNeXt stays frozen: much cheaper); the tuned PS3 is kept in the folder', false)
  .option('--selection-lr <x>', 'peak learning rate of PS3\'s selection modules with --tune-selection (default --lr)')
  .option('--tune-trunk <blocks>', 'ps3 (qa task, --looks 1) or lowres: also train the last this many blocks of PS3\'s trunk and its final norm with the LM\'s loss (and the selection loss); the cache holds the hidden states entering them, and the tuned PS3 is kept in the folder')
  .option('--trunk-lr <x>', 'peak learning rate of PS3\'s tuned blocks with --tune-trunk (default --lr)')
  .option('--threads <n>', 'threads that share each step\'s batch (default: one per core); a run resumes on the same curve with the same number')
  .action((o: TrainMllmCliOptions) => runCommand(() => trainMllmCommand({ ...o, ...program.opts() })));

program
  .command('ask')
  .description('VILA-HD answers a question about an image (or a folder, or a JSONL of questions): answer, tokens, where it looked')
  .argument('<image|dir|questions.jsonl>', 'an image, a folder of images, or JSONL lines {"image", "question", "options"}')
  .argument('[question]', 'the question (for an image or a folder)')
  .requiredOption('--model <dir>', 'a VILA-HD folder')
  .option('--options <list>', 'multiple choice: answers separated by "|" (else the answer is written)')
  .option('--method <name>', 'ps3 | lowres | anyres | s2 (the folder must hold an LM for it)', 'ps3')
  .option('--looks <n>', 'PS3 looks (default 1)')
  .option('--tokens <n>', 'PS3 high-res token budget instead of looks')
  .option('--out <dir>', 'answers.jsonl and the pictures of where it looked', 'ask-out')
  .option('--json', 'one JSON line per answer on stdout')
  .action((target: string, question: string | undefined, o: AskCliOptions) => runCommand(() => askCommand(target, question, { ...o, ...program.opts() })));

program
  .command('encode')
  .description('encode an image or a folder of images: features (.safetensors) and selection heat maps (PNG)')
  .argument('<image|dir>', 'an image file or a folder of images')
  .option('--model <dir|id>', 'a PS3 model folder or Hub id ORG/NAME[@REV]')
  .option('--preset <name>', 'a named shape with random weights instead of --model')
  .option('--prompt <text>', 'top-down selection from this text (needs the model\'s tokenizer)')
  .option('--looks <n>', 'number of looks (default 1)')
  .option('--tokens <n>', 'a high-res token budget instead of a number of looks')
  .option('--all', 'look at every high-res patch')
  .option('--scales <n>', 'only select from the first n high-res scales')
  .option('--max-pixels <n>', 'refuse images whose header claims more pixels than this')
  .option('--trunk <engine>', 'engine of the trunk\'s blocks: onnx or tfjs (default: $PS3_TRUNK or onnx)')
  .option('--out <dir>', 'output folder', 'ps3-out')
  .action((target: string, o: EncodeCliOptions) => runCommand(() => encodeCommand(target, { ...o, ...program.opts() })));

program
  .command('similarity')
  .description('score texts against an image: top-down selection per text, a score and a picture of where it looked')
  .argument('<image>', 'an image file')
  .option('--model <dir|id>', 'a PS3 model folder or Hub id ORG/NAME[@REV], with tokenizer files')
  .option('--text <text>', 'a text to score (repeat for several)', (v: string, prev: string[] = []) => [...prev, v])
  .option('--looks <n>', 'number of looks (default 1)')
  .option('--tokens <n>', 'a high-res token budget instead of a number of looks')
  .option('--all', 'look at every high-res patch')
  .option('--trunk <engine>', 'engine of the trunk\'s blocks: onnx or tfjs (default: $PS3_TRUNK or onnx)')
  .option('--out <dir>', 'output folder for pictures and similarity.json', 'ps3-out')
  .option('--json', 'print the results as JSON')
  .action((image: string, o: SimilarityCliOptions) => runCommand(() => similarityCommand(image, { ...o, ...program.opts() })));

program
  .command('info')
  .description('what a model is: scales, budgets, trunk, text tower, tokenizer, size, dtype, where it is cached; for a VILA-HD folder its LM and methods, then its PS3')
  .argument('<model>', 'a PS3 model folder or Hub id ORG/NAME[@REV] (downloaded into the Hugging Face cache if not there), or a VILA-HD folder')
  .option('--json', 'print one JSON object')
  .action((spec: string, o: { json?: boolean }) => runCommand(() => infoCommand(spec, o)));

program
  .command('serve')
  .description('an HTTP API over a model loaded once: POST /v1/encode, POST /v1/similarity, GET /healthz, GET /metrics; with a VILA-HD folder also POST /v1/ask')
  .option('--model <dir>', 'a PS3 model folder (with tokenizer files for prompts and similarity), or a VILA-HD folder (its PS3 served, and questions answered)')
  .option('--preset <name>', 'a named shape with random weights instead of --model')
  .option('--seed <n>', 'seed of the random weights of --preset', '0')
  .option('--port <n>', 'port to listen on (0 = any free one)', '8080')
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--max-queue <n>', 'requests that may wait for the encoder; more get 503 with Retry-After', '32')
  .option('--concurrency <n>', 'encodes at once', '1')
  .option('--max-body-mb <x>', 'largest request body in MiB; more gets 413', '64')
  .option('--max-pixels <n>', 'largest image by its header in pixels; more gets 413', '67108864')
  .option('--trunk <engine>', 'engine of the trunk\'s blocks: onnx or tfjs (default: $PS3_TRUNK or onnx)')
  .action((o: Omit<ServeCliOptions, 'backend'>) => runCommand(() => serveCommand({ ...o, ...program.opts() })));

const queue = program.command('queue').description('a batch encode over many machines: jobs on Redis (BullMQ), taken by `ps3 worker`s');
queue
  .command('add')
  .description('queue one encode job per distinct image; outputs go to OUT/<sha256>.safetensors')
  .argument('<inputs...>', 'image files, folders of images, or .txt lists (one path a line, relative to the list)')
  .requiredOption('--redis <url>', 'the queue\'s Redis, e.g. redis://host:6379')
  .requiredOption('--model <dir>', 'a PS3 model folder, at the same path on every worker\'s machine')
  .requiredOption('--out <dir>', 'output folder, shared or synced between the machines')
  .option('--looks <n>', 'number of looks (default 1)')
  .option('--tokens <n>', 'a high-res token budget instead of a number of looks')
  .option('--queue <name>', 'queue name', DEFAULT_QUEUE)
  .action((inputs: string[], o: QueueAddOptions) => runCommand(() => queueAddCommand(inputs, o)));
queue
  .command('status')
  .description('done, failed (with reasons), waiting, active, workers, rate and ETA')
  .requiredOption('--redis <url>', 'the queue\'s Redis')
  .option('--queue <name>', 'queue name', DEFAULT_QUEUE)
  .option('--json', 'print one JSON object')
  .action((o: { redis: string; queue: string; json?: boolean }) => runCommand(() => queueStatusCommand(o)));

program
  .command('worker')
  .description('take encode jobs from the queue until SIGTERM; a killed worker\'s job is taken again by another')
  .requiredOption('--redis <url>', 'the queue\'s Redis')
  .option('--queue <name>', 'queue name', DEFAULT_QUEUE)
  .option('--concurrency <n>', 'jobs at once in this process', '1')
  .option('--lock-ms <ms>', 'job lock time: a dead worker\'s job goes back to the queue after about this long', '60000')
  .option('--max-pixels <n>', 'fail images whose header claims more pixels than this', '67108864')
  .option('--trunk <engine>', 'engine of the trunk\'s blocks: onnx or tfjs (default: $PS3_TRUNK or onnx)')
  .action((o: Omit<WorkerCliOptions, 'backend'>) => runCommand(() => workerCommand({ ...o, ...program.opts() })));

const data = program.command('data').description('build and check pre-training data (webdataset shards of images and local captions)');
data
  .command('synth')
  .description('write synthetic high-res scenes of small objects with local (box, caption) pairs')
  .requiredOption('--out <dir>', 'output folder (images/, annotations/, tokenizer/)')
  .option('--count <n>', 'number of images', '100')
  .option('--size <px>', 'long side of each image in pixels', '3780')
  .option('--seed <n>', 'seed: the same seed gives the same bytes', '0')
  .option('--per-shard <n>', 'images per shard')
  .option('--format <png|jpg>', 'image encoding')
  .option('--aspect <w:h>', 'aspect ratio, width:height (default square)')
  .option('--context-length <n>', 'context length written into the tokenizer config', '64')
  .option('--captions <min-max>', 'local captions an image, drawn uniformly from MIN to MAX (or N); denser captions give pre-training more pairs an image (default 4-8)')
  .action((o: Parameters<typeof dataSynthCommand>[0]) => runCommand(() => dataSynthCommand(o)));
data
  .command('caption')
  .description('caption your own high-res images with an OpenAI-compatible vision chat server: detail regions and the whole image, written as shards for `ps3 train`; resumable')
  .argument('<images>', 'a folder of .jpg/.jpeg/.png/.webp images (searched recursively) or one image file')
  .requiredOption('--endpoint <url>', 'the server: its root, .../v1 or .../chat/completions')
  .requiredOption('--model <name>', 'the vision model to ask')
  .requiredOption('--out <dir>', 'output folder: images/, annotations/ and the progress log')
  .option('--api-key <key>', 'sent as a bearer token (default: $OPENAI_API_KEY)')
  .option('--regions <k>', 'detail regions captioned per image', '6')
  .option('--crop-size <px>', 'long side of each crop and of the whole-image view sent', '768')
  .option('--margin <f>', 'each region grows by this fraction of its size on every side', '0.1')
  .option('--crop-format <jpeg|png>', 'encoding of what is sent', 'jpeg')
  .option('--concurrency <n>', 'requests in flight at most', '2')
  .option('--timeout-ms <ms>', 'time limit of one request', '120000')
  .option('--retries <n>', 'retries of a request after a network error, timeout, 408, 429 or 5xx', '5')
  .option('--max-tokens <n>', 'max_tokens of each caption', '200')
  .option('--per-shard <n>', 'images per shard', '100')
  .addHelpText('after', DATA_CAPTION_HELP)
  .action((images: string, o: DataCaptionOptions) => runCommand(() => dataCaptionCommand(images, o)));
data
  .command('validate')
  .description('report per-entry problems of a pair of shard sets')
  .argument('<images>', 'image shards: a folder, a file, a list or a brace pattern')
  .argument('<annotations>', 'annotation shards, matched to the image shards')
  .option('--json', 'print problems as JSON lines')
  .action((images: string, annotations: string, o: { json?: boolean }) => runCommand(() => dataValidateCommand(images, annotations, o)));

const evaluate = program.command('eval').description('4KPro-lite question answering, local retrieval and cost, PS3 against low-res, AnyRes and S²');
evaluate
  .command('make-4k')
  .description('generate a 4KPro-lite benchmark: questions over held-out synthetic 4K scenes whose answers need 4K')
  .requiredOption('--out <dir>', 'output folder (images and questions.jsonl)')
  .option('--count <n>', 'number of questions', '40')
  .option('--size <px>', 'image side in pixels', '3780')
  .option('--seed <n>', 'held-out seed (at least 1,000,000)', '1000001')
  .option('--per-image <n>', 'questions per image')
  .option('--lowres <px>', 'the low-res size the details must be unreadable at')
  .option('--force', 'allow a seed in the training range')
  .action((o: Make4kCliOptions) => runCommand(() => make4kCommand(o)));
evaluate
  .command('qa')
  .description('answer a 4KPro-style benchmark with the encoder alone (the CLIP way)')
  .argument('<bench>', 'questions.jsonl')
  .option('--model <dir|id>', 'a PS3 model folder or Hub id ORG/NAME[@REV], or a VILA-HD folder (answers with its LM)')
  .option('--preset <name>', 'random weights of a preset instead')
  .option('--seed <n>', 'seed of the random weights')
  .requiredOption('--method <name>', 'ps3 | lowres | anyres | s2 (with a VILA-HD --model, answered by its LM for that method)')
  .option('--looks <n>', 'PS3 looks')
  .option('--tokens <n>', 'PS3 token budget')
  .option('--resolution <px>', 'resolution for the tiling baselines (default the image size; a VILA-HD folder: the resolution the method\'s LM was trained on)')
  .option('--tile-batch <n>', 'tiles per trunk pass')
  .option('--no-hints', 'ignore the items\' prompt and statements')
  .option('--evidence-looks', 'VILA-HD ps3: force each question\'s evidence box into the first look (how well it answers when the looks land)')
  .option('--evidence-only', 'with --evidence-looks: the LM reads the low-res tokens and only the look\'s tokens inside the evidence box, as the captions task shows a region (does it read the evidence once it knows which tokens it is)')
  .option('--other-image', 'ask each question of another scene\'s image: a control (an answerer that does not use the image scores the same)')
  .option('--hint-prompts', 'VILA-HD ps3: aim the looks with the text tower\'s prompt of each item\'s "prompt" field instead of the LM\'s prompt head (how well it answers when the head aims as PS3\'s own text prompts do)')
  .option('--limit <n>', 'only the first n questions')
  .option('--out <file>', 'JSON report')
  .option('--plot <file>', 'accuracy-vs-tokens PNG')
  .addHelpText('after', QA_HELP)
  .action((bench: string, o: EvalQaCliOptions) => runCommand(() => evalQaCommand(bench, { ...o, ...program.opts() })));
evaluate
  .command('scaling')
  .description('VILA-HD scaling curves: accuracy vs looks at 4K, and vs top scale at a fixed token budget (JSON + PNG)')
  .argument('<bench>', 'questions.jsonl')
  .requiredOption('--model <dir>', 'a VILA-HD folder with a ps3 LM')
  .option('--looks <list>', 'looks of the test-time curve', '1,2,3')
  .option('--tokens <n>', 'token budget of the resolution curve (default one look)')
  .option('--tops <list>', 'top scales of the resolution curve (default every high-res scale but the first)')
  .option('--limit <n>', 'only the first n questions')
  .requiredOption('--out <dir>', 'scaling.json, test_time.png, resolution.png')
  .action((bench: string, o: EvalScalingCliOptions) => runCommand(() => evalScalingCommand(bench, { ...o, ...program.opts() })));
evaluate
  .command('retrieval')
  .description('rank the true local caption among N candidates from the pooled region')
  .option('--data <dir>', 'held-out shards in the reference format (else held-out synthetic scenes)')
  .option('--model <dir|id>', 'a PS3 model folder or Hub id ORG/NAME[@REV]')
  .option('--preset <name>', 'random weights of a preset instead')
  .option('--seed <n>', 'held-out seed of synthetic scenes')
  .option('--size <px>', 'synthetic image size')
  .option('--method <name>', 'ps3 | ps3-box | lowres | anyres | s2', 'ps3')
  .option('--candidates <n>', 'captions to rank', '8')
  .option('--count <n>', 'triples', '32')
  .option('--per-image <n>', 'triples per image')
  .option('--distractors <from>', 'other (captions of other images, default) | same (the image\'s other regions first)')
  .option('--looks <n>', 'PS3 looks')
  .option('--tokens <n>', 'PS3 token budget')
  .option('--force', 'allow a seed in the training range')
  .option('--out <file>', 'JSON report')
  .addHelpText('after', RETRIEVAL_HELP)
  .action((o: EvalRetrievalCliOptions) => runCommand(() => evalRetrievalCommand({ ...o, ...program.opts() })));
evaluate
  .command('selection')
  .description('does PS3 look where it should: top-down and bottom-up recall of held-out boxes against random')
  .option('--model <dir>', 'a PS3 model folder')
  .option('--preset <name>', 'random weights of a preset instead')
  .option('--seed <n>', 'held-out seed of synthetic scenes')
  .option('--size <px>', 'synthetic image size (default the top scale)')
  .option('--count <n>', 'scenes', '16')
  .option('--looks <n>', 'looks whose union is scored', '1')
  .option('--examples <n>', 'examples in the picture', '4')
  .option('--oracle-steps <n>', 'also fit a free prompt to each box for N Adam steps: an upper bound of top-down selection with this model\'s features', '0')
  .option('--force', 'allow a seed in the training range')
  .option('--out <file>', 'JSON report (the picture goes beside it as .png)')
  .addHelpText('after', SELECTION_HELP)
  .action((o: EvalSelectionCliOptions) => runCommand(() => evalSelectionCommand({ ...o, ...program.opts() })));
evaluate
  .command('probe')
  .description('what the top-scale tokens carry about an object: a linear probe of colour, shape and character from its box\'s tokens, against its pixels and the majority class')
  .option('--model <dir|id>', 'a PS3 model folder or Hub id ORG/NAME[@REV]')
  .option('--preset <name>', 'random weights of a preset instead')
  .option('--vila <dir>', 'a VILA-HD folder: probe its PS3, and what its ps3 projector passes on to the LM (projected)')
  .option('--seed <n>', 'held-out seed of synthetic scenes')
  .option('--count <n>', 'scenes (60 % fit, 20 % choose λ, 20 % test)', '60')
  .option('--force', 'allow a seed in the training range')
  .option('--out <file>', 'JSON report (the chart goes beside it as .png)')
  .addHelpText('after', PROBE_HELP)
  .action((o: EvalProbeCliOptions) => runCommand(() => evalProbeCommand({ ...o, ...program.opts() })));
evaluate
  .command('reading')
  .description('a reading stage\'s head ("ps3 train-read" checkpoint) on held-out glyph crops of every palette and on the one-character labels of held-out scenes, cut as a look sees them')
  .option('--model <dir>', 'a "ps3 train-read" checkpoint folder (holds reading_head.safetensors)')
  .option('--seed <n>', 'held-out seed (from 1000000) of the scenes and of the crops\' stream', '1000000')
  .option('--scenes <n>', 'held-out scenes drawn at the model\'s top scale', '60')
  .option('--crops <n>', 'held-out glyph crops a palette (the run\'s crop size and glyph heights)', '720')
  .option('--in-look', 'also read the scene characters from a real look\'s tokens (each scene encoded once, its look forced onto its glyphs\' blocks on the top scale): what an LM is given', false)
  .option('--out <file>', 'JSON report (the chart goes beside it as .png)')
  .action((o: EvalReadingCliOptions) => runCommand(() => evalReadingCommand({ ...o, ...program.opts() })));
evaluate
  .command('captions')
  .description('does a VILA-HD LM read the image: held-out local captions scored with their own scene\'s tokens and with another scene\'s')
  .option('--model <dir>', 'a VILA-HD folder')
  .option('--method <m>', 'ps3, lowres, anyres, s2, or several with commas', 'ps3')
  .option('--seed <n>', 'held-out seed of synthetic scenes')
  .option('--count <n>', 'scenes', '16')
  .option('--captions <n>', 'captions asked of each scene', '4')
  .option('--glyphs', 'ps3: score each scene\'s one-character labels and signs from their blocks\' tokens instead (train-mllm --task glyphs): labels\' characters and signs read whole', false)
  .option('--read-objects', 'with --glyphs: also each labelled or tiny shape\'s colour and shape (train-mllm --read-objects), each read whole', false)
  .option('--force', 'allow a seed in the training range')
  .option('--out <file>', 'JSON report (the chart goes beside it as .png)')
  .addHelpText('after', CAPTIONS_HELP)
  .action((o: EvalCaptionsCliOptions) => runCommand(() => evalCaptionsCommand({ ...o, ...program.opts() })));
evaluate
  .command('cost')
  .description('encode time and tokens versus resolution for PS3, low-res, AnyRes and S², and pre-training step time; JSON and PNG')
  .option('--model <dir|id>', 'a PS3 model folder or Hub id ORG/NAME[@REV]')
  .option('--preset <name>', 'random weights of a preset instead')
  .option('--resolutions <list>', 'resolutions', '756,1512,3780,7560')
  .option('--looks <n>', 'PS3 looks', '1')
  .option('--methods <list>', 'methods', 'ps3,lowres,anyres,s2,pretrain')
  .option('--repeats <n>', 'timed runs per measurement', '1')
  .option('--timeout <s>', 'time limit per measurement', '300')
  .option('--out <dir>', 'output folder', 'ps3-cost')
  .option('--in-process', 'measure in this process instead of a fresh one per measurement')
  .action((o: EvalCostCliOptions) => runCommand(() => evalCostCommand({ ...o, ...program.opts() })));

await program.parseAsync(process.argv);
exitWhenIdle();
