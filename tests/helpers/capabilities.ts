/** Capabilities of this process, for tests that need one: fails clearly (never skips) without it. */
import * as fs from 'fs';

export function hasCapability(bit: number): boolean {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'));
  if (!line) return false;
  const mask = BigInt(`0x${line.split(/\s+/)[1] ?? '0'}`);
  return (mask & (1n << BigInt(bit))) !== 0n;
}

export function requireCapability(name: string, bit: number, forWhat: string): void {
  if (!hasCapability(bit)) {
    throw new Error(`${forWhat} needs ${name}, which this process does not have (CapEff in /proc/self/status); run these tests where it is granted`);
  }
}
