import express from 'express';
import { expressSuite } from './express-app.js';

expressSuite('express 5', express);
