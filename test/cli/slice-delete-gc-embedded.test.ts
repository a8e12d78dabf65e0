import { describe } from 'vitest';
import { embedded } from '../helpers/backends.js';
import { sliceDeleteGcScenarios } from './slice-delete-gc.case.js';

describe(`slice delete --force in batches, then GC: ${embedded.name}`, () => sliceDeleteGcScenarios(embedded));
