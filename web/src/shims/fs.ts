/**
 * Browser stand-in for `node:fs`. Library modules the page needs import it for functions the
 * page never calls (`openSafetensors` beside `parseSafetensors`); calling one says so plainly.
 */
function unavailable(name: string): never {
  throw new Error(`fs.${name} is not available in the browser`);
}

const fs: Record<string, (...args: unknown[]) => never> = new Proxy({}, {
  get: (_target, key) => () => unavailable(String(key)),
});

export default fs;
