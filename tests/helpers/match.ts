/**
 * jest's asymmetric matchers, typed as the values they stand in for. @types/jest types them `any`, so used
 * bare inside an expected value they trip typescript-eslint's no-unsafe-* rules; these wrappers say what
 * each one matches instead.
 */

export const match = {
  /** A string that matches `pattern`. */
  string: (pattern: RegExp | string): string => expect.stringMatching(pattern) as string,
  /** A string that contains `part`. */
  containing: (part: string): string => expect.stringContaining(part) as string,
  /** A string that does not contain `part`. */
  notContaining: (part: string): string => expect.not.stringContaining(part) as string,
  /** An object with at least these properties. */
  object: <T extends object>(partial: T): T => expect.objectContaining(partial) as T,
  /** A thrown error with at least these properties (for toThrow). */
  error: (partial: Record<string, unknown>): Error => expect.objectContaining(partial) as Error,
};
