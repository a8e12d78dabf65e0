import { describe } from 'vitest';
import { embedded } from '../helpers/backends.js';
import { retentionScenarios } from './retention.case.js';

describe(`independence, GC and quotas: ${embedded.name}`, () => retentionScenarios(embedded));
