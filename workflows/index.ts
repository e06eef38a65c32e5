// The worker's workflow bundle entry: every workflow kubemend runs.
export { runRunbook, progressQuery } from './run-runbook.js';
