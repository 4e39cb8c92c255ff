import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.cluster/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: ['./tsconfig.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // Size and complexity budgets. Services (functions/*/src, app/src): a file over ~300 lines, a function
  // over 40 statements' lines or with more than 10 paths has to say why: a directive in the file's header,
  // e.g. `/* eslint max-lines: ["error", 400] -- one table of every kind */` (or `eslint-disable <rule> --
  // <reason>` for one function), so the exception and its reason sit where the code is read. Tests,
  // scripts and the local cluster tooling get looser budgets: a describe block is one function.
  {
    files: ['functions/*/src/**/*.ts', 'app/src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 300 }],
      'max-lines-per-function': ['error', { max: 40, skipBlankLines: true, skipComments: true }],
      complexity: ['error', 10],
      'max-depth': ['error', 3],
    },
  },
  {
    files: ['test/**/*.ts', 'cluster/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 1000 }],
      'max-lines-per-function': ['error', { max: 300, skipBlankLines: true, skipComments: true }],
      complexity: ['error', 30],
      'max-depth': ['error', 5],
    },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
  { files: ['test/**/*.ts', 'cluster/**/*.ts'], rules: { '@typescript-eslint/unbound-method': 'off' } },
  prettier,
);
