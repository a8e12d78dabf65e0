import { describe } from 'vitest';
import { embedded } from '../helpers/backends.js';
import { integrityScenarios } from './integrity.case.js';

describe(`tenant integrity: ${embedded.name}`, () => integrityScenarios(embedded));
