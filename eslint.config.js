// Lint config: typescript-eslint's recommended rules plus a few that catch real session bugs.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // Secrets must never be compared with === (timing); use timingSafeEqual helpers.
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.name='eval'], NewExpression[callee.name='Function']",
        message: 'No eval/Function: session data is never executed.',
      }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
