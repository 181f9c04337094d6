/** Strict checkers of formats the project writes (test helpers). */

/** A strict little parser of the text exposition format; throws on anything malformed. */
export function parseExposition(text: string): { types: Map<string, string>; help: Map<string, string>; samples: Map<string, Array<{ labels: Record<string, string>; value: number }>> } {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples = new Map<string, Array<{ labels: Record<string, string>; value: number }>>();
  if (!text.endsWith('\n')) throw new Error('must end with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      help.set(m[1] as string, m[2] as string);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      if (samples.has(m[1] as string)) throw new Error(`TYPE after samples for ${m[1]}`);
      types.set(m[1] as string, m[2] as string);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line);
    if (!m) throw new Error(`bad line: ${line}`);
    const name = m[1] as string;
    if (!types.has(name) || !help.has(name)) throw new Error(`sample before HELP/TYPE: ${name}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
    let consumed = 0;
    for (let lm = re.exec(body); lm; lm = re.exec(body)) {
      labels[lm[1] as string] = (lm[2] as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      consumed = re.lastIndex;
    }
    if (consumed !== body.length) throw new Error(`bad labels: ${body}`);
    const list = samples.get(name) ?? [];
    list.push({ labels, value: Number(m[3]) });
    samples.set(name, list);
  }
  return { types, help, samples };
}

/** Minimal XML well-formedness: balanced tags, quoted attributes, one root. */
export function wellFormed(xml: string): boolean {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  let roots = 0;
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/g;
  let pos = 0;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    if (m.index !== pos) return false;
    pos = re.lastIndex;
    if (m[5] !== undefined) {
      if (stack.length === 0 && m[5].trim()) return false;
      if (/&(?!amp;|lt;|gt;|quot;|apos;)/.test(m[5])) return false;
      continue;
    }
    const [, close, name, , selfClose] = m;
    if (close) {
      if (stack.pop() !== name) return false;
    } else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name as string);
    } else if (stack.length === 0) roots++;
  }
  return pos === body.length && stack.length === 0 && roots === 1;
}
