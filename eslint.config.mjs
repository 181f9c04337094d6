// ESLint flat config: typescript-eslint's type-aware rules over lib/, tests/, scripts/ (tsconfig.json's
// program), plus the project's size limits. `npm test` runs `npx eslint .` before jest.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-import-type-side-effects': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      // `const { pages: _pages, ...rest } = r` is how a field is left out of a copy.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
    },
  },
  {
    // Every file under lib/ stays readable in one sitting; counted like `wc -l`.
    files: ['lib/**/*.ts'],
    rules: { 'max-lines': ['error', { max: 350, skipBlankLines: false, skipComments: false }] },
  },
  {
    files: ['scripts/bench.ts', 'scripts/bench/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 60, skipBlankLines: false, skipComments: false, IIFEs: true }] },
  },
  {
    // Plain JavaScript (config files, the bin/ launcher, a native test driver): no type information.
    files: ['**/*.js', '**/*.cjs', '**/*.mjs', 'bin/remapfs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      parserOptions: { projectService: false },
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' },
    },
    // CommonJS files have no other way to import.
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The package is "type": "module": .mjs, .js and the launcher are ES modules.
    files: ['**/*.mjs', '**/*.js', 'bin/remapfs'],
    languageOptions: { sourceType: 'module' },
  },
);
