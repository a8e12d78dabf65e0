import { describe } from 'vitest';
import { embedded } from '../helpers/backends.js';
import { cacheHttpScenarios } from './cache-http.case.js';

describe(`cache over HTTP: ${embedded.name}`, () => cacheHttpScenarios(embedded));
