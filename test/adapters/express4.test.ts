import { createRequire } from 'node:module';
import { expressSuite, type ExpressFactory } from './express-app.js';

// `express4` is Express 4.21 installed under an alias; it ships no types of its own, and the
// adapter's surface (middleware, req/res) is the same, so it is typed with Express 5's.
const express4 = createRequire(import.meta.url)('express4') as ExpressFactory;

expressSuite('express 4', express4);
