#!/usr/bin/env node
/** The `ps3` command: one thin file per subcommand. */
import { Command } from 'commander';
import { runCommand } from './run.js';
import { parityCommand } from './parity.js';
import { demoCommand, type DemoCliOptions } from './demo.js';
import { evalQaCommand, QA_HELP, type EvalQaCliOptions } from './evalQa.js';
import { evalRetrievalCommand, RETRIEVAL_HELP, type EvalRetrievalCliOptions } from './evalRetrieval.js';
import { evalCostCommand, type EvalCostCliOptions } from './evalCost.js';
import { make4kCommand, type Make4kCliOptions } from './benchmark4k.js';
import { benchCommand, type BenchOptions } from './bench.js';
import { benchEncodeCommand, type BenchEncodeOptions } from './benchEncode.js';
import { benchTrainCommand, type BenchTrainOptions } from './benchTrain.js';
import { trainCommand, type TrainCliOptions } from './train.js';
import { encodeCommand, type EncodeCliOptions } from './encode.js';
import { dataSynthCommand } from './dataSynth.js';
import { dataValidateCommand } from './dataValidate.js';
import { dataCaptionCommand, DATA_CAPTION_HELP, type DataCaptionOptions } from './dataCaption.js';
import { similarityCommand, type SimilarityCliOptions } from './similarity.js';

const program = new Command();
program.name('ps3').description('PS3: selective high-resolution vision encoding (CVPR 2025) in TypeScript').showHelpAfterError();
program.option('--backend <name>', 'TensorFlow.js backend: wasm or cpu (default: $PS3_BACKEND or wasm)');

program
  .command('parity')
  .description('run every case of a reference fixture folder and compare with its tolerances')
  .argument('<fixture-dir>', 'folder with config.json, model.safetensors, manifest.json, cases.safetensors')
  .option('--trunk <engine>', 'engine of the trunk\'s blocks: onnx or tfjs (default: $PS3_TRUNK or onnx)')
  .action((dir: string, o: { trunk?: string }) => runCommand(() => parityCommand(dir, { ...o, ...program.opts() })));

program
  .command('demo')
  .description('the main job: synthetic 4K data, pre-train the tiny preset, PS3 vs low-res/AnyRes/S² on 4KPro-lite and retrieval, cost vs resolution, a report')
  .option('--out <dir>', 'output folder', 'ps3-demo')
  .option('--image <file>', 'the 4K image encoded with a prompt at the end (default: the bundled sample)')
  .option('--prompt <text>', 'its top-down prompt')
  .option('--train-minutes <x>', 'pre-training budget in minutes (default 3)')
  .option('--train-images <n>', 'synthetic training scenes (default 48)')
  .option('--batch <n>', 'training batch (default 3)')
  .option('--questions <n>', '4KPro-lite questions (default 8)')
  .option('--retrieval <n>', 'retrieval triples (default 8)')
  .option('--candidates <n>', 'captions to rank per triple (default 8)')
  .option('--cost-resolutions <list>', 'resolutions of the cost report (default 756,1512,3780,7560)')
  .option('--seed <n>', 'seed of data, training and evaluation (default 0)')
  .option('--quick', 'small budgets: a check that everything runs, not a result')
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
  .option('--model <dir>', 'a PS3 model folder instead (vision tower only)')
  .option('--looks <n>', 'number of looks, or "all"', '1')
  .option('--dense', 'also time ONNX Runtime running the same trunk densely over 3,289 tokens, and the ratio')
  .option('--warmup', 'run one untimed encode first')
  .option('--json', 'print one JSON line')
  // --image and --trunk belong to `bench` (commander gives them to it wherever they stand)
  .action((o: Omit<BenchEncodeOptions, 'backend' | 'image' | 'trunk'>) => {
    const shared = bench.opts<Pick<BenchOptions, 'image' | 'trunk'>>();
    return runCommand(() => benchEncodeCommand({ ...o, image: shared.image, trunk: shared.trunk, ...program.opts() }));
  });

bench
  .command('train')
  .description('time N pre-training steps of a preset at its top scale, phase by phase (data, resizes, forward, backward, optimizer): samples/s and GFLOP/s')
  .option('--preset <name>', 'model shape (random weights)', 'tiny')
  .option('--data <dir>', 'shard sets from "ps3 data synth" (default: a few synthetic scenes drawn for the run)')
  .option('--steps <n>', 'timed steps (after one warm-up step)', '2')
  .option('--batch <n>', 'samples per step', '2')
  .option('--seed <n>', 'seed of data and weights', '0')
  .option('--json', 'print one JSON line')
  .action((o: Omit<BenchTrainOptions, 'backend'>) => runCommand(() => benchTrainCommand({ ...o, ...program.opts() })));

program
  .command('train')
  .description('pre-train or fine-tune PS3 on shards of (image, box, caption) data; resumable')
  .option('--preset <name>', 'start from a named shape with random weights (e.g. tiny-4k)')
  .option('--init <dir>', 'start from a checkpoint folder (ours or a released one)')
  .requiredOption('--data <dir>', 'data folder with images/ and annotations/ shard sets (and tokenizer/)')
  .requiredOption('--out <dir>', 'output folder: checkpoint/ and metrics.jsonl')
  .option('--resume', 'continue the run in --out from its last checkpoint', false)
  .option('--steps <n>', 'optimizer steps in all', '100')
  .option('--batch <n>', 'samples per micro-batch', '4')
  .option('--accum <n>', 'micro-batches per step (gradient accumulation)', '1')
  .option('--lr <x>', 'peak learning rate', '5e-4')
  .option('--warmup <n>', 'linear warm-up steps before the cosine decay', '10')
  .option('--clip <x>', 'clip the global gradient norm to this (0 = off)', '1')
  .option('--weight-decay <x>', 'AdamW decoupled weight decay', '3e-4')
  .option('--freeze <group>', 'none | text | all-but-selection', 'none')
  .option('--seed <n>', 'seed of data order, augmentation and random init', '0')
  .option('--save-every <n>', 'steps between checkpoints', '25')
  .option('--max-minutes <x>', 'stop (after a whole step, with a checkpoint) after this long; 0 = no limit', '0')
  .option('--shuffle-buffer <n>', 'shuffle buffer size of the data stream', '64')
  .option('--global-caption-prob <x>', 'probability of training on the global caption', '0.25')
  .action((o: TrainCliOptions) => runCommand(() => trainCommand({ ...o, ...program.opts() })));

program
  .command('encode')
  .description('encode an image or a folder of images: features (.safetensors) and selection heat maps (PNG)')
  .argument('<image|dir>', 'an image file or a folder of images')
  .option('--model <dir>', 'a PS3 model folder')
  .option('--preset <name>', 'a named shape with random weights instead of --model')
  .option('--prompt <text>', 'top-down selection from this text (needs tokenizer files in --model)')
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
  .option('--model <dir>', 'a PS3 model folder with tokenizer files')
  .option('--text <text>', 'a text to score (repeat for several)', (v: string, prev: string[] = []) => [...prev, v])
  .option('--looks <n>', 'number of looks (default 1)')
  .option('--tokens <n>', 'a high-res token budget instead of a number of looks')
  .option('--all', 'look at every high-res patch')
  .option('--trunk <engine>', 'engine of the trunk\'s blocks: onnx or tfjs (default: $PS3_TRUNK or onnx)')
  .option('--out <dir>', 'output folder for pictures and similarity.json', 'ps3-out')
  .option('--json', 'print the results as JSON')
  .action((image: string, o: SimilarityCliOptions) => runCommand(() => similarityCommand(image, { ...o, ...program.opts() })));

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
  .option('--model <dir>', 'a PS3 model folder')
  .option('--preset <name>', 'random weights of a preset instead')
  .option('--seed <n>', 'seed of the random weights')
  .requiredOption('--method <name>', 'ps3 | lowres | anyres | s2')
  .option('--looks <n>', 'PS3 looks')
  .option('--tokens <n>', 'PS3 token budget')
  .option('--resolution <px>', 'resolution for the tiling baselines')
  .option('--tile-batch <n>', 'tiles per trunk pass')
  .option('--no-hints', 'ignore the items\' prompt and statements')
  .option('--limit <n>', 'only the first n questions')
  .option('--out <file>', 'JSON report')
  .option('--plot <file>', 'accuracy-vs-tokens PNG')
  .addHelpText('after', QA_HELP)
  .action((bench: string, o: EvalQaCliOptions) => runCommand(() => evalQaCommand(bench, { ...o, ...program.opts() })));
evaluate
  .command('retrieval')
  .description('rank the true local caption among N candidates from the pooled region')
  .option('--data <dir>', 'held-out shards in the reference format (else held-out synthetic scenes)')
  .option('--model <dir>', 'a PS3 model folder')
  .option('--preset <name>', 'random weights of a preset instead')
  .option('--seed <n>', 'held-out seed of synthetic scenes')
  .option('--size <px>', 'synthetic image size')
  .option('--method <name>', 'ps3 | ps3-box | lowres | anyres | s2', 'ps3')
  .option('--candidates <n>', 'captions to rank', '8')
  .option('--count <n>', 'triples', '32')
  .option('--per-image <n>', 'triples per image')
  .option('--looks <n>', 'PS3 looks')
  .option('--tokens <n>', 'PS3 token budget')
  .option('--force', 'allow a seed in the training range')
  .option('--out <file>', 'JSON report')
  .addHelpText('after', RETRIEVAL_HELP)
  .action((o: EvalRetrievalCliOptions) => runCommand(() => evalRetrievalCommand({ ...o, ...program.opts() })));
evaluate
  .command('cost')
  .description('encode time and tokens versus resolution for PS3, low-res, AnyRes and S², and pre-training step time; JSON and PNG')
  .option('--model <dir>', 'a PS3 model folder')
  .option('--preset <name>', 'random weights of a preset instead')
  .option('--resolutions <list>', 'resolutions', '756,1512,3780,7560')
  .option('--looks <n>', 'PS3 looks', '1')
  .option('--methods <list>', 'methods', 'ps3,lowres,anyres,s2,pretrain')
  .option('--repeats <n>', 'timed runs per measurement', '1')
  .option('--timeout <s>', 'time limit per measurement', '300')
  .option('--out <dir>', 'output folder', 'ps3-cost')
  .option('--in-process', 'measure in this process instead of a fresh one per measurement')
  .action((o: EvalCostCliOptions) => runCommand(() => evalCostCommand({ ...o, ...program.opts() })));

program.exitOverride((err) => {
  process.exit(err.exitCode === 0 ? 0 : 2);
});
await program.parseAsync(process.argv);
