// `node --import` this file to run a child process under the loopback-only guard.
import { allowOnlyLoopback } from './loopback-only.js';

allowOnlyLoopback();
