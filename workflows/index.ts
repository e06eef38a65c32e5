// The worker's workflow bundle entry: every workflow kubemend runs, and its messages.
export { runRunbook } from './run-runbook.js';
export * from './messages.js';
