import { describe } from 'vitest';
import { embedded } from '../helpers/backends.js';
import { sourceScenarios } from './sources.case.js';

describe(`release sources in the cache: ${embedded.name}`, () => sourceScenarios(embedded));
