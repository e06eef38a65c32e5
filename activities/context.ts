/**
 * The running activity's context, for helpers that are also called outside an activity
 * (unit tests, scripts), where there is none.
 */
import { Context } from '@temporalio/activity';

/** The activity's cancellation signal, or undefined outside an activity. */
export function activitySignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}
