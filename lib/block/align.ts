/** Pure helpers for aligning byte ranges to a device's I/O granularity. */

export interface AlignedWindow {
  /** First byte of the aligned window. */
  byteOffset: number;
  byteLength: number;
  /** Where the requested range starts inside the window. */
  headSkipBytes: number;
  /** True when the request already starts and ends on alignment boundaries. */
  exact: boolean;
}

export function alignWindow(byteOffset: number, byteLength: number, alignBytes: number): AlignedWindow {
  const start = Math.floor(byteOffset / alignBytes) * alignBytes;
  const end = Math.ceil((byteOffset + byteLength) / alignBytes) * alignBytes;
  return {
    byteOffset: start,
    byteLength: end - start,
    headSkipBytes: byteOffset - start,
    exact: start === byteOffset && end === byteOffset + byteLength,
  };
}
