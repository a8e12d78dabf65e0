import { describe } from 'vitest';
import { embedded } from '../helpers/backends.js';
import { debugInfoScenarios } from './debuginfo.case.js';

describe(`debuginfo: ${embedded.name}`, () => debugInfoScenarios(embedded));
