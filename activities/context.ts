/**
 * The running activity's context, for helpers that are also called outside an activity
 * (unit tests, scripts), where there is none.
 */
import { Context } from '@temporalio/activity';

/** The running activity's context, or undefined outside an activity. */
export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** The activity's cancellation signal, or undefined outside an activity. */
export function activitySignal(): AbortSignal | undefined {
  return activityContext()?.cancellationSignal;
}
