/**
 * Where the Hub is and where its files are kept, from the same environment variables the Python
 * `huggingface_hub` reads, so both share one cache:
 *   HF_ENDPOINT     the Hub's address (default https://huggingface.co)
 *   HF_HUB_CACHE    the cache folder; else $HF_HOME/hub; else $XDG_CACHE_HOME/huggingface/hub;
 *                   else ~/.cache/huggingface/hub
 *   HF_TOKEN        the access token; else the file $HF_TOKEN_PATH or $HF_HOME/token
 *   HF_HUB_OFFLINE  1/ON/YES/TRUE: never touch the network, use only what is cached
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface HubSettings {
  readonly endpoint: string;
  readonly cacheDir: string;
  readonly token: string | undefined;
  readonly offline: boolean;
}

const TRUE_VALUES = new Set(['1', 'on', 'yes', 'true']);

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.trim() !== '' ? v : undefined;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

export function hubSettings(env: NodeJS.ProcessEnv = process.env): HubSettings {
  const hfHome = expandHome(nonEmpty(env['HF_HOME']) ?? path.join(nonEmpty(env['XDG_CACHE_HOME']) ?? path.join(os.homedir(), '.cache'), 'huggingface'));
  const cacheDir = expandHome(nonEmpty(env['HF_HUB_CACHE']) ?? nonEmpty(env['HUGGINGFACE_HUB_CACHE']) ?? path.join(hfHome, 'hub'));
  let token = nonEmpty(env['HF_TOKEN'])?.trim() ?? nonEmpty(env['HUGGING_FACE_HUB_TOKEN'])?.trim();
  if (token === undefined) {
    try {
      token = nonEmpty(fs.readFileSync(expandHome(nonEmpty(env['HF_TOKEN_PATH']) ?? path.join(hfHome, 'token')), 'utf8').trim());
    } catch {
      // no token file: anonymous access
    }
  }
  const offline = TRUE_VALUES.has((env['HF_HUB_OFFLINE'] ?? '').trim().toLowerCase());
  const endpoint = (nonEmpty(env['HF_ENDPOINT']) ?? 'https://huggingface.co').replace(/\/+$/, '');
  return { endpoint, cacheDir, token, offline };
}
