// Two projects: `unit` is pure logic (fast, no servers); `integration` runs on the real test bed
// (kube-apiserver, Temporal dev server, sshd nodes) and runs one file at a time.
const base = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
};

export default {
  // Real control planes and Temporal servers on 2 cores: one test file at a time.
  maxWorkers: 1,
  // gRPC channels of the Temporal client can outlive a test file by a few seconds; never let
  // them hold CI hostage once every test has finished.
  forceExit: true,
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...base,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/support/integration-setup.ts'],
    },
  ],
};
