import { describe } from 'vitest';
import { embedded } from '../helpers/backends.js';
import { logScenarios } from './logs.case.js';

describe(`build logs: ${embedded.name}`, () => logScenarios(embedded));
