// Integration tests start real servers; their hooks and tests need minutes, not Jest's 5 s.
import { jest } from '@jest/globals';

jest.setTimeout(600_000);
