// Jest runs the TypeScript sources as native ES modules (ts-jest ESM preset); npm scripts start it with
// `node --experimental-vm-modules`. Imports use the `.js` suffix NodeNext requires; the mapper strips it.
const esm = {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: false }],
  },
};

/** @type {import('jest').Config} */
export default {
  projects: [
    { ...esm, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...esm,
      displayName: 'manifests',
      testMatch: ['<rootDir>/test/manifests/**/*.test.ts'],
      // Builds helm and actionlint from their pinned Go modules once (cached); starts no cluster.
      globalSetup: '<rootDir>/test/manifests/global-setup.ts',
    },
    {
      ...esm,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/test/integration/global-setup.ts',
      globalTeardown: '<rootDir>/test/integration/global-teardown.ts',
    },
  ],
};
