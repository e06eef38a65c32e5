/**
 * Messages a run answers: the live report, and the decision at an approval gate. Updates are
 * validated (and answer with the recorded decision); the signals exist for clients that can
 * only signal, such as the Temporal Web UI, and are ignored when no gate is open.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ApprovalRecord, Decision, RunReport } from '../common/types.js';

export const progressQuery = defineQuery<RunReport>('progress');
export const approveUpdate = defineUpdate<ApprovalRecord, [Decision]>('approve');
export const rejectUpdate = defineUpdate<ApprovalRecord, [Decision]>('reject');
export const approveSignal = defineSignal<[Decision]>('approveSignal');
export const rejectSignal = defineSignal<[Decision]>('rejectSignal');
